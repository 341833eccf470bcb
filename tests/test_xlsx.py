"""The xlsx connector on real workbooks built in tmp_path."""
from __future__ import annotations

import importlib.util
import os
import re
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
from sheetsync.connectors.xlsx.guard import lost_features, open_zip
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
    from sheetsync.connectors.grid import rows_from_grid
    grid = [["id", "name", ""], ["1", "", None], [], ["2", "b"], [None, None, None, None, "total"]]
    header, rows = rows_from_grid(grid, 1, True, "x")
    assert header == ("id", "name")  # the totals row's extra width goes with it
    assert rows == (SheetRow(2, ("1", None)), SheetRow(4, ("2", "b")))
    header, rows = rows_from_grid(grid, 1, False, "x")
    assert header == ("id", "name", "", "", "") and rows[-1] == SheetRow(5, (None, None, None, None, "total"))
    assert rows[0] == SheetRow(2, ("1", None, None, None, None))


def test_rows_from_grid_keeps_full_rows_as_they_are_and_pads_only_rows_with_gaps():
    from sheetsync.connectors.grid import rows_from_grid
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

    from sheetsync.connectors.xlsx.guard import _has_marks
    xml = b'<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="e"><v>#N/A</v></c></row></sheetData>'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("s.xml", xml)
        zf.writestr("clean.xml", xml.replace(b't="e"', b't="n"'))
    with zipfile.ZipFile(buf) as zf:
        at = xml.index(b't="e"')
        for chunk in (1, 2, 3, 4, 5, 7, at, at + 1, at + 2, len(xml)):
            mark = (b't="e"',)
            assert _has_marks(zf, "s.xml", mark, chunk) and not _has_marks(zf, "clean.xml", mark, chunk), chunk


# ---------------------------------------------------------------- typed write-back, formulas, 1904

def orders_book(path: Path, epoch1904: bool = False) -> Path:
    """Amounts with a money format under a SUM, real dates and date-times with the column's own
    formats, a yes/no column, and formula cells (cached results spliced in, as Excel saves them)."""
    import datetime as dt
    from openpyxl.utils.datetime import CALENDAR_MAC_1904
    wb = openpyxl.Workbook()
    if epoch1904:
        wb.epoch = CALENDAR_MAC_1904
    ws = wb.active
    ws.title = "Orders"
    ws.append(["ID", "Amount", "Day", "At", "Paid", "Phone", "Email", "Double"])
    ws.append(["O1", 880, dt.date(2024, 1, 5), dt.datetime(2024, 1, 5, 9, 15), True, "=\"13800138000\"",
               "=\"a@x.cn\"", "=B2*2"])
    ws.append(["O2", 9999.999, "2024/1/7", "2024-01-07 13:30", "yes", "+86 139 0013 9000",
               "=\"bad@@x\"", "=B3*2"])
    ws.append(["O3", 12.5, dt.date(2024, 1, 9), dt.datetime(2024, 1, 9, 18, 0), False, "+86 137 0013 7000",
               "c@x.cn", "=B4*2"])
    ws.append(["Total", "=SUM(B2:B4)"])
    for r in range(2, 6):
        ws[f"B{r}"].number_format = "#,##0.00"
    for r in (2, 4):
        ws[f"C{r}"].number_format = "yyyy/mm/dd"
        ws[f"D{r}"].number_format = "yyyy-mm-dd hh:mm"
    wb.save(path)
    cached = {b"<f>\"13800138000\"</f><v></v>": b"<f>\"13800138000\"</f><v>13800138000</v>",
              b"<f>\"a@x.cn\"</f><v></v>": b"<f>\"a@x.cn\"</f><v>a@x.cn</v>",
              b"<f>\"bad@@x\"</f><v></v>": b"<f>\"bad@@x\"</f><v>bad@@x</v>"}
    data = zipfile.ZipFile(path)
    parts = {n: data.read(n) for n in data.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].replace(b"<v />", b"<v></v>")
    for old, new in cached.items():
        assert old in sheet
        sheet = sheet.replace(old, new)
    parts["xl/worksheets/sheet1.xml"] = sheet
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, body in parts.items():
            out.writestr(name, body)
    return path


ORDERS_LAYOUT = """
table: orders
source: {kind: xlsx, path: orders.xlsx, sheet: Orders, totals_row: true}
key: id
columns:
  id: {header: ID}
  amount: {header: Amount, type: decimal, decimals: 2}
  day: {header: Day, type: date}
  at: {header: At, type: datetime}
  paid: {header: Paid, type: boolean}
  phone: {header: Phone, type: phone}
  email: {header: Email, type: email}
"""


def sync_orders(tmp_path: Path, epoch1904: bool = False):
    from sheetsync.layout_load import load_layout
    from sheetsync.engine import sync_once
    from sheetsync.store import Store
    orders_book(tmp_path / "orders.xlsx", epoch1904)
    (tmp_path / "orders.yaml").write_text(ORDERS_LAYOUT, encoding="utf-8")
    loaded = load_layout(tmp_path / "orders.yaml")
    store = Store(tmp_path / "sheetsync.db")
    return loaded, store, sync_once(loaded, store=store)


def test_write_back_keeps_numbers_dates_and_booleans_typed_in_their_formats(tmp_path):
    import datetime as dt
    loaded, store, first = sync_orders(tmp_path)
    wb = openpyxl.load_workbook(tmp_path / "orders.xlsx")
    ws = wb["Orders"]
    # 880 is 880.00 already: left as typed, a number in its money format, no mark
    assert ws["B2"].value == 880 and ws["B2"].data_type == "n" and fill_of(ws["B2"]) is None
    # 9999.999 is rounded to two places: a number, same format, with a note saying so
    assert ws["B3"].value == 10000 and ws["B3"].number_format == "#,##0.00"
    assert "9999.999" in ws["B3"].comment.text and "10000.00" in ws["B3"].comment.text
    # a date typed as text becomes a real date in the column's own format; a date-time keeps its time
    assert ws["C3"].value == dt.datetime(2024, 1, 7) and ws["C3"].number_format == "yyyy/mm/dd"
    assert ws["D3"].value == dt.datetime(2024, 1, 7, 13, 30) and ws["D3"].number_format == "yyyy-mm-dd hh:mm"
    assert ws["E3"].value is True and ws["E3"].data_type == "b"
    # the totals row still adds numbers, and every formula is the person's as before
    assert ws["B5"].value == "=SUM(B2:B4)" and [ws[f"H{r}"].value for r in (2, 3, 4)] == ["=B2*2", "=B3*2", "=B4*2"]
    assert b"fullCalcOnLoad" in zipfile.ZipFile(tmp_path / "orders.xlsx").read("xl/workbook.xml")
    grid = pc.CalamineWorkbook.from_path(str(tmp_path / "orders.xlsx")).get_sheet_by_name("Orders").to_python()
    assert grid[2][1:5] == [10000.0, dt.date(2024, 1, 7), dt.datetime(2024, 1, 7, 13, 30), True]
    assert store.records("orders")["O2"]["day"] == "2024-01-07"
    from sheetsync.engine import sync_once
    again = sync_once(loaded, store=store, full=True)
    assert again.patches_applied == 0 and again.corrected == 0


def test_formula_cells_get_a_note_never_a_value(tmp_path):
    _, store, res = sync_orders(tmp_path)
    ws = openpyxl.load_workbook(tmp_path / "orders.xlsx")["Orders"]
    # a computed phone that needs reformatting, and a computed email that is invalid: both keep
    # their formula, both are marked with a note that says to fix the inputs
    assert ws["F2"].value == '="13800138000"' and ws["G3"].value == '="bad@@x"'
    for ref in ("F2", "G3"):
        assert "computed by a formula" in ws[ref].comment.text and fill_of(ws[ref]) == "FFC7CE"
    assert "+86 138 0013 8000" in ws["F2"].comment.text
    assert ws["G2"].value == '="a@x.cn"' and ws["G2"].comment is None
    assert store.records("orders")["O1"]["phone"] == "+86 138 0013 8000"
    problems = {(p["row"], p["field"], p["code"]) for p in store.problems("orders")}
    assert {(2, "phone", "formula_cell"), (3, "email", "type.email")} <= problems
    report = openpyxl.load_workbook(tmp_path / "orders.xlsx")["sheetsync"]
    assert any("computed by a formula" in str(c.value) for row in report.iter_rows() for c in row)
    grid = pc.CalamineWorkbook.from_path(str(tmp_path / "orders.xlsx")).get_sheet_by_name("Orders").to_python()
    assert grid[1][5] == 13800138000  # the cached result is still there for other programs


def test_mac_1904_workbook_is_read_and_written_in_its_own_date_system(tmp_path):
    import datetime as dt
    path = tmp_path / "orders.xlsx"
    _, store, _ = sync_orders(tmp_path, epoch1904=True)
    ws = openpyxl.load_workbook(path)["Orders"]
    assert ws.parent.epoch.year == 1904
    assert ws["C3"].value == dt.datetime(2024, 1, 7) and ws["C2"].value == dt.datetime(2024, 1, 5)
    # a date-time keeps its time and the column's custom format (the Mac workbook's 44 cells)
    assert ws["D3"].value == dt.datetime(2024, 1, 7, 13, 30) and ws["D3"].number_format == "yyyy-mm-dd hh:mm"
    grid = pc.CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Orders").to_python()
    assert grid[2][2:4] == [dt.date(2024, 1, 7), dt.datetime(2024, 1, 7, 13, 30)]
    assert store.records("orders")["O2"]["day"] == "2024-01-07"
    # a bare serial typed into the date column counts from 1904 too: 39448 is 2012-01-02
    wb = openpyxl.load_workbook(path)
    wb["Orders"]["C4"].value = 39448
    wb["Orders"]["C4"].number_format = "General"
    wb.save(path)
    from sheetsync.layout_load import load_layout
    from sheetsync.engine import sync_once
    sync_once(load_layout(tmp_path / "orders.yaml"), store=store)
    assert store.records("orders")["O3"]["day"] == "2012-01-02"
    assert openpyxl.load_workbook(path)["Orders"]["C4"].value == dt.datetime(2012, 1, 2)


def test_an_error_cell_is_marked_not_deferred_forever(tmp_path):
    """#DIV/0! is reported on the report tab and marked in the sheet: the pre-write check reads
    the error cells as read() does, so the mark is not deferred run after run."""
    orders_book(tmp_path / "orders.xlsx")
    path = tmp_path / "orders.xlsx"
    zf = zipfile.ZipFile(path)
    parts = {n: zf.read(n) for n in zf.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"]
    start = sheet.index(b'<c r="B4"')
    end = sheet.index(b"</c>", start) + 4
    parts["xl/worksheets/sheet1.xml"] = sheet[:start] + b'<c r="B4" t="e"><f>1/0</f><v>#DIV/0!</v></c>' + sheet[end:]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, body in parts.items():
            out.writestr(name, body)
    from sheetsync.engine import sync_once
    from sheetsync.layout_load import load_layout
    from sheetsync.store import Store
    (tmp_path / "orders.yaml").write_text(ORDERS_LAYOUT, encoding="utf-8")
    store = Store(tmp_path / "sheetsync.db")
    res = sync_once(load_layout(tmp_path / "orders.yaml"), store=store)
    assert res.patches_deferred == 0
    ws = openpyxl.load_workbook(path)["Orders"]
    assert ws["B4"].value == "=1/0" and "#DIV/0!" in ws["B4"].comment.text and fill_of(ws["B4"]) == "FFC7CE"
    assert ("amount", "cell_error") in {(p["field"], p["code"]) for p in store.problems("orders")}
    assert store.outbox("orders") == []


def _edit_xml(path: Path, part: str, old: bytes, new: bytes) -> None:
    """Change a workbook part's bytes as Excel would leave them (a person's edit)."""
    zf = zipfile.ZipFile(path)
    parts = {n: zf.read(n) for n in zf.namelist()}
    assert old in parts[part], (old, parts[part][:400])
    parts[part] = parts[part].replace(old, new)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, body in parts.items():
            out.writestr(name, body)


@pytest.mark.parametrize("edit", ["before", "after"])
def test_a_mark_whose_note_a_person_edited_is_cleared_keeping_their_words(tmp_path, edit):
    from sheetsync.engine import sync_once
    from sheetsync.layout_load import load_layout
    from sheetsync.store import Store
    path = tmp_path / "c.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "C"
    for row in (["ID", "Paid"], ["A1", "yes"], ["A2", "maybe"]):
        wb.active.append(row)
    wb.save(path)
    (tmp_path / "c.yaml").write_text("table: c\nsource: {kind: xlsx, path: c.xlsx, sheet: C}\nkey: id\n"
                                     "columns:\n  id: {header: ID}\n  paid: {header: Paid, type: boolean}\n")
    loaded, store = load_layout(tmp_path / "c.yaml"), Store(tmp_path / "sheetsync.db")
    sync_once(loaded, store=store)
    assert fill_of(openpyxl.load_workbook(path)["C"]["B3"]) == "FFC7CE"
    # the person writes in the note (before sheetsync's words, or after them) and fixes the cell
    body = zipfile.ZipFile(path).read("xl/comments1.xml")
    start = re.compile(rb"<t[ >][^>]*>|<t>").search(body, body.index(b'ref="B3"')).end()
    ours = body[start:body.index(b"</t>", start)]
    assert ours.startswith(b"sheetsync: ")
    mine = b"Asked Li, she paid. " + ours if edit == "before" else ours + b"\nAsked Li."
    _edit_xml(path, "xl/comments1.xml", b">" + ours + b"<", b">" + mine + b"<")
    sheet = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml")
    start = sheet.index(b'<c r="B3"')
    cell = sheet[start:sheet.index(b"</c>", start) + 4]
    _edit_xml(path, "xl/worksheets/sheet1.xml", cell, b'<c r="B3" t="b"><v>0</v></c>')
    res = sync_once(loaded, store=store)
    ws = openpyxl.load_workbook(path)["C"]
    assert fill_of(ws["B3"]) is None and ws["B3"].value is False and res.patches_deferred == 0
    assert ws["B3"].comment.text == ("Asked Li, she paid." if edit == "before" else "Asked Li.")
    assert ("A2", "paid") not in store.marks("c")


def test_openpyxl_path_writes_typed_values_and_never_over_a_formula(tmp_path):
    """The fallback path (workbooks the direct patch cannot handle) follows the same rules."""
    import datetime as dt
    path = orders_book(tmp_path / "orders.xlsx")
    conn = XlsxConnector(path, sheet="Orders", allow_feature_loss=True)
    patches = [Patch(3, 3, "corrected", write=True, value="2024-01-07", value_type="date"),
               Patch(3, 2, "corrected", write=True, value="10000.00", value_type="number"),
               Patch(2, 8, "invalid", write=True, value=5, fill="FFC7CE", note="sheetsync: computed")]
    applied = conn._apply_openpyxl(path.read_bytes(), patches, [], None)
    assert len(applied.applied) == 3
    ws = openpyxl.load_workbook(path)["Orders"]
    assert ws["C3"].value == dt.datetime(2024, 1, 7) and ws["C3"].is_date
    assert ws["B3"].value == 10000 and ws["B3"].number_format == "#,##0.00"
    assert ws["H2"].value == "=B2*2" and fill_of(ws["H2"]) == "FFC7CE"


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
    from book_parts import add_header_picture, rewrite_parts, simple_book
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


def _customers(path: Path, formula: bool = False) -> XlsxConnector:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Customers"
    for row in [["id", "name"], ["C1", "Ann"], ["C2", "Bob"], ["C3", "Cy"]]:
        ws.append(row)
    ws["B4"].comment = Comment("call after 6pm", "Ann")
    ws["B4"].fill = PatternFill("solid", fgColor="00FF00")
    if formula:
        ws["D1"] = "=COUNTA(A:A)"
    wb.save(path)
    return XlsxConnector(path, sheet="Customers")


def test_rows_are_removed_after_the_cells_with_notes_and_fills_moving_up(tmp_path):
    from sheetsync.model import removal
    conn = _customers(tmp_path / "b.xlsx")
    data = conn.read()
    gone = removal(3, data.rows[1].values, (1, "C2"))
    fix = Patch(4, 2, "corrected", write=True, value="CY", expected="Cy", anchor=(1, "C3"))
    applied = conn.apply([gone, fix], expected=data.fingerprint)
    assert applied.applied == (fix, gone) and applied.kept_rows == ""
    ws = openpyxl.load_workbook(tmp_path / "b.xlsx")["Customers"]
    assert [[c.value for c in r] for r in ws.iter_rows()] == [["id", "name"], ["C1", "Ann"], ["C3", "CY"]]
    assert ws["B3"].comment.text == "call after 6pm" and fill_of(ws["B3"]) == "00FF00"
    again = conn.apply([gone])  # a replay: C3 sits in row 3 now and stays
    assert again.applied == () and again.deferred == (gone,)


def test_a_workbook_whose_formulas_would_break_keeps_its_rows_and_says_why(tmp_path):
    from sheetsync.model import removal
    conn = _customers(tmp_path / "b.xlsx", formula=True)
    data = conn.read()
    gone = removal(3, data.rows[1].values, (1, "C2"))
    mark = Patch(3, 1, "duplicate", fill="F8CBAD", note="merged", expected="C2")
    applied = conn.apply([gone, mark], expected=data.fingerprint)
    assert applied.applied == (mark,) and applied.deferred == (gone,)
    assert "formulas" in applied.kept_rows and "by hand" in applied.kept_rows
    ws = openpyxl.load_workbook(tmp_path / "b.xlsx")["Customers"]
    assert ws["A3"].value == "C2" and ws["A3"].comment.text == "sheetsync: merged" and ws["D1"].value == "=COUNTA(A:A)"
