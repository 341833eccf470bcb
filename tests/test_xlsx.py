"""The xlsx connector on real workbooks built in tmp_path."""
from __future__ import annotations

import importlib.util
import os
import stat
import zipfile
from pathlib import Path

import openpyxl
import pytest
import python_calamine as pc
from openpyxl.comments import Comment
from openpyxl.styles import PatternFill

from sheetsync.connectors import open_connector
from sheetsync.connectors.xlsx import XlsxConnector
from sheetsync.connectors.xlsx_guard import lost_features, open_zip
from sheetsync.errors import FeatureLossError, SourceBusy, SourceChanged, SourceError
from sheetsync.model import Patch, ReportTab, SheetRow


def make_book(path: Path) -> Path:
    """Title in row 1, merged header in row 3, data below, a totals row at the bottom."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Customers"
    ws["A1"] = "Customer list 2024"
    ws["A3"], ws["B3"], ws["D3"] = "Name", "Contact", "Email"
    ws.merge_cells("B3:C3")
    ws.append(["张三", 13800138000, "１２３", "a@x.cn"])
    ws.append(["Bob", "+86-138", None, "b@x.cn"])
    ws.append([])
    ws.append(["Ann", 1.5, True, None])
    ws.append(["Total", 3, None, None])
    wb.save(path)
    return path


def fill_of(cell) -> str | None:
    return cell.fill.fgColor.rgb[-6:] if cell.fill.fill_type == "solid" else None


def test_reads_header_below_title_merged_header_and_totals(tmp_path):
    conn = XlsxConnector(make_book(tmp_path / "c.xlsx"), header_row=3, totals_row=True)
    data = conn.read()
    assert data.sheet == "Customers"
    assert data.header == ("Name", "Contact", "", "Email")
    assert [r.number for r in data.rows] == [4, 5, 7]
    assert data.rows[0].values == ("张三", 13800138000.0, "１２３", "a@x.cn")
    assert data.rows[2].values == ("Ann", 1.5, True, None)
    assert len(data.fingerprint) == 64 and data.marks == {}


def test_rows_from_grid_pads_ragged_rows_and_drops_a_wide_totals_row():
    from sheetsync.connectors.xlsx import rows_from_grid
    grid = [["id", "name", ""], ["1", "", None], [], ["2", "b"], [None, None, None, None, "total"]]
    header, rows = rows_from_grid(grid, 1, True, "x")
    assert header == ("id", "name")  # the totals row's extra width goes with it
    assert rows == (SheetRow(2, ("1", None)), SheetRow(4, ("2", "b")))
    header, rows = rows_from_grid(grid, 1, False, "x")
    assert header == ("id", "name", "", "", "") and rows[-1] == SheetRow(5, (None, None, None, None, "total"))
    assert rows[0] == SheetRow(2, ("1", None, None, None, None))


def test_rows_from_grid_keeps_full_rows_as_they_are_and_pads_only_rows_with_gaps():
    from sheetsync.connectors.xlsx import rows_from_grid
    grid = [["t", "", ""], ["id", "n", "x"], ["1", 2.0, True], ["", "", ""], ["3", "", "z"], ["4", "q", "w", "extra"],
            ["5", 0, False]]
    header, rows = rows_from_grid(grid, 2, False, "x")
    assert header == ("id", "n", "x", "")
    assert [(r.number, r.values) for r in rows] == [(3, ("1", 2.0, True, None)), (5, ("3", None, "z", None)),
                                                    (6, ("4", "q", "w", "extra")), (7, ("5", 0, False, None))]
    assert all(type(r) is SheetRow and r.get(9) is None for r in rows)
    square = [["id", "n"], ["1", "a"], ["2", "b"]]
    assert rows_from_grid(square, 1, False, "x")[1] == (SheetRow(2, ("1", "a")), SheetRow(3, ("2", "b")))


def test_without_totals_row_keeps_last_row_and_registry_builds_it(tmp_path):
    conn = open_connector("xlsx", path=make_book(tmp_path / "c.xlsx"), header_row=3)
    assert [r.number for r in conn.read().rows] == [4, 5, 7, 8]


def test_formula_text_stays_text_for_openpyxl_and_calamine(tmp_path):
    path = make_book(tmp_path / "c.xlsx")
    conn = XlsxConnector(path, header_row=3)
    data = conn.read()
    risky = ["=1+1", "+SUM(A1)", "-2+3", "@cmd"]
    patches = [Patch(4 + i if i < 2 else 7, 4, "corrected", write=True, value=v)
               for i, v in enumerate(risky[:3])]
    applied = conn.apply(patches + [Patch(8, 1, "corrected", write=True, value="@cmd")],
                         expected=data.fingerprint)
    assert len(applied.applied) == 4
    ws = openpyxl.load_workbook(path)["Customers"]
    assert (ws["D4"].value, ws["D4"].data_type) == ("=1+1", "s")
    assert ws["D5"].value == "+SUM(A1)" and ws["A8"].value == "@cmd"
    grid = pc.CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Customers").to_python(
        skip_empty_area=False)
    assert grid[3][3] == "=1+1" and grid[6][3] == "-2+3"


def test_numbers_and_bools_keep_their_type(tmp_path):
    path = make_book(tmp_path / "c.xlsx")
    conn = XlsxConnector(path, header_row=3)
    conn.apply([Patch(4, 2, "corrected", write=True, value=5), Patch(5, 3, "corrected", write=True,
                                                                    value=False)])
    ws = openpyxl.load_workbook(path)["Customers"]
    assert ws["B4"].value == 5 and ws["B4"].data_type == "n"
    assert ws["C5"].value is False


def test_fill_and_note_set_then_cleared_keeping_persons_note_and_fill(tmp_path):
    path = make_book(tmp_path / "c.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb["Customers"]
    ws["B4"].comment = Comment("call after 6pm", "Li")
    ws["D4"].fill = PatternFill("solid", fgColor="00FF00")
    wb.save(path)
    conn = XlsxConnector(path, header_row=3)
    marks = [Patch(4, 2, "invalid", fill="FFC7CE", note="phone is invalid"),
             Patch(4, 4, "corrected", fill="C6EFCE", note="email lower-cased"),
             Patch(5, 4, "duplicate", fill="FFD8A8", note="same as row 4")]
    applied = conn.apply(marks, expected=conn.read().fingerprint)
    assert applied.prior_fills == {(4, 2): None, (4, 4): "00FF00", (5, 4): None}
    data = conn.read()
    assert data.marks[(4, 2)] == "call after 6pm\n---\nsheetsync: phone is invalid"
    assert set(data.marks) == {(4, 2), (4, 4), (5, 4)}
    ws = openpyxl.load_workbook(path)["Customers"]
    assert fill_of(ws["B4"]) == "FFC7CE" and ws["B4"].comment.author == "Li"
    # a person recolours D5 after sheetsync marked it: the clear must leave that colour
    wb = openpyxl.load_workbook(path)
    wb["Customers"]["D5"].fill = PatternFill("solid", fgColor="123456")
    wb.save(path)
    clears = [Patch(4, 2, "clear", clear=True, restore_fill=None),
              Patch(4, 4, "clear", clear=True, restore_fill="00FF00", fill="C6EFCE"),
              Patch(5, 4, "clear", clear=True, restore_fill=None)]
    assert len(conn.apply(clears).applied) == 3
    ws = openpyxl.load_workbook(path)["Customers"]
    assert fill_of(ws["B4"]) is None and ws["B4"].comment.text == "call after 6pm"
    assert ws["B4"].comment.author == "Li"
    assert fill_of(ws["D4"]) == "00FF00" and ws["D4"].comment is None
    assert fill_of(ws["D5"]) == "123456" and ws["D5"].comment is None
    assert conn.read().marks == {}


def test_person_edit_defers_patch_by_expected_and_anchor(tmp_path):
    path = make_book(tmp_path / "c.xlsx")
    conn = XlsxConnector(path, header_row=3)
    wb = openpyxl.load_workbook(path)
    wb["Customers"]["D4"] = "new@x.cn"
    wb.save(path)
    fp = conn.read().fingerprint
    patches = [Patch(4, 4, "corrected", write=True, value="a@x.cn", expected="A@x.cn"),
               Patch(5, 4, "corrected", write=True, value="bob@x.cn", expected="b@x.cn",
                     anchor=(1, "Bob")),
               Patch(7, 2, "corrected", write=True, value=2, expected="1.5", anchor=(1, "Someone"))]
    result = conn.apply(patches, expected=fp)
    assert [p.row for p in result.applied] == [5]
    assert [p.row for p in result.deferred] == [4, 7]
    ws = openpyxl.load_workbook(path)["Customers"]
    assert ws["D4"].value == "new@x.cn" and ws["D5"].value == "bob@x.cn" and ws["B7"].value == 1.5


@pytest.mark.parametrize("lock", ["~$c.xlsx", ".~lock.c.xlsx#"])
def test_lock_file_refuses_and_leaves_file_untouched(tmp_path, lock):
    path = make_book(tmp_path / "c.xlsx")
    before = path.read_bytes()
    (tmp_path / lock).write_text("owner")
    with pytest.raises(SourceBusy) as info:
        XlsxConnector(path, header_row=3).apply([Patch(4, 1, "corrected", write=True, value="x")])
    assert "close the workbook" in info.value.hint and info.value.exit_code == 3
    assert path.read_bytes() == before


def test_fingerprint_mismatch_refuses(tmp_path):
    path = make_book(tmp_path / "c.xlsx")
    conn = XlsxConnector(path, header_row=3)
    before = path.read_bytes()
    with pytest.raises(SourceChanged):
        conn.apply([Patch(4, 1, "corrected", write=True, value="x")], expected="0" * 64)
    assert path.read_bytes() == before


def test_file_mode_preserved_and_report_tab_written(tmp_path):
    path = make_book(tmp_path / "c.xlsx")
    os.chmod(path, 0o640)
    conn = XlsxConnector(path, header_row=3)
    report = ReportTab("sheetsync", (("sheetsync report",), ("cell", "problem"), ("D4", "=bad")))
    conn.apply([Patch(4, 1, "corrected", write=True, value="Zhang")], report=report)
    conn.apply([], report=ReportTab("sheetsync", (("only title",),)))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Customers", "sheetsync"]
    assert wb["sheetsync"]["A1"].value == "only title" and wb["sheetsync"].max_row == 1
    assert wb["Customers"]["A4"].value == "Zhang"
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_patch_inside_merged_range_is_deferred(tmp_path):
    path = make_book(tmp_path / "c.xlsx")
    wb = openpyxl.load_workbook(path)
    wb["Customers"].merge_cells("A4:A5")
    wb.save(path)
    result = XlsxConnector(path, header_row=3).apply([Patch(5, 1, "corrected", write=True, value="x")])
    assert result.applied == () and len(result.deferred) == 1


def test_report_tab_may_not_be_the_synced_sheet(tmp_path):
    path = make_book(tmp_path / "c.xlsx")
    with pytest.raises(SourceError):
        XlsxConnector(path, header_row=3).apply([], report=ReportTab("Customers", (("x",),)))


def add_parts(path: Path, parts: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "a") as zf:
        for name, body in parts.items():
            zf.writestr(name, body)


def test_feature_loss_refused_unless_allowed(tmp_path):
    from book_parts import add_threaded_comment
    path = make_book(tmp_path / "c.xlsx")
    add_threaded_comment(path, "xl/worksheets/sheet1.xml")  # on the synced sheet: openpyxl's path
    add_parts(path, {"xl/drawings/drawing1.xml": b"<xdr:wsDr><xdr:sp><xdr:txBody/></xdr:sp></xdr:wsDr>",
                     "xl/media/image1.png": b"\x89PNG"})
    before = path.read_bytes()
    patch = Patch(4, 1, "corrected", write=True, value="x")
    with pytest.raises(FeatureLossError) as info:
        XlsxConnector(path, header_row=3).apply([patch])
    assert "threaded comments" in str(info.value) and "shapes" in str(info.value)
    if importlib.util.find_spec("PIL") is None:
        assert "images" in str(info.value)
    assert "allow_feature_loss" in info.value.hint
    assert path.read_bytes() == before
    assert XlsxConnector(path, header_row=3, allow_feature_loss=True).apply([patch]).applied


def test_cached_formula_results_detected(tmp_path):
    path = tmp_path / "f.xlsx"
    sheet = (b'<worksheet><sheetData><row r="1"><c r="A1"><f>1+1</f><v>2</v></c></row>'
             b'</sheetData></worksheet>')
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("xl/worksheets/sheet1.xml", sheet)
        zf.writestr("xl/worksheets/sheet2.xml", b'<c r="B1"><f t="shared" si="0"/><v>3</v></c>')
    assert lost_features(open_zip(path.read_bytes(), "f"))[0].startswith("cached formula")
    with zipfile.ZipFile(path, "w") as zf:  # openpyxl's own output: formula without a result
        zf.writestr("xl/worksheets/sheet1.xml", b'<c r="A1"><f>1+1</f><v /></c>')
    assert lost_features(open_zip(path.read_bytes(), "f")) == []


def test_zip_bomb_refused(tmp_path):
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/worksheets/sheet1.xml", b"\0" * (20 << 20))
    with pytest.raises(SourceError) as info:
        XlsxConnector(path).read()
    assert "bomb" in info.value.hint and info.value.where == str(path)


@pytest.mark.parametrize("body", [b"not a zip at all", b"PK\x03\x04broken"])
def test_corrupt_file_names_the_file(tmp_path, body):
    path = tmp_path / "bad.xlsx"
    path.write_bytes(body)
    with pytest.raises(SourceError) as info:
        XlsxConnector(path).read()
    assert str(path) in str(info.value)


def test_missing_file_missing_sheet_and_empty_sheet(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        XlsxConnector(tmp_path / "none.xlsx").read()
    path = make_book(tmp_path / "c.xlsx")
    with pytest.raises(SourceError) as info:
        XlsxConnector(path, sheet="Orders").read()
    assert "Customers" in info.value.hint and info.value.where.endswith("[Orders]")
    wb = openpyxl.load_workbook(path)
    wb.create_sheet("Empty")
    wb.save(path)
    with pytest.raises(SourceError, match="no header"):
        XlsxConnector(path, sheet="Empty").read()


def test_snapshot_is_the_file_bytes(tmp_path):
    path = make_book(tmp_path / "c.xlsx")
    assert XlsxConnector(path).snapshot() == path.read_bytes()


def test_features_openpyxl_keeps_are_not_flagged(tmp_path):
    from openpyxl.chart import BarChart, Reference
    from openpyxl.formatting.rule import DataBarRule
    from openpyxl.worksheet.datavalidation import DataValidation
    path = make_book(tmp_path / "c.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb["Customers"]
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=2, min_row=3, max_row=8))
    ws.add_chart(chart, "F2")
    ws["A4"].comment = Comment("a person's note", "Li")
    ws.conditional_formatting.add("B4:B8", DataBarRule(start_type="min", end_type="max", color="638EC6"))
    rule = DataValidation(type="list", formula1='"a,b"')
    ws.add_data_validation(rule)
    rule.add("C4")
    wb.save(path)
    assert lost_features(open_zip(path.read_bytes(), "c")) == []
    conn = XlsxConnector(path, header_row=3)
    conn.apply([Patch(4, 2, "invalid", fill="FFC7CE", note="bad")], expected=conn.read().fingerprint)
    ws = openpyxl.load_workbook(path)["Customers"]
    assert len(ws._charts) == 1 and ws["A4"].comment.text == "a person's note"


def test_a_read_only_workbook_is_never_rewritten(tmp_path):
    """chmod 0444 means "do not change": an os.replace would ignore it, so sheetsync checks."""
    import os
    from sheetsync.errors import SourceBusy
    from sheetsync.model import Patch
    from openpyxl import Workbook
    from sheetsync.connectors.xlsx import XlsxConnector
    path = tmp_path / "ro.xlsx"
    wb = Workbook()
    wb.active.append(["id", "name"])
    wb.active.append(["C1", "Ann"])
    wb.save(path)
    os.chmod(path, 0o444)
    before = path.read_bytes()
    with pytest.raises(SourceBusy, match="read-only"):
        XlsxConnector(path).apply([Patch(row=2, col=2, kind="corrected", write=True, value="Anne")])
    assert path.read_bytes() == before


def test_error_cell_scan_finds_the_mark_across_read_blocks(tmp_path):
    import io
    import zipfile

    from sheetsync.connectors.xlsx_guard import _has_error_cell
    xml = b'<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="e"><v>#N/A</v></c></row></sheetData>'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("s.xml", xml)
        zf.writestr("clean.xml", xml.replace(b't="e"', b't="n"'))
    with zipfile.ZipFile(buf) as zf:
        at = xml.index(b't="e"')
        for chunk in (1, 2, 3, 4, 5, 7, at, at + 1, at + 2, len(xml)):
            assert _has_error_cell(zf, "s.xml", chunk) and not _has_error_cell(zf, "clean.xml", chunk), chunk


@pytest.mark.parametrize("kind", ["strict", "ods_named_xlsx", "xlsb_named_xlsx"])
def test_a_workbook_sheetsync_cannot_write_is_refused_before_the_store_commits(tmp_path, kind):
    """Strict Open XML, .ods and .xlsb content: calamine reads them, the write-back cannot. The run
    stops at the read with a clear message, nothing in the store, the file untouched."""
    import sqlite3

    from book_parts import ods_book, simple_book, rewrite_parts, strict_book
    from sheetsync.engine import sync_once
    book = tmp_path / "c.xlsx"
    rows = [["ID", "Name"], ["C001", " Bob "]]
    if kind == "strict":
        strict_book(book, rows)
    elif kind == "ods_named_xlsx":
        ods_book(book, rows)
    else:  # the binary workbook's parts are not XML: its zip layout is what gives it away
        simple_book(book, rows)
        rewrite_parts(book, lambda n, b: None if n == "xl/workbook.xml" else b, {"xl/workbook.bin": b"\x83\x01\x00"})
    before = book.read_bytes()
    layout = tmp_path / "c.yaml"
    layout.write_text("table: t\nsource: {kind: xlsx, path: c.xlsx, sheet: Customers}\nstore: s.db\nkey: id\n"
                      "columns:\n  id: {header: ID}\n  name: {header: Name}\n", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        sync_once(layout)
    assert "cannot write corrections back" in info.value.message and "save it as" in info.value.hint
    assert book.read_bytes() == before
    db = sqlite3.connect(tmp_path / "s.db")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "t" not in tables or db.execute('SELECT COUNT(*) FROM "t"').fetchone() == (0,)
    with pytest.raises(SourceError, match="cannot write corrections back"):  # an outbox replay, too
        XlsxConnector(book, sheet="Customers").apply([Patch(2, 2, "corrected", write=True, value="Bob")])
    assert book.read_bytes() == before


def test_loss_check_knows_openpyxl_drops_header_and_background_pictures(tmp_path):
    """Whether Pillow is installed or not: openpyxl's round trip really drops both (checked here),
    so the fallback must refuse them."""
    from book_parts import PNG, add_header_picture, rewrite_parts, simple_book
    book = simple_book(tmp_path / "b.xlsx", [["ID"], ["C1"]])
    add_header_picture(book)
    rewrite_parts(book, lambda n, b: b.replace(b"</worksheet>", b'<picture r:id="rIdHF1" xmlns:r="http://schemas.'
                                               b'openxmlformats.org/officeDocument/2006/relationships"/></worksheet>')
                  if n == "xl/worksheets/sheet1.xml" else b)
    lost = lost_features(open_zip(book.read_bytes(), "b"))
    assert {"pictures in the print header or footer", "sheet background pictures"} <= set(lost)
    openpyxl.load_workbook(book).save(tmp_path / "round.xlsx")
    sheet = zipfile.ZipFile(tmp_path / "round.xlsx").read("xl/worksheets/sheet1.xml")
    assert b"legacyDrawingHF" not in sheet and b"<picture" not in sheet
    plain = simple_book(tmp_path / "p.xlsx", [["ID"], ["C1"]])
    assert lost_features(open_zip(plain.read_bytes(), "p")) == []


def test_loss_check_knows_connections_custom_xml_and_2010_drop_down_lists(tmp_path):
    """More of what openpyxl drops (the round trip here shows it), named before a write."""
    from book_parts import rewrite_parts, simple_book
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    book = simple_book(tmp_path / "b.xlsx", [["ID"], ["C1"]])
    ext = (b'<extLst><ext uri="{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}" xmlns:x14="http://schemas.microsoft.com/'
           b'office/spreadsheetml/2009/9/main"><x14:dataValidations count="1" xmlns:xm="http://schemas.microsoft.'
           b'com/office/excel/2006/main"><x14:dataValidation type="list"><x14:formula1><xm:f>Other!$A$1:$A$3'
           b'</xm:f></x14:formula1><xm:sqref>A2</xm:sqref></x14:dataValidation></x14:dataValidations></ext></extLst>')

    def edit(name: str, body: bytes) -> bytes:
        if name == "xl/_rels/workbook.xml.rels":
            return body.replace(b"</Relationships>", f'<Relationship Id="rIdC" Type="{rel}/connections" Target='
                                f'"connections.xml"/><Relationship Id="rIdX" Type="{rel}/customXml" Target='
                                f'"../customXml/item1.xml"/></Relationships>'.encode())
        return body.replace(b"</worksheet>", ext + b"</worksheet>") if name == "xl/worksheets/sheet1.xml" else body
    rewrite_parts(book, edit, {"xl/connections.xml": b'<connections xmlns="http://schemas.openxmlformats.org/'
                               b'spreadsheetml/2006/main"><connection id="1" name="q" type="5"><dbPr connection='
                               b'"Provider=x" command="SELECT 1"/></connection></connections>',
                               "customXml/item1.xml": b"<root/>"})
    lost = " | ".join(lost_features(open_zip(book.read_bytes(), "b")))
    assert "data connections" in lost and "custom XML data" in lost and "another sheet" in lost
    with pytest.warns(UserWarning):  # openpyxl says it drops the 2010 drop-down list
        openpyxl.load_workbook(book).save(tmp_path / "round.xlsx")
    z = zipfile.ZipFile(tmp_path / "round.xlsx")
    assert not {"xl/connections.xml", "customXml/item1.xml"} & set(z.namelist())
    assert b"dataValidation" not in z.read("xl/worksheets/sheet1.xml")
