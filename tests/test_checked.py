"""rules/checked.py: a run's checked rows, column by column, read as ident -> RowResult."""
from __future__ import annotations

import pytest

from sheetsync.layout import Layout
from sheetsync.model import Problem
from sheetsync.engine.reconcile import RowInput, insert_row, reconcile_row
from sheetsync.rules import CellResult, RowResult, compile_rules
from sheetsync.rules.checked import Checked, row_key_values

LAYOUT = Layout.model_validate({
    "table": "t", "source": {"kind": "memory", "name": "m"}, "key": "id",
    "columns": {"id": {"header": "ID"}, "email": {"header": "Email", "type": "email"},
                "n": {"header": "N", "type": "integer"}}})
COLS = {"id": 0, "email": 1, "n": 2}
ROWS = [("C1", "a@x.cn", "1"), ("C2", " B@X.CN ", "2"), ("C3", "not an email", "3"), ("C4", "", "4"),
        ("C5", "e@x.cn", "x")]
IDENTS = ["C1", "C2", "C3", "C4", "C5"]


def _checked(rows=ROWS, idents=IDENTS) -> Checked:
    checker = compile_rules(LAYOUT)
    checked = Checked(checker.fields)
    checked.extend(idents[:2], *checker.check_columns(rows[:2], COLS))  # two chunks, as a run checks them
    checked.extend(idents[2:], *checker.check_columns(rows[2:], COLS))
    return checked


def test_checked_reads_as_the_rows_check_rows_gives():
    expected = dict(zip(IDENTS, compile_rules(LAYOUT).check_rows(ROWS, COLS)))
    checked = _checked()
    assert dict(checked) == expected and list(checked) == IDENTS and len(checked) == 5
    assert checked.clean_idents() == ["C1", "C4"]  # C2 corrected, C3 and C5 invalid
    assert checked["C1"].clean and not checked["C2"].clean and "C9" not in checked
    with pytest.raises(KeyError):
        checked["C9"]


def test_a_row_set_later_is_read_whole_and_keeps_its_place():
    checked = _checked()
    taken = CellResult("email", "a@x.cn", None, "invalid", (Problem("unique", "email", {}),))
    checked["C1"] = RowResult({**checked["C1"].cells, "email": taken}, taken.problems)
    checked["P9"] = compile_rules(LAYOUT).check({"id": "P9", "email": "a@x.cn", "n": "9"})
    assert list(checked) == [*IDENTS, "P9"] and checked.clean_idents() == ["C4"]
    assert checked["C1"].cells["email"] is taken
    assert checked.key_values(["email"]) == {"C2": ("b@x.cn",), "C5": ("e@x.cn",), "P9": ("a@x.cn",)}
    assert list(checked.key_values(["id"], skip={"C3": "C1"})) == ["C1", "C2", "C4", "C5", "P9"]


def test_key_values_equal_the_row_by_row_reading():
    checked = _checked()
    for fields in (["id"], ["email"], ["id", "email"], ["n"], ["email", "n"], []):
        expected = {i: v for i in IDENTS if (v := row_key_values(checked[i], fields)) is not None}
        assert checked.key_values(fields) == expected, fields


def test_values_of_gives_the_columns_of_clean_rows_and_refuses_others():
    checked = _checked()
    assert checked.values_of(["C1", "C4"]) == {"id": ["C1", "C4"], "email": ["a@x.cn", None], "n": [1, 4]}
    assert checked.values_of([]) == {"id": [], "email": [], "n": []}
    with pytest.raises(ValueError):
        checked.values_of(["C1", "C2"])  # C2 is not clean: its values are in its RowResult


def test_values_of_are_what_a_new_row_would_store_row_by_row():
    """The engine inserts a first sync's clean new rows as reconcile.NewRows(batch,
    values_of(batch)): each row's values must be what insert_row and reconcile_row store."""
    checked = _checked()
    batch = checked.clean_idents()
    columns = checked.values_of(batch)
    for k, ident in enumerate(batch):
        cells = checked[ident].cells
        row = RowInput(ident, cells, None, None, ("id",), frozenset({"id"}), frozenset())
        expected = {f: values[k] for f, values in columns.items()}
        assert insert_row(ident, cells).store_values == reconcile_row(row).store_values == expected


def test_a_copy_changes_alone_and_a_row_is_checked_once():
    checked = _checked()
    copy = checked.copy()
    copy["C4"] = checked["C2"]
    assert checked.clean_idents() == ["C1", "C4"] and copy.clean_idents() == ["C1"]
    checked.extend(["C1"], *compile_rules(LAYOUT).check_columns(ROWS[:1], COLS))
    with pytest.raises(ValueError):  # found when rows are first looked up
        checked["C4"]
