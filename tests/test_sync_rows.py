"""engine/identify.py on its own: identifying rows against the base, exact duplicates, unique columns."""
from __future__ import annotations

import itertools

import pytest

from sheetsync.errors import SourceError
from sheetsync.layout import Layout
from sheetsync.model import Problem, SheetData, SheetRow, row_hash
from sheetsync.rules import compile_rules
from sheetsync.store import BaseRow, Store
from sheetsync.engine.identify import check_unique, flag_exact_duplicates, id_column, index_sheet, later_partners

HEADER = ("ID", "Name", "Email")
COLS = {"id": 0, "name": 1, "email": 2}
COLUMNS = {"id": {"header": "ID", "pattern": r"^C\d{3}$"}, "name": {"header": "Name"},
           "email": {"header": "Email", "type": "email"}}


def _layout(**extra: object) -> Layout:
    return Layout.model_validate({"table": "customers", "source": {"kind": "memory", "name": "m"},
                                  "key": "id", "columns": COLUMNS, **extra})


def _data(*rows: tuple, header: tuple = HEADER, first: int = 2) -> SheetData:
    return SheetData("Customers", header, tuple(SheetRow(first + i, r) for i, r in enumerate(rows)), "fp")


def _base(**rows: tuple[int, tuple]) -> dict[str, BaseRow]:
    """ident -> (sheet row, values) as the last run left them."""
    return {i: BaseRow(row_hash(v), r, {}, {}, 1) for i, (r, v) in rows.items()}


def _index(layout: Layout, data: SheetData, base: dict | None = None):
    return index_sheet(data, COLS, layout, compile_rules(layout), base or {})


def _store(layout: Layout) -> Store:
    store = Store()
    store.ensure_table(layout.table, {f: c.type for f, c in layout.columns.items()})
    return store


def _put(store: Store, key: str, name: str, email: str) -> None:
    with store.transaction():
        store.write_record("customers", key, {"id": key, "name": name, "email": email},
                           action="insert", run_id="r0")


def _checked(layout: Layout, sheet, idents=None) -> dict:
    checker = compile_rules(layout)
    return {i: checker.check(sheet.field_values(i)) for i in (idents if idents is not None else sheet.changed)}


A = ("C001", "Ann", "ann@example.com")
B = ("C002", "Bob", "bob@example.com")
C = ("C003", "Cy", "cy@example.com")


# -- index_sheet -----------------------------------------------------------------------------

def test_first_read_every_row_is_new_and_keyed_by_its_normalised_key() -> None:
    sheet = _index(_layout(), _data((" C001 ", "Ann", None), B, ("bad", "X", None)))
    assert sheet.changed == ["C001", "C002", "row:4"]  # an invalid key gives a row identity
    assert sheet.unchanged == [] and sheet.deleted == [] and sheet.moved == {}
    assert sheet.rows == {"C001": 2, "C002": 3, "row:4": 4}
    assert sheet.values["C002"] == B and sheet.hashes["C002"] == row_hash(B)


def test_unchanged_rows_are_recognised_by_hash_alone_and_values_built_lazily() -> None:
    base = _base(C001=(2, A), C002=(3, B))
    sheet = _index(_layout(), _data(A, ("C002", "Bobby", "bob@example.com")), base)
    assert sheet.unchanged == ["C001"]
    assert sheet.changed == ["C002"]
    assert sheet.raw == {}  # no row's fields were built yet
    assert sheet.field_values("C001") == {"id": "C001", "name": "Ann", "email": "ann@example.com"}
    assert list(sheet.raw) == ["C001"]
    assert sheet.field_values("C001") is sheet.raw["C001"]  # built once, then reused


def test_short_rows_read_missing_cells_as_empty() -> None:
    sheet = _index(_layout(), _data(("C001",)))
    assert sheet.field_values("C001") == {"id": "C001", "name": None, "email": None}


def test_moved_rows_are_reported_with_their_new_row() -> None:
    base = _base(C001=(2, A), C002=(3, B), C003=(4, C))
    sheet = _index(_layout(), _data(C, A, B), base)  # sorted: C003 went to the top
    assert sheet.unchanged == ["C003", "C001", "C002"]
    assert sheet.moved == {"C003": 2, "C001": 3, "C002": 4}
    assert sheet.changed == [] and sheet.deleted == []


def test_rows_gone_from_the_sheet_are_deleted() -> None:
    base = _base(C001=(2, A), C002=(3, B), C003=(4, C))
    sheet = _index(_layout(), _data(A, C), base)
    assert sheet.deleted == ["C002"]
    assert sheet.unchanged == ["C001", "C003"]
    assert sheet.moved == {"C003": 3}


def test_two_rows_with_one_key_the_later_is_a_key_clash() -> None:
    sheet = _index(_layout(), _data(A, B, ("C001", "Another Ann", None)))
    assert sheet.changed == ["C001", "C002", "C001@row4"]
    assert sheet.key_clash == {"C001@row4": "C001"}
    assert sheet.rows["C001@row4"] == 4


def test_a_key_typed_over_the_key_of_a_row_below_keeps_both_records() -> None:
    base = _base(C001=(2, A), C002=(3, B))
    sheet = _index(_layout(), _data(("C002", "Ann", "ann@example.com"), B), base)
    assert sheet.unchanged == ["C002"] and sheet.changed == ["C001"] and sheet.deleted == []
    assert sheet.key_taken == {"C001": "C002"} and sheet.rows == {"C001": 2, "C002": 3}


def test_of_two_edited_rows_sharing_a_key_the_one_where_the_record_stood_keeps_it() -> None:
    base = _base(C001=(2, A), C002=(3, B))
    sheet = _index(_layout(), _data(("C002", "Ann", "ann@example.com"), ("C002", "Bob", "bob@other.com")), base)
    assert sheet.rows == {"C001": 2, "C002": 3} and sheet.key_taken == {"C001": "C002"}


def test_a_held_back_clash_row_is_worked_out_by_key_again_not_by_hash() -> None:
    copy = ("C001", "Ann copy", "ann2@example.com")
    base = _base(**{"C001@row3": (3, copy)})  # held back last run, while row 2 had C001
    sheet = _index(_layout(), _data(copy), base)  # row 2 gone: the copy now owns C001
    assert sheet.changed == ["C001"] and sheet.deleted == ["C001@row3"] and not sheet.key_clash


def test_a_key_cell_emptied_keeps_its_record_and_a_new_keyless_row_is_row_n() -> None:
    base = _base(C001=(2, A), C002=(3, B))
    sheet = _index(_layout(), _data(A, (None, "Bob", "bob@example.com"), (None, "New", None)), base)
    assert sheet.key_taken == {"C002": ""} and sheet.deleted == []
    assert sheet.rows == {"C001": 2, "C002": 3, "row:4": 4} and "row:4" not in sheet.key_clash


def test_identical_base_rows_are_worked_out_by_key() -> None:
    layout = _layout(key=["name"])  # two records once typed identically: one hash in the base
    same = ("C001", "Ann", "ann@example.com")
    base = {"Ann": BaseRow(row_hash(same), 2, {}, {}, 1), "Ann2": BaseRow(row_hash(same), 3, {}, {}, 1)}
    sheet = _index(layout, _data(same), base)
    assert sheet.unchanged == ["Ann"]  # found by its key, not by the ambiguous hash
    assert sheet.deleted == ["Ann2"]


def test_anchor_is_the_key_cell() -> None:
    sheet = _index(_layout(), _data(A, B))
    assert sheet.anchor("C002", {"id": 1, "name": 2, "email": 3}) == (1, "C002")


# -- managed id column ------------------------------------------------------------------------

MANAGED_HEADER = ("RID", "Name", "Email")


def _managed() -> Layout:
    return Layout.model_validate({"table": "people", "source": {"kind": "memory", "name": "m"},
                                  "id_column": "RID", "columns": {"name": {"header": "Name"},
                                                                  "email": {"header": "Email"}}})


def _index_managed(data: SheetData, base: dict | None = None):
    layout = _managed()
    id_col = id_column(layout, data, "w")
    counter = itertools.count(1)
    return index_sheet(data, {"name": 1, "email": 2}, layout, compile_rules(layout), base or {},
                      id_col, new_id=lambda: f"N{next(counter)}")


def test_id_column_position_and_missing_id_column() -> None:
    layout = _managed()
    assert id_column(layout, _data(header=("Name", " rid ", "Email")), "w") == 1
    assert id_column(_layout(), _data(header=HEADER), "w") is None  # a keyed layout needs none
    with pytest.raises(SourceError, match="the managed id column 'RID' is missing") as info:
        id_column(layout, _data(header=("Name", "Email")), "book[Sheet1]")
    assert info.value.where == "book[Sheet1]"


def test_managed_id_empty_cell_gets_a_new_id_to_write() -> None:
    sheet = _index_managed(_data(("", "Ann", None), ("R7", "Bob", None), (None, "Cy", None),
                                 header=MANAGED_HEADER))
    assert sheet.changed == ["N1", "R7", "N2"]
    assert sheet.new_ids == {"N1": 2, "N2": 4}
    assert sheet.anchor("R7", {"name": 2, "email": 3}) == (1, "R7")  # no key: the id cell anchors


def test_managed_id_copied_row_gets_a_fresh_id() -> None:
    row = ("R7", "Bob", "bob@example.com")
    base = _base(R7=(2, row))
    sheet = _index_managed(_data(row, row, header=MANAGED_HEADER), base)  # a person copied the row
    assert sheet.unchanged == ["R7"]
    assert sheet.changed == ["N1"]
    assert sheet.new_ids == {"N1": 3}
    assert sheet.deleted == []


def test_managed_id_edited_row_keeps_its_id() -> None:
    base = _base(R7=(2, ("R7", "Bob", None)))
    sheet = _index_managed(_data(("R7", "Robert", None), header=MANAGED_HEADER), base)
    assert sheet.changed == ["R7"] and sheet.new_ids == {} and sheet.deleted == []


# -- flag_exact_duplicates ------------------------------------------------------------

def _dupe(other_row: object, other_key: str, reason: str, fld: str = "email") -> dict:
    params = {"other_row": other_row, "other_key": other_key, "reason": reason}
    return {fld: (params, Problem("duplicate", fld, params))}


def test_batch_duplicate_flags_only_the_later_row_pointing_at_the_earlier() -> None:
    layout = _layout(dedupe={"exact": [["email"]]})
    sheet = _index(layout, _data(A, B, ("C003", "Ann again", "ann@example.com"),
                                 ("C004", "Ann thrice", "ann@example.com")))
    out = flag_exact_duplicates(_store(layout), layout, sheet, _checked(layout, sheet))
    assert out == {"C003": _dupe(2, "C001", "same email"), "C004": _dupe(2, "C001", "same email")}


def test_duplicate_of_a_stored_record_not_in_the_sheet() -> None:
    layout = _layout(dedupe={"exact": [["email"]]})
    store = _store(layout)
    _put(store, "C900", "Old Ann", "ann@example.com")
    _put(store, "C901", "Gone", "bob@example.com")
    with store.transaction():
        store.delete_record("customers", "C901", run_id="r1")  # deleted records do not count
    sheet = _index(layout, _data(A, B))
    assert flag_exact_duplicates(store, layout, sheet, _checked(layout, sheet)) == {
        "C001": _dupe("-", "C900", "same email")}


def test_a_rows_own_stored_record_is_no_duplicate() -> None:
    layout = _layout(dedupe={"exact": [["email"]]})
    store = _store(layout)
    _put(store, "C001", "Ann", "ann@example.com")
    sheet = _index(layout, _data(("C001", "Ann B.", "ann@example.com")))
    assert flag_exact_duplicates(store, layout, sheet, _checked(layout, sheet)) == {}


def test_duplicate_of_an_archived_record() -> None:
    layout = _layout(dedupe={"exact": [["email"]]})
    store = _store(layout)
    _put(store, "C900", "Old Ann", "ann@example.com")
    assert store.archive_records("customers", "customers_archive", ["C900"], run_id="a1", layout="customers")
    assert store.find_by_values("customers", ["email"], [("ann@example.com",)]) == {}  # not live
    sheet = _index(layout, _data(A))
    assert flag_exact_duplicates(store, layout, sheet, _checked(layout, sheet)) == {
        "C001": _dupe("-", "C900", "same email")}


def test_key_clash_is_flagged_on_the_key_field_and_not_compared_further() -> None:
    layout = _layout(dedupe={"exact": [["email"]]})
    sheet = _index(layout, _data(A, ("C001", "Ann copy", "ann@example.com")))
    out = flag_exact_duplicates(_store(layout), layout, sheet, _checked(layout, sheet))
    assert out == {"C001@row3": _dupe(2, "C001", "same key", fld="id")}


def test_multi_field_rule_invalid_and_empty_values_never_match() -> None:
    layout = _layout(dedupe={"exact": [["name", "email"]]})
    sheet = _index(layout, _data(("C001", "Ann", "bad@@x"), ("C002", "Ann", "bad@@x"),
                                 ("C003", "Ann", None), ("C004", "Ann", None),
                                 ("C005", "Bo", "bo@example.com"), ("C006", "Bo", "bo@example.com")))
    out = flag_exact_duplicates(_store(layout), layout, sheet, _checked(layout, sheet))
    assert out == {"C006": _dupe(6, "C005", "same name, email", fld="name")}


def test_earlier_row_edited_to_repeat_a_later_unchanged_row_is_flagged() -> None:
    """The later row of a pair is the one flagged, so the run re-checks it (later_partners)."""
    layout = _layout(dedupe={"exact": [["email"]]})
    store = _store(layout)
    _put(store, "C001", "Ann", "ann@example.com")
    _put(store, "C002", "Bob", "bob@example.com")
    base = _base(C001=(2, A), C002=(3, B))
    sheet = _index(layout, _data(("C001", "Ann", "bob@example.com"), B), base)
    assert sheet.changed == ["C001"] and sheet.unchanged == ["C002"]
    checked = _checked(layout, sheet)
    assert later_partners(store, layout, sheet, checked) == ["C002"]
    checked["C002"] = compile_rules(layout).check(sheet.field_values("C002"))
    out = flag_exact_duplicates(store, layout, sheet, checked)
    assert list(out) == ["C002"] and out["C002"]["email"][0]["other_key"] == "C001"


# -- check_unique -----------------------------------------------------------------------------

def _unique_layout() -> Layout:
    return Layout.model_validate({"table": "customers", "source": {"kind": "memory", "name": "m"},
                                  "key": "id", "columns": {**COLUMNS, "email": {**COLUMNS["email"],
                                                                                "unique": True}}})


def test_check_unique_later_batch_row_becomes_invalid_naming_the_holder() -> None:
    layout = _unique_layout()
    sheet = _index(layout, _data(A, B, ("C003", "Ann 2", "ann@example.com")))
    checked = _checked(layout, sheet)
    out = check_unique(_store(layout), layout, checked)
    assert out["C001"] is checked["C001"] and out["C002"] is checked["C002"]
    cell = out["C003"].cells["email"]
    problem = Problem("unique", "email", {"field": "email", "value": "ann@example.com", "other": "C001"})
    assert (cell.outcome, cell.value, cell.raw, cell.problems) == ("invalid", None, "ann@example.com", (problem,))
    assert out["C003"].problems == (problem,)
    assert out["C003"].cells["name"] == checked["C003"].cells["name"]
    assert checked["C003"].cells["email"].outcome == "ok"  # the input is not modified


def test_check_unique_against_live_records_but_not_the_rows_own() -> None:
    layout = _unique_layout()
    store = _store(layout)
    _put(store, "C900", "Other", "bob@example.com")
    _put(store, "C001", "Ann", "ann@example.com")
    sheet = _index(layout, _data(A, B))
    out = check_unique(store, layout, _checked(layout, sheet))
    assert out["C001"].problems == ()
    assert out["C002"].problems == (Problem("unique", "email", {"field": "email", "value": "bob@example.com",
                                                                 "other": "C900"}),)


def test_check_unique_without_unique_columns_changes_nothing() -> None:
    layout = _layout()
    sheet = _index(layout, _data(A, ("C002", "x", "ann@example.com")))
    checked = _checked(layout, sheet)
    assert check_unique(_store(layout), layout, checked) == checked
