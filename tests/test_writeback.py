"""writeback.py on its own: turning one row's decision into patches and the marks to remember."""
from __future__ import annotations

from sheetsync.layout import Layout
from sheetsync.model import Patch, SheetData
from sheetsync.engine.reconcile import RowDecision
from sheetsync.store import Mark
from sheetsync.engine.writeback import RowPlace, clear_stray, live_marks, note_text, plan_row

LAYOUT = Layout.model_validate({
    "table": "customers", "source": {"kind": "memory", "name": "m"}, "key": "id",
    "columns": {"id": {"header": "ID"}, "name": {"header": "Name"}, "phone": {"header": "Phone", "type": "phone"}},
})
COLS = {"id": 1, "name": 2, "phone": 3}  # 1-based sheet columns
RAW = {"id": "C001", "name": "ann", "phone": "138 0013 8000"}
PLACE = RowPlace(row=5, raw=RAW, anchor=(1, "C001"))
CORRECTED = {"old": "138 0013 8000", "new": "+86 138 0013 8000", "rule": "phone"}
NOTE = "sheetsync: changed from `138 0013 8000` to `+86 138 0013 8000` by sheetsync (rule: phone)"


def _decision(**kw: object) -> RowDecision:
    return RowDecision(ident="C001", **kw)  # type: ignore[arg-type]


def test_note_text_prefix_and_kind_as_code() -> None:
    assert note_text("corrected", CORRECTED, "phone", "en") == NOTE
    assert note_text("corrected", CORRECTED, "phone", "zh") == (
        "sheetsync: sheetsync 已将 `138 0013 8000` 改为 `+86 138 0013 8000`（规则：phone）")


def test_note_text_code_param_wins_over_kind() -> None:
    params = {"code": "type.email", "value": "x@@y"}
    assert note_text("invalid", params, "email", "en") == "sheetsync: email: `x@@y` is not a valid address"


def test_corrected_cell_gives_one_patch_with_value_fill_and_note() -> None:
    d = _decision(writes={"phone": "+86 138 0013 8000"}, marks={"phone": ("corrected", CORRECTED)})
    planned, marks = plan_row(d, PLACE, COLS, LAYOUT, {}, True)
    assert planned == [(Patch(row=5, col=3, kind="corrected", write=True, value="+86 138 0013 8000",
                              fill="C6EFCE", note=NOTE, expected="138 0013 8000", anchor=(1, "C001"),
                              value_type="text"), "C001", "phone")]
    assert marks == {("C001", "phone"): Mark("corrected", "C6EFCE", NOTE, None)}


def test_layout_colours_are_used_and_unknown_kinds_take_the_invalid_colour() -> None:
    layout = LAYOUT.model_copy(update={"colours": LAYOUT.colours.model_copy(update={"invalid": "112233"})})
    d = _decision(marks={"name": ("odd_kind", {"code": "pattern", "value": "ann", "pattern": "^[A-Z]"})})
    planned, marks = plan_row(d, PLACE, COLS, layout, {}, True)
    assert [(p.kind, p.fill, p.write, p.note) for p, _, _ in planned] == [
        ("odd_kind", "112233", False, "sheetsync: name: `ann` does not match the pattern `^[A-Z]`")]
    assert marks[("C001", "name")].fill == "112233"


def test_anchor_cell_patch_comes_last_in_the_row() -> None:
    d = _decision(writes={"id": "C001", "phone": "+86 138 0013 8000"},
                  marks={"id": ("conflict", {}), "name": ("invalid", {"code": "required"}),
                         "phone": ("corrected", CORRECTED)})
    planned, _ = plan_row(d, PLACE, COLS, LAYOUT, {}, True)
    assert [(p.col, f) for p, _, f in planned] == [(2, "name"), (3, "phone"), (1, "id")]
    assert all(p.anchor == (1, "C001") and p.row == 5 for p, _, _ in planned)


def test_mark_no_longer_wanted_is_cleared_restoring_the_prior_fill() -> None:
    existing = {("C001", "name"): Mark("invalid", "FFC7CE", "sheetsync: old", "FFFF00"),
                ("C999", "name"): Mark("invalid", "FFC7CE", "sheetsync: other row", None)}
    planned, marks = plan_row(_decision(), PLACE, COLS, LAYOUT, existing, True)
    # the clear names the mark it removes: its fill is sheetsync's, its note is cut out
    assert planned == [(Patch(row=5, col=2, kind="clear", clear=True, restore_fill="FFFF00", fill="FFC7CE",
                              note="sheetsync: old", expected="ann", anchor=(1, "C001")), "C001", "name")]
    assert marks == {("C001", "name"): None}


def test_written_value_over_an_old_mark_clears_it_in_the_same_patch() -> None:
    existing = {("C001", "name"): Mark("invalid", "FFC7CE", "sheetsync: old", None)}
    d = _decision(writes={"name": "Ann"})
    planned, marks = plan_row(d, PLACE, COLS, LAYOUT, existing, True)
    assert planned == [(Patch(row=5, col=2, kind="corrected", write=True, value="Ann", clear=True, fill="FFC7CE",
                              note="sheetsync: old", expected="ann", anchor=(1, "C001"), value_type="text"),
                        "C001", "name")]
    assert marks == {("C001", "name"): None}


def test_unchanged_mark_gives_no_patch_and_is_kept() -> None:
    mark = Mark("corrected", "C6EFCE", NOTE, "ABCDEF")
    existing = {("C001", "phone"): mark}
    d = _decision(marks={"phone": ("corrected", CORRECTED)})
    planned, marks = plan_row(d, PLACE, COLS, LAYOUT, existing, True)
    assert planned == []
    assert marks == {("C001", "phone"): mark}  # the prior fill is carried over


def test_changed_note_repaints_the_mark_keeping_the_first_prior_fill() -> None:
    existing = {("C001", "phone"): Mark("corrected", "C6EFCE", "sheetsync: older text", "ABCDEF")}
    d = _decision(marks={"phone": ("corrected", CORRECTED)})
    planned, marks = plan_row(d, PLACE, COLS, LAYOUT, existing, True)
    assert [(p.kind, p.write, p.fill, p.note) for p, _, _ in planned] == [("corrected", False, "C6EFCE", NOTE)]
    assert marks == {("C001", "phone"): Mark("corrected", "C6EFCE", NOTE, "ABCDEF")}


def test_connector_without_notes_gets_value_writes_only() -> None:
    d = _decision(writes={"phone": "+86 138 0013 8000"},
                  marks={"phone": ("corrected", CORRECTED), "name": ("invalid", {"code": "required"})})
    planned, marks = plan_row(d, PLACE, COLS, LAYOUT, {}, False)
    assert planned == [(Patch(row=5, col=3, kind="corrected", write=True, value="+86 138 0013 8000",
                              expected="138 0013 8000", anchor=(1, "C001"), value_type="text"), "C001", "phone")]
    assert marks == {}


def test_clear_stray_clears_unknown_sheetsync_notes_in_order() -> None:
    sheet_marks = {(7, 2): "sheetsync: x", (3, 4): "sheetsync: y", (3, 1): "sheetsync: z"}
    assert clear_stray(sheet_marks, {(3, 4)}) == [
        (Patch(row=3, col=1, kind="clear", clear=True), None, None),
        (Patch(row=7, col=2, kind="clear", clear=True), None, None)]
    assert clear_stray(sheet_marks, set(sheet_marks)) == []
    assert clear_stray({}, set()) == []


class _Sheet:
    """The two attributes of sync_rows.SheetIndex that live_marks reads."""

    def __init__(self, rows: dict[str, int]) -> None:
        self.rows = rows


def test_live_marks_keeps_only_marks_really_on_the_sheet() -> None:
    m = Mark("invalid", "FFC7CE", "sheetsync: n", None)
    marks = {("C001", "name"): m, ("C002", "name"): m, ("C003", "name"): m, ("C001", "gone"): m}
    data = SheetData("S", ("ID", "Name"), (), "fp", marks={(2, 2): "sheetsync: n"})
    live = live_marks(marks, _Sheet({"C001": 2, "C002": 3}), {"id": 1, "name": 2}, data, True)
    # C002's mark is lost from the sheet; C003's row and the `gone` field are not read, so kept
    assert live == {("C001", "name"): m, ("C003", "name"): m, ("C001", "gone"): m}
    assert live_marks(marks, _Sheet({}), {}, data, False) == {}


TYPED = Layout.model_validate({
    "table": "orders", "source": {"kind": "memory", "name": "m"}, "key": "id",
    "columns": {"id": {"header": "ID"}, "amount": {"header": "Amount", "type": "decimal", "decimals": 2},
                "day": {"header": "Day", "type": "date"}, "at": {"header": "At", "type": "datetime"},
                "paid": {"header": "Paid", "type": "boolean"}, "n": {"header": "N", "type": "integer"}},
})


def test_written_values_carry_their_columns_type() -> None:
    writes = {"amount": "10000.00", "day": "2024-01-06", "at": "2024-01-06 13:30:00", "paid": True, "n": 3}
    d = _decision(writes=writes, marks={f: ("pushed", {"source": "store"}) for f in writes})
    cols = {"id": 1, "amount": 2, "day": 3, "at": 4, "paid": 5, "n": 6}
    planned, _ = plan_row(d, RowPlace(row=5, raw={}, anchor=None), cols, TYPED, {}, True)
    assert {f: p.value_type for p, _, f in planned} == {
        "amount": "number", "day": "date", "at": "datetime", "paid": "boolean", "n": "number"}


def test_a_formula_cell_gets_a_mark_and_note_never_a_value() -> None:
    d = _decision(writes={"name": "Ann", "phone": "+86 138 0013 8000"},
                  marks={"name": ("protected", {"attempted": "ann", "value": "Ann"}),
                         "phone": ("corrected", CORRECTED)})
    place = RowPlace(row=5, raw=RAW, anchor=(1, "C001"), formulas=frozenset({2, 3}))
    planned, marks = plan_row(d, place, COLS, LAYOUT, {}, True)
    assert [(p.col, p.write, p.kind, p.fill) for p, _, _ in planned] == [(2, False, "invalid", "FFC7CE"),
                                                                         (3, False, "invalid", "FFC7CE")]
    note = planned[1][0].note
    assert note.startswith("sheetsync: phone: this cell is computed by a formula, so sheetsync left it as it is. "
                           "Please fix the cells it is computed from.\n") and note.endswith(NOTE[len("sheetsync: "):])
    assert d.writes == {}  # the next base is the sheet as it stays: the formula's result
    # listed on the report tab too (an invalid or conflicting cell is listed for its own problem)
    assert [(p.code, p.field) for p in d.problems] == [("formula_cell", "name"), ("formula_cell", "phone")]
    zh = plan_row(_decision(marks={"phone": ("invalid", {"code": "type.phone", "value": "x", "region": "CN"})}),
                  place, COLS, LAYOUT.model_copy(update={"language": "zh"}), {}, True)[0]
    assert "此单元格由公式计算" in zh[0][0].note and "不是有效的电话号码" in zh[0][0].note
    assert marks[("C001", "phone")].kind == "formula"


def test_a_mark_whose_note_a_person_edited_is_still_cleared() -> None:
    """The store's mark is not 'live' (the note no longer reads as sheetsync's), yet its fill is
    sheetsync's: the clear is planned from the stored marks, naming the fill and note to remove."""
    mark = Mark("invalid", "FFC7CE", "sheetsync: name: `ann` is bad", None)
    planned, marks = plan_row(_decision(), PLACE, COLS, LAYOUT, {}, True, {("C001", "name"): mark})
    assert [(p.kind, p.clear, p.fill, p.note) for p, _, _ in planned] == [
        ("clear", True, "FFC7CE", "sheetsync: name: `ann` is bad")]
    assert marks == {("C001", "name"): None}
