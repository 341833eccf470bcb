"""Rows of records merged away by `sheetsync duplicates --merge A B`: the next sync removes B's row
from the sheet (recorded in B's history and in the run's snapshot) and moves B's values into A's
empty fields; a row that was edited, or that the workbook cannot lose, is marked and never revived."""
from __future__ import annotations

import pytest

from conftest import SheetFixture, customer_rows, store_state
from sheetsync.backup.snapshot import list_snapshots, restore_sheet
from sheetsync.cli import main
from sheetsync.engine import sync_once
from sheetsync.store import Store


def merged(kind, tmp_path, emulator=None, sid="book"):
    rows = customer_rows()
    rows[2][3] = ""  # C003 (row 4) has no email: the merge fills it from C010 (row 11)
    sheet = SheetFixture(kind, tmp_path, rows, emu=emulator, sid=sid)
    sync_once(sheet.layout)
    assert main(["duplicates", str(sheet.layout), "--merge", "C003", "C010"]) == 0
    return sheet


def ids(sheet) -> list[str]:
    return [v[0] for (r, c), v in sorted(sheet.cells().items()) if c == 1 and r > 1]


@pytest.mark.parametrize("kind", ["xlsx", "csv", "emulator"])
def test_the_next_sync_removes_the_merged_away_row(tmp_path, kind, request):
    emu = request.getfixturevalue("emulator") if kind == "emulator" else None
    sheet = merged(kind, tmp_path, emu)
    run = sync_once(sheet.layout)
    assert run.outcome == "problems", run.message  # the sheet's invalid emails, not the merge
    assert ids(sheet) == [f"C{i:03d}" for i in range(1, 31) if i != 10]
    cells = sheet.cells()
    assert cells[(4, 4)][0] == "user10@example.com"  # B's value moved into A's empty field
    assert cells[(11, 1)][0] == "C011"  # the row below moved up; nothing else went
    with Store(sheet.db) as store:
        history = store.history("customers", "C010")
        assert [h["action"] for h in history[-2:]] == ["merged_into", "remove_row"]
        assert (history[-1]["new"], history[-1]["row"], history[-1]["run_id"]) == ("merged into C003", 11, run.run_id)
        assert store.records("customers")["C003"]["email"] == "user10@example.com"
        # the open problems and base rows below the removed row moved up with their rows
        assert {p["ident"]: p["row"] for p in store.problems("customers")} == {
            "C007": 8, "C014": 14, "C021": 21, "C028": 28}
        base = store.base("customers", ["C009", "C010", "C011"])
        assert (base["C009"].row, base["C011"].row, "C010" in base) == (10, 11, False)
        assert store.outbox("customers") == [] and not [m for m in store.marks("customers") if m[0] == "C010"]
    snap = [m for m in list_snapshots(tmp_path / "backups") if m.run_id == run.run_id]
    assert len(snap) == 1
    copy = restore_sheet(tmp_path / "backups", snap[0].id, "customers")
    assert [r[0] for r in copy.rows] == ids(sheet) and copy.rows[2][3] == "user10@example.com"
    again = sync_once(sheet.layout)  # quiet: nothing revived, nothing deleted twice
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert store_state(sheet.db)["records"]["C010"]["_deleted"] == 1


def test_an_edited_merged_row_is_marked_kept_and_never_revived(tmp_path):
    sheet = merged("xlsx", tmp_path)
    sheet.edit(11, 2, "Person 10 (new address)")  # a person edits B's row after the merge
    first = sync_once(sheet.layout)
    assert "C010" in ids(sheet) and (first.inserted, first.updated) == (0, 0)  # nothing revived
    text, fill, note = sheet.cells()[(11, 1)]
    assert "merged into C003" in note and "not saved" in note and fill
    for _ in range(2):
        sync_once(sheet.layout)
        sheet.edit(11, 3, "+86 139 0000 0000")
    sync_once(sheet.layout)
    state = store_state(sheet.db)
    assert state["records"]["C010"]["_deleted"] == 1 and state["records"]["C010"]["name"] == "Person 10"
    assert [h[3] for h in state["history"]["C010"]][-1] == "merged_into"  # never revived nor removed
    assert ("C010", "id", "merged_edited") in state["problems"]
    assert "C010" in ids(sheet)


def test_a_workbook_that_cannot_lose_rows_keeps_the_row_with_a_note(tmp_path):
    import openpyxl
    sheet = merged("xlsx", tmp_path)
    book = openpyxl.load_workbook(sheet.path)
    book["Customers"]["F1"] = "=COUNTA(A:A)"  # openpyxl would not shift this formula
    book.save(sheet.path)
    run = sync_once(sheet.layout)
    assert "C010" in ids(sheet) and run.patches_deferred == 1
    text, fill, note = sheet.cells()[(11, 1)]
    assert "merged into C003" in note and "delete it by hand" in note
    assert sheet.cells()[(4, 4)][0] == "user10@example.com"
    assert openpyxl.load_workbook(sheet.path)["Customers"]["F1"].value == "=COUNTA(A:A)"
    sync_once(sheet.layout)
    assert store_state(sheet.db)["records"]["C010"]["_deleted"] == 1
