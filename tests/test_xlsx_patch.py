"""The direct zip/XML write-back, proven against openpyxl's path on copies of the same workbooks."""
from __future__ import annotations

import io
import random
import re
import shutil
import warnings
import zipfile
from pathlib import Path

import openpyxl
import pytest
import python_calamine as pc
from openpyxl.comments import Comment
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Font, PatternFill
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.table import Table

from sheetsync.connectors.xlsx import XlsxConnector, fill_code
from sheetsync.connectors.xlsx.patch import patch_xlsx
from sheetsync.model import Patch, ReportTab

DEMO = Path(__file__).resolve().parent.parent / "sheetsync" / "data" / "demo" / "customers.xlsx"
SHEET = "sheet1.xml"


def rich_book(path: Path) -> Path:
    """Styles, widths, merges, validation, conditional format, names, formulas, a table, notes, panes."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Customers"
    ws.append(["Name", "Phone", "Email", "Limit", "Double"])
    for i in range(2, 30):
        ws.append([f"n{i}", 13800000000 + i, f"u{i}@x.cn", i * 100, f"=D{i}*2"])
    ws["A1"].font = Font(bold=True)
    ws["B3"].fill = PatternFill("solid", fgColor="00FF00")
    ws["D4"].number_format = "0.00"
    ws.column_dimensions["C"].width = 30
    ws.merge_cells("A31:C31")
    ws["A31"] = "merged footer"
    rule = DataValidation(type="list", formula1='"a,b"')
    ws.add_data_validation(rule)
    rule.add("C2:C29")
    ws.conditional_formatting.add("D2:D29", CellIsRule(operator="greaterThan", formula=["1000"],
                                                       fill=PatternFill("solid", fgColor="FF0000")))
    wb.defined_names["limits"] = DefinedName("limits", attr_text="Customers!$D$2:$D$29")
    ws.add_table(Table(displayName="People", ref="A1:E29"))
    ws["A5"].comment = Comment("call after 6pm", "Li")
    ws.freeze_panes = "A2"
    other = wb.create_sheet("Other")
    other["A1"] = "=Customers!D2+1"
    wb.save(path)
    _cache_formula_results(path)
    return path


def _cache_formula_results(path: Path) -> None:
    """Give the formula cells cached results, as Excel's files have (openpyxl writes none)."""
    data = path.read_bytes()
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                for i in range(2, 30):
                    body = body.replace(f"<f>D{i}*2</f><v></v>".encode(), f"<f>D{i}*2</f><v>{i * 200}</v>".encode())
                    body = body.replace(f"<f>D{i}*2</f><v />".encode(), f"<f>D{i}*2</f><v>{i * 200}</v>".encode())
            dst.writestr(info, body)
    path.write_bytes(out.getvalue())


def both_ways(src: Path, tmp: Path, patches: list[Patch], report: ReportTab | None = None,
              sheet: str | None = None) -> tuple[Path, Path, tuple, tuple]:
    """Apply the same patches through the fast path and through openpyxl, into two copies."""
    fast, slow = tmp / "fast.xlsx", tmp / "slow.xlsx"
    shutil.copy(src, fast)
    shutil.copy(src, slow)
    a = XlsxConnector(fast, sheet=sheet).apply(patches, report=report)
    conn = XlsxConnector(slow, sheet=sheet, allow_feature_loss=True)
    b = conn._apply_openpyxl(slow.read_bytes(), list(patches), [], report)
    return fast, slow, a, b


def openpyxl_view(path: Path) -> dict:
    """Every cell's value, fill and note in every sheet, as openpyxl reads them (no warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wb = openpyxl.load_workbook(path, rich_text=True)
    view = {}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                note = cell.comment.text if cell.comment else None
                if cell.value is not None or note or fill_code(cell.fill):
                    view[(ws.title, cell.coordinate)] = (cell.value, fill_code(cell.fill), note)
    return view


def calamine_view(path: Path, skip_formulas_of: Path) -> dict:
    """Calamine's values; formula cells are skipped (openpyxl's copy has no cached results)."""
    formulas = {(ws.title, c.row, c.column) for ws in openpyxl.load_workbook(skip_formulas_of).worksheets
                for row in ws.iter_rows() for c in row if c.data_type == "f"}
    book = pc.CalamineWorkbook.from_path(str(path))
    out = {}
    for name in book.sheet_names:
        for r, row in enumerate(book.get_sheet_by_name(name).to_python(skip_empty_area=False), start=1):
            for c, value in enumerate(row, start=1):
                if value not in ("", None) and (name, r, c) not in formulas:
                    out[(name, r, c)] = value
    return out


def assert_equivalent(src: Path, fast: Path, slow: Path, touched: set[str]) -> None:
    assert openpyxl_view(fast) == openpyxl_view(slow)
    assert calamine_view(fast, slow) == calamine_view(slow, slow)
    before, after = zipfile.ZipFile(src), zipfile.ZipFile(fast)
    for info in before.infolist():
        if not any(info.filename.endswith(t) for t in touched):
            new = after.getinfo(info.filename)
            assert before.read(info.filename) == after.read(info.filename), info.filename
            assert (new.CRC, new.compress_size, new.compress_type) == (
                info.CRC, info.compress_size, info.compress_type), info.filename


def marks() -> list[Patch]:
    return [Patch(2, 1, "corrected", write=True, value="=HYPERLINK(\"x\")"),
            Patch(3, 2, "invalid", fill="FFC7CE", note="phone is invalid"),
            Patch(5, 1, "duplicate", fill="ffd8a8", note="same as row 4"),
            Patch(6, 3, "corrected", write=True, value="  spaced <&> \"q\"\n", fill="C6EFCE", note="trimmed"),
            Patch(7, 4, "corrected", write=True, value=1234.5),
            Patch(8, 4, "corrected", write=True, value=True),
            Patch(9, 5, "corrected", write=True, value="no longer a formula"),
            Patch(10, 9, "corrected", write=True, value=7, fill="C6EFCE"),  # a new cell past the table
            Patch(40, 2, "corrected", write=True, value="a new row", note="added"),
            Patch(35, 1, "invalid", fill="FFC7CE"),
            Patch(31, 2, "corrected", write=True, value="inside a merge")]


def test_rich_workbook_same_as_openpyxl_and_other_parts_untouched(tmp_path):
    src = rich_book(tmp_path / "src.xlsx")
    fast, slow, a, b = both_ways(src, tmp_path, marks())
    assert [p.row for p in a.applied] == [p.row for p in b.applied] and len(a.deferred) == 1
    assert a.prior_fills == b.prior_fills == {(3, 2): "00FF00", (5, 1): None, (6, 3): None,
                                             (10, 9): None, (35, 1): None}
    assert_equivalent(src, fast, slow, {SHEET, "styles.xml", "comment1.xml", "commentsDrawing1.vml",
                                        "workbook.xml"})
    ws = openpyxl.load_workbook(fast)["Customers"]
    assert ws["A5"].comment.author == "Li" and ws["A5"].comment.text.startswith("call after 6pm\n---\n")
    assert ws.freeze_panes == "A2" and "A31:C31" in ws.merged_cells and "People" in ws.tables
    grid = pc.CalamineWorkbook.from_path(str(fast)).get_sheet_by_name("Customers").to_python()
    assert grid[9][4] == 2000.0  # E10's cached result survives (openpyxl's path loses it)


def test_demo_workbook_same_as_openpyxl(tmp_path):
    patches = [Patch(r, c, "corrected", write=True, value=f"v{r}.{c}", fill="C6EFCE", note=f"n{r}")
               for r in range(3, 20, 3) for c in (1, 2, 5)]
    report = ReportTab("sheetsync", (("sheetsync report",), ("cell", "problem"), ("B4", "=bad")))
    fast, slow, a, b = both_ways(DEMO, tmp_path, patches, report=report)
    assert len(a.applied) == len(b.applied) == len(patches)
    assert openpyxl.load_workbook(fast).sheetnames == openpyxl.load_workbook(slow).sheetnames
    assert_equivalent(DEMO, fast, slow, {SHEET, "styles.xml", "workbook.xml", "workbook.xml.rels", "comment1.xml",
                                         "commentsDrawing1.vml",
                                         "[Content_Types].xml", "sheet1.xml.rels"})


def test_random_patches_match_openpyxl(tmp_path):
    src = rich_book(tmp_path / "src.xlsx")
    rnd = random.Random(7)
    values = ["x", "=1+1", "", None, 0, -3, 2.25, False, "中文", "@cmd", "a\tb"]
    for round_ in range(4):
        patches = []
        for _ in range(25):
            row, col = rnd.randint(1, 45), rnd.randint(1, 12)
            kind = rnd.choice(["value", "mark", "clear", "both"])
            if kind == "clear":
                patches.append(Patch(row, col, "clear", clear=True, restore_fill=rnd.choice([None, "00FF00"])))
            else:
                patches.append(Patch(row, col, "corrected", write=kind != "mark", value=rnd.choice(values),
                                     fill=rnd.choice(["FFC7CE", "C6EFCE", None]) if kind != "value" else None,
                                     note=rnd.choice(["bad", None]) if kind != "value" else None))
        out = tmp_path / f"r{round_}"
        out.mkdir()
        fast, slow, a, b = both_ways(src, out, patches)
        assert a.prior_fills == b.prior_fills and len(a.applied) == len(b.applied)
        assert openpyxl_view(fast) == openpyxl_view(slow)
        assert calamine_view(fast, slow) == calamine_view(slow, slow)
        src = fast  # the next round patches the fast path's own output


def test_new_notes_create_comments_vml_and_links_that_round_trip(tmp_path):
    path = tmp_path / "plain.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["a", "b"])
    wb.save(path)
    conn = XlsxConnector(path)
    conn.apply([Patch(1, 2, "invalid", fill="FFC7CE", note="bad")])
    zf = zipfile.ZipFile(path)
    names = zf.namelist()
    assert "xl/comments1.xml" in names and "xl/drawings/vmlDrawing1.vml" in names
    assert b"legacyDrawing" in zf.read("xl/worksheets/sheet1.xml")
    assert b'Extension="vml"' in zf.read("[Content_Types].xml")
    assert conn.read().marks == {(1, 2): "sheetsync: bad"}
    conn.apply([Patch(1, 2, "clear", clear=True)])
    assert conn.read().marks == {} and b"x:Row" not in zipfile.ZipFile(path).read("xl/drawings/vmlDrawing1.vml")
    assert openpyxl.load_workbook(path).active["B1"].fill.fill_type is None


def test_shapes_images_and_cached_results_no_longer_block_a_write(tmp_path):
    src = rich_book(tmp_path / "src.xlsx")
    with zipfile.ZipFile(src, "a") as zf:
        zf.writestr("xl/drawings/drawing9.xml", b"<xdr:wsDr><xdr:sp><xdr:txBody/></xdr:sp></xdr:wsDr>")
        zf.writestr("xl/media/image9.png", b"\x89PNG")
    before = zipfile.ZipFile(src)
    XlsxConnector(src).apply([Patch(2, 1, "corrected", write=True, value="ok")])
    after = zipfile.ZipFile(src)
    for name in ("xl/drawings/drawing9.xml", "xl/media/image9.png"):
        assert after.read(name) == before.read(name)
    assert openpyxl.load_workbook(src).active["A2"].value == "ok"


def test_a_formula_cell_is_never_overwritten_and_calc_chain_is_kept(tmp_path):
    src = rich_book(tmp_path / "src.xlsx")
    with zipfile.ZipFile(src, "a") as zf:
        zf.writestr("xl/calcChain.xml", b'<calcChain xmlns="http://schemas.openxmlformats.org/'
                                        b'spreadsheetml/2006/main"><c r="E2" i="1"/></calcChain>')
    patches = [Patch(2, 5, "invalid", write=True, value=1, fill="FFC7CE"),
               Patch(3, 4, "corrected", write=True, value=999)]
    result = patch_xlsx(src.read_bytes(), None, patches, None)
    zf = zipfile.ZipFile(io.BytesIO(result.data))
    sheet = zf.read("xl/worksheets/sheet1.xml")
    assert b"<f>D2*2</f>" in sheet and "xl/calcChain.xml" in zf.namelist()
    assert b'fullCalcOnLoad="1"' in zf.read("xl/workbook.xml")  # D3 feeds E3's formula
    ws = openpyxl.load_workbook(io.BytesIO(result.data))["Customers"]
    assert ws["E2"].value == "=D2*2" and fill_code(ws["E2"].fill) == "FFC7CE"
    assert ws["D3"].value == 999


def test_no_recalc_asked_of_a_workbook_without_formulas(tmp_path):
    """fullCalcOnLoad makes Excel ask to save on every close: only where formulas need it."""
    path = tmp_path / "plain.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["a", "b"])
    wb.active.append([1, 2])
    wb.save(path)
    body = zipfile.ZipFile(path).read("xl/workbook.xml").replace(b' fullCalcOnLoad="1"', b"")
    data = _replace_part(path.read_bytes(), "xl/workbook.xml", body)
    result = patch_xlsx(data, None, [Patch(2, 1, "corrected", write=True, value=5)], None)
    assert b"fullCalcOnLoad" not in zipfile.ZipFile(io.BytesIO(result.data)).read("xl/workbook.xml")


def _replace_part(data: bytes, name: str, body: bytes) -> bytes:
    zin, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in zin.infolist():
            dst.writestr(info, body if info.filename == name else zin.read(info.filename))
    return out.getvalue()


def test_cells_and_rows_inserted_in_order(tmp_path):
    src = rich_book(tmp_path / "src.xlsx")
    patches = [Patch(3, 7, "corrected", write=True, value="G"), Patch(3, 6, "corrected", write=True, value="F"),
               Patch(50, 1, "corrected", write=True, value="last"), Patch(45, 1, "corrected", write=True, value="mid")]
    data = patch_xlsx(src.read_bytes(), None, patches, None).data
    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert sheet.index('r="E3"') < sheet.index('r="F3"') < sheet.index('r="G3"') < sheet.index('r="A4"')
    assert sheet.index('<row r="31"') < sheet.index('<row r="45"') < sheet.index('<row r="50"')


def test_report_tab_rewritten_in_place_and_shared_formula_master_falls_back(tmp_path):
    src = rich_book(tmp_path / "src.xlsx")
    conn = XlsxConnector(src)
    conn.apply([], report=ReportTab("sheetsync", (("one",), ("two", "2"))))
    conn.apply([], report=ReportTab("sheetsync", (("only",),)))
    wb = openpyxl.load_workbook(src)
    assert wb.sheetnames == ["Customers", "Other", "sheetsync"]
    assert wb["sheetsync"]["A1"].value == "only" and wb["sheetsync"].max_row == 1
    body = b'<c r="A1"><f t="shared" ref="A1:A2" si="0">1+1</f><v>2</v></c>'
    out = patch_xlsx(_with_cell(src, body), None, [Patch(1, 1, "corrected", write=True, value="x")], None).data
    assert body in zipfile.ZipFile(io.BytesIO(out)).read("xl/worksheets/sheet1.xml")  # never written over


def _with_cell(src: Path, cell: bytes) -> bytes:
    data = src.read_bytes()
    zin = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in zin.infolist():
            body = zin.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                start = body.index(b'<c r="A1"')
                body = body[:start] + cell + body[body.index(b"</c>", start) + 4:]
            dst.writestr(info, body)
    return out.getvalue()


def test_date_formats_are_recognised_builtin_custom_and_chinese():
    from sheetsync.connectors.xlsx.sheetxml import Styles, is_date_code
    body = ('<styleSheet xmlns="x"><numFmts count="2"><numFmt formatCode="yyyy&quot;年&quot;m&quot;月&quot;d&quot;日&quot;"'
            ' numFmtId="176"/><numFmt numFmtId="177" formatCode="#,##0.00_);[Red]\\(#,##0.00\\)"/></numFmts>'
            '<fills count="1"><fill/></fills><cellXfs count="4"><xf numFmtId="0"/><xf numFmtId="176"/>'
            '<xf numFmtId="177" fontId="3"/><xf numFmtId="57"/></cellXfs></styleSheet>').encode()
    styles = Styles(body)
    assert [styles.is_date(i) for i in range(4)] == [False, True, False, True]  # 57: a CJK built-in date
    assert styles.with_num_fmt(2, 14) == 4 and b'numFmtId="14"' in styles.new_xfs[0] and b'fontId="3"' in styles.new_xfs[0]
    assert not any(map(is_date_code, ["General", "0.00", '"Day "0', "[$-804]#,##0", "0.00E+00", "@"]))
    assert all(map(is_date_code, ["yyyy-mm-dd", "[$-409]mmm d, yyyy;@", "[h]:mm:ss", "h:mm AM/PM"]))


def test_dates_are_serials_in_the_workbooks_date_system():
    import datetime as dt
    from sheetsync.connectors.xlsx.sheetxml import serial
    assert serial(dt.date(2024, 1, 7)) == 45298 and serial(dt.date(2012, 1, 2), date1904=True) == 39448
    assert serial(dt.datetime(2024, 1, 7, 13, 30)) == 45298 + 13.5 / 24


@pytest.mark.parametrize("custom", [False, True])
def test_a_date_in_a_column_without_dates_gets_the_iso_format(tmp_path, custom):
    """ISO reads the same in every locale, beside dates people typed as text; the style sheet
    gains one <numFmt> (in a <numFmts> it makes when the workbook has none) and reuses it."""
    import datetime as dt
    path = tmp_path / "d.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["Day", "At", "Paid"])
    wb.active.append(["2024/1/7", "7 Jan 2024 13:30", 1.5])
    wb.active.append(["2024/1/8", "8 Jan 2024 09:00", 2])
    if custom:  # the workbook already has a custom format, so it has <numFmts>
        wb.active["C2"].number_format = '0.00" 元"'
    wb.save(path)
    patches = [Patch(2, 1, "corrected", write=True, value="2024-01-07", value_type="date"),
               Patch(2, 2, "corrected", write=True, value="2024-01-07 13:30:00", value_type="datetime"),
               Patch(3, 1, "corrected", write=True, value="2024-01-08", value_type="date")]
    out = tmp_path / "out.xlsx"
    out.write_bytes(patch_xlsx(path.read_bytes(), None, patches, None).data)
    ws = openpyxl.load_workbook(out).active
    assert ws["A2"].value == dt.datetime(2024, 1, 7) and ws["A2"].number_format == "yyyy-mm-dd"
    assert ws["A3"].value == dt.datetime(2024, 1, 8) and ws["A3"].number_format == "yyyy-mm-dd"
    assert ws["B2"].value == dt.datetime(2024, 1, 7, 13, 30) and ws["B2"].number_format == "yyyy-mm-dd hh:mm"
    assert ws["C2"].number_format == ('0.00" 元"' if custom else "General")
    with zipfile.ZipFile(out) as z:
        styles = z.read("xl/styles.xml")
    assert styles.count(b'formatCode="yyyy-mm-dd"') == 1 and styles.count(b"<numFmts") == 1
    count = int(re.search(rb'<numFmts count="(\d+)"', styles).group(1))
    assert count == styles.count(b"<numFmt ")


def _hf_book(path: Path, person_note: bool) -> Path:
    from book_parts import add_header_picture
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Customers"
    ws.append(["ID", "Name"])
    ws.append(["C001", "Bob"])
    if person_note:
        ws["A2"].comment = Comment("call him after 6pm", "Li")
    wb.save(path)
    add_header_picture(path)
    return path


def _note_cells(vml: bytes) -> set[tuple[int, int]]:
    """(row, column), 0-based as VML keeps them, of every note shape in a VML part."""
    import re
    return {(int(r), int(c)) for r, c in re.findall(
        rb"<(?:\w+:)?Row>(\d+)</(?:\w+:)?Row>\s*<(?:\w+:)?Column>(\d+)</", vml)}


@pytest.mark.parametrize("person_note", [False, True])
def test_a_sheet_with_a_print_header_picture_gets_its_notes_and_keeps_the_picture(tmp_path, person_note):
    """The header picture's VML is listed first among the sheet's vmlDrawing relationships. The
    new note goes into the notes' VML (the one <legacyDrawing> names, created when missing), the
    picture's VML, image and <legacyDrawingHF> stay byte for byte, and openpyxl reads the note."""
    import re
    path = _hf_book(tmp_path / "hf.xlsx", person_note)
    before = zipfile.ZipFile(path)
    hf_vml, logo = before.read("xl/drawings/vmlDrawingHF1.vml"), before.read("xl/media/headerlogo.png")
    patch = Patch(row=2, col=2, kind="invalid", fill="FFC7CE", note="sheetsync: Name is odd")
    applied = XlsxConnector(path).apply([patch])
    assert applied.applied == (patch,)
    z = zipfile.ZipFile(path)
    assert z.read("xl/drawings/vmlDrawingHF1.vml") == hf_vml and z.read("xl/media/headerlogo.png") == logo
    sheet = z.read("xl/worksheets/sheet1.xml")
    assert re.search(rb'<legacyDrawingHF [^>]*r:id="rIdHF1"', sheet)
    rid = re.search(rb'<legacyDrawing [^>]*r:id="([^"]+)"', sheet).group(1).decode()
    assert sheet.index(b"<legacyDrawing ") < sheet.index(b"<legacyDrawingHF")  # CT_Worksheet's order
    rels = z.read("xl/worksheets/_rels/sheet1.xml.rels").decode()
    target = re.search(rf'Id="{rid}"[^>]*Target="/?([^"]+)"|Target="/?([^"]+)"[^>]*Id="{rid}"', rels)
    notes_vml = z.read((target.group(1) or target.group(2)).replace("../", "xl/"))
    assert _note_cells(notes_vml) == ({(1, 0), (1, 1)} if person_note else {(1, 1)})
    if not person_note:  # a new notes VML takes a shape-id block the header's VML does not use
        assert b'data="2"' in notes_vml and b"_x0000_s2049" in notes_vml
    ws = openpyxl.load_workbook(path)["Customers"]
    assert ws["B2"].comment.text == "sheetsync: Name is odd" and fill_code(ws["B2"].fill) == "FFC7CE"
    assert (ws["A2"].comment.text if ws["A2"].comment else None) == ("call him after 6pm" if person_note else None)


def test_a_threaded_comment_on_another_sheet_does_not_block_the_direct_patch(tmp_path):
    """A discussion thread on the "Other" tab: the synced sheet is patched directly and the thread,
    its persons list and the other sheet stay byte for byte. A thread on the synced sheet itself
    still goes to openpyxl's path, whose loss check refuses it."""
    from book_parts import add_threaded_comment
    from sheetsync.errors import FeatureLossError
    def book(name: str, sheet_part: str, ref: str) -> Path:
        wb = openpyxl.Workbook()
        wb.active.title = "Customers"
        wb.active.append(["ID", "Name"])
        wb.active.append(["C001", "Bob"])
        wb.create_sheet("Other")["A1"] = "talk"
        wb.save(tmp_path / name)
        add_threaded_comment(tmp_path / name, sheet_part, ref)
        return tmp_path / name

    path = book("tc.xlsx", "xl/worksheets/sheet2.xml", "A1")
    before = {n: zipfile.ZipFile(path).read(n) for n in ("xl/threadedComments/threadedComment1.xml",
                                                          "xl/persons/person.xml", "xl/worksheets/sheet2.xml",
                                                          "xl/worksheets/_rels/sheet2.xml.rels")}
    patch = Patch(row=2, col=2, kind="corrected", write=True, value="Bob Smith", fill="C6EFCE",
                  note="sheetsync: changed")
    assert XlsxConnector(path, sheet="Customers").apply([patch]).applied == (patch,)
    z = zipfile.ZipFile(path)
    assert {n: z.read(n) for n in before} == before
    ws = openpyxl.load_workbook(path)["Customers"]
    assert ws["B2"].value == "Bob Smith" and ws["B2"].comment.text == "sheetsync: changed"
    same_sheet = book("tc1.xlsx", "xl/worksheets/sheet1.xml", "B2")
    with pytest.raises(FeatureLossError, match="threaded comments"):
        XlsxConnector(same_sheet, sheet="Customers").apply([Patch(row=2, col=1, kind="invalid", fill="FFC7CE")])


RICH_NOTE = (b'<text><r><rPr><b/><sz val="9"/><color indexed="81"/><rFont val="Tahoma"/><family val="2"/></rPr>'
             b'<t>Li Na:</t></r><r><rPr><sz val="9"/><color indexed="81"/><rFont val="Tahoma"/><family val="2"/>'
             b'</rPr><t xml:space="preserve">\ncall after 6pm &amp; ask for Wang</t></r></text>')


def test_a_persons_rich_text_note_comes_back_byte_for_byte_when_the_mark_clears(tmp_path):
    """A note with a bold author line, as Excel writes one: marking the cell adds sheetsync's text as
    a run of its own after the person's runs, and clearing the mark leaves the comments part exactly
    as it was before sheetsync touched it."""
    from book_parts import rewrite_parts
    path = tmp_path / "rich.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["ID", "Name"])
    wb.active.append(["C001", "Bob"])
    wb.active["B2"].comment = Comment("placeholder", "Li Na")
    wb.save(path)
    rewrite_parts(path, lambda n, b: b.replace(b"<text><t>placeholder</t></text>", RICH_NOTE)
                  if n == "xl/comments/comment1.xml" else b)
    original = zipfile.ZipFile(path).read("xl/comments/comment1.xml")
    assert RICH_NOTE in original

    mark = Patch(row=2, col=2, kind="invalid", fill="FFC7CE", note="sheetsync: Name looks odd")
    XlsxConnector(path).apply([mark])
    marked = zipfile.ZipFile(path).read("xl/comments/comment1.xml")
    assert RICH_NOTE[:-len(b"</text>")] in marked  # the person's runs, untouched
    note = openpyxl.load_workbook(path).active["B2"].comment.text
    assert note == "Li Na:\ncall after 6pm & ask for Wang\n---\nsheetsync: Name looks odd"

    again = Patch(row=2, col=2, kind="invalid", fill="FFC7CE", note="sheetsync: Name is still odd")
    XlsxConnector(path).apply([again])  # a new message replaces sheetsync's run, not the person's
    assert openpyxl.load_workbook(path).active["B2"].comment.text.endswith("---\nsheetsync: Name is still odd")

    XlsxConnector(path).apply([Patch(row=2, col=2, kind="clear", clear=True, fill="FFC7CE")])
    assert zipfile.ZipFile(path).read("xl/comments/comment1.xml") == original
    ws = openpyxl.load_workbook(path).active
    assert ws["B2"].comment.text == "Li Na:\ncall after 6pm & ask for Wang" and fill_code(ws["B2"].fill) is None
