"""Archive: the declarative rule selects stale records; they move to the archive table (history
kept), to an archive tab, and off the live sheet; a dry run changes nothing; dedupe still sees them."""
from __future__ import annotations

import time
from pathlib import Path

import openpyxl
import pytest

from sheetsync.archive import archive, condition_tests
from sheetsync.connectors.xlsx import XlsxConnector
from sheetsync.engine import sync_once
from sheetsync.errors import SourceBusy, UsageError
from sheetsync.layout_load import load_layout
from sheetsync.store import Store

LAYOUT = """\
table: customers
source: {kind: xlsx, path: book.xlsx, sheet: Customers}
key: id
columns:
  id: {header: ID}
  name: {header: Name}
  status: {header: Status, type: enum, values: [active, closed]}
  end_date: {header: End, type: date}
archive:
  when:
    - {field: status, equals: closed}
    - {field: end_date, older_than_days: 365}
"""
ROWS = [
    ["C1", "Ann", "active", "2020-01-01"],
    ["C2", "Bob", "closed", "2020-02-01"],
    ["C3", "Cy", "closed", "2099-01-01"],
    ["C4", "=Dee", "closed", "2019-05-05"],
]


def setup(tmp_path: Path, layout: str = LAYOUT, rows=ROWS):
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Customers"
    ws.append(["ID", "Name", "Status", "End"])
    for row in rows:
        ws.append(row)
        ws.cell(ws.max_row, 2).data_type = "s"
    book.save(tmp_path / "book.xlsx")
    (tmp_path / "c.yaml").write_text(layout, encoding="utf-8")
    loaded = load_layout(tmp_path / "c.yaml")
    store = Store(tmp_path / "s.db")
    sync_once(loaded, store=store)
    return loaded, store, XlsxConnector(tmp_path / "book.xlsx", sheet="Customers")


def sheet_ids(path: Path, tab: str = "Customers") -> list:
    ws = openpyxl.load_workbook(path)[tab]
    return [r[0] for r in ws.iter_rows(min_row=2, values_only=True)]


def test_dry_run_lists_and_changes_nothing(tmp_path: Path) -> None:
    loaded, store, conn = setup(tmp_path)
    before = (tmp_path / "book.xlsx").read_bytes()
    res = archive(loaded, store, conn, dry_run=True)
    assert res.dry_run and res.keys == ["C2", "C4"] and res.rows_to_delete == [3, 5]
    assert (tmp_path / "book.xlsx").read_bytes() == before
    assert store.archived("customers_archive") == []
    assert not store.records("customers")["C2"]["_deleted"]


def test_archive_moves_records_to_table_tab_and_off_the_sheet(tmp_path: Path) -> None:
    loaded, store, conn = setup(tmp_path)
    res = archive(loaded, store, conn)
    assert res.keys == ["C2", "C4"] and res.rows_removed == [3, 5] and res.rows_to_delete == []
    assert sheet_ids(tmp_path / "book.xlsx") == ["C1", "C3"]
    tab = openpyxl.load_workbook(tmp_path / "book.xlsx")["archive"]
    values = list(tab.iter_rows(values_only=True))
    assert values[0] == ("ID", "Name", "Status", "End", "archived_at")
    assert [v[:4] for v in values[1:]] == [("C2", "Bob", "closed", "2020-02-01"),
                                          ("C4", "=Dee", "closed", "2019-05-05")]
    assert tab.cell(3, 2).data_type == "s"  # a leading = stays text
    rows = store.archived("customers_archive")
    assert [(r["_key"], r["name"], r["archive_run"]) for r in rows] == [
        ("C2", "Bob", res.run_id), ("C4", "=Dee", res.run_id)]
    live = store.records("customers")
    assert live["C2"]["_deleted"] == 1 and live["C1"]["_deleted"] == 0
    moved, removed = store.history("customers", "C2")[-2:]
    assert (moved["action"], moved["run_id"], moved["row"]) == ("archive", res.run_id, 3)
    assert (removed["action"], removed["new"], removed["row"]) == ("remove_row", "archived", 3)
    # the next sync is quiet: archived rows left the sheet, nothing revives them
    after = sync_once(loaded, store=store)
    assert (after.inserted, after.updated, after.deleted) == (0, 0, 0)
    assert store.records("customers")["C2"]["_deleted"] == 1
    assert archive(loaded, store, conn).keys == []  # nothing left to move


def test_archived_records_still_match_exact_dedupe(tmp_path: Path) -> None:
    loaded, store, conn = setup(tmp_path)
    archive(loaded, store, conn)
    found = store.archived_matches("customers", ["name"], [("Bob",), ("Ann",), ("",)])
    assert found == {("Bob",): ["C2"]}
    assert store.find_by_values("customers", ["name"], [("Bob",)]) == {}


def test_unsafe_sheet_keeps_rows_and_lists_them(tmp_path: Path) -> None:
    loaded, store, conn = setup(tmp_path)
    book = openpyxl.load_workbook(tmp_path / "book.xlsx")
    book["Customers"]["F1"] = "=COUNTA(A:A)"
    book.save(tmp_path / "book.xlsx")
    res = archive(loaded, store, XlsxConnector(tmp_path / "book.xlsx", sheet="Customers"))
    assert res.keys == ["C2", "C4"] and res.rows_removed == [] and res.rows_to_delete == [3, 5]
    assert "formulas" in res.why_not_removed
    assert sheet_ids(tmp_path / "book.xlsx") == ["C1", "C2", "C3", "C4"]
    assert len(store.archived("customers_archive")) == 2
    again = sync_once(loaded, store=store)  # rows left in place do not revive the records
    assert again.inserted == again.updated == 0 and store.records("customers")["C4"]["_deleted"]


def test_row_edited_since_last_sync_is_skipped(tmp_path: Path) -> None:
    loaded, store, conn = setup(tmp_path)
    book = openpyxl.load_workbook(tmp_path / "book.xlsx")
    book["Customers"]["B3"] = "Bobby"
    book.save(tmp_path / "book.xlsx")
    res = archive(loaded, store, XlsxConnector(tmp_path / "book.xlsx", sheet="Customers"))
    assert res.keys == ["C4"] and "sync" in res.skipped["C2"]
    assert sheet_ids(tmp_path / "book.xlsx") == ["C1", "C2", "C3"]


def test_csv_gets_archive_file_and_loses_the_rows(tmp_path: Path) -> None:
    from sheetsync.connectors.csv import CsvConnector
    (tmp_path / "c.csv").write_text("ID,Name,Status,End\nC1,Ann,active,2020-01-01\n"
                                    "C2,Bob,closed,2001-01-01\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text(LAYOUT.replace("{kind: xlsx, path: book.xlsx, sheet: Customers}",
                                                    "{kind: csv, path: c.csv}"), encoding="utf-8")
    loaded = load_layout(tmp_path / "c.yaml")
    store = Store(tmp_path / "s.db")
    sync_once(loaded, store=store)
    res = archive(loaded, store, CsvConnector(tmp_path / "c.csv"))
    assert res.keys == ["C2"] and res.rows_removed == [3] and res.rows_to_delete == []
    text = (tmp_path / "c.archive.csv").read_text(encoding="utf-8-sig").splitlines()
    assert text[0] == "ID,Name,Status,End,archived_at" and text[1].startswith("C2,Bob,closed,2001-01-01,")
    assert (tmp_path / "c.csv").read_text(encoding="utf-8") == "ID,Name,Status,End\nC1,Ann,active,2020-01-01\n"
    after = sync_once(loaded, store=store)
    assert (after.inserted, after.deleted) == (0, 0) and store.records("customers")["C2"]["_deleted"] == 1


def test_store_only_with_updated_at_and_one_of(tmp_path: Path) -> None:
    layout = LAYOUT.replace("""    - {field: status, equals: closed}
    - {field: end_date, older_than_days: 365}""", """    - {field: status, one_of: [closed, active]}
    - {field: updated_at, older_than_days: 1}""")
    loaded, store, _ = setup(tmp_path, layout)
    assert archive(loaded, store, now=time.time).keys == []  # updated just now
    later = lambda: time.time() + 2 * 86400  # noqa: E731
    res = archive(loaded, store, now=later)
    assert res.keys == ["C1", "C2", "C3", "C4"] and res.rows_to_delete == [2, 3, 4, 5]
    assert condition_tests(loaded, 0)[0] == ("status", "in", ["closed", "active"])


def test_no_rule_and_busy_lease(tmp_path: Path) -> None:
    loaded, store, conn = setup(tmp_path, LAYOUT.split("archive:")[0])
    with pytest.raises(UsageError):
        archive(loaded, store, conn)
    loaded, store, conn = setup(tmp_path)
    assert store.acquire_lease(loaded.name, "other", 60)
    with pytest.raises(SourceBusy):
        archive(loaded, store, conn)


def test_one_pass_delete_matches_openpyxl_delete_rows(tmp_path: Path) -> None:
    from openpyxl.comments import Comment
    from sheetsync.connectors.xlsx.rows import delete_rows

    def build():
        book = openpyxl.Workbook()
        for r in range(1, 20):
            for c in range(1, 4):
                book.active.cell(r, c, f"{r}-{c}")
            if r % 3 == 0:
                book.active.cell(r, 2).comment = Comment(f"note {r}", "x")
        return book

    def saved(book, name):
        book.save(tmp_path / name)
        ws = openpyxl.load_workbook(tmp_path / name).active
        return [[(c.value, c.comment.text if c.comment else None) for c in row] for row in ws.iter_rows()]

    rows = [2, 3, 9, 10, 11, 19]
    ours, theirs = build(), build()
    delete_rows(ours.active, rows)
    for r in sorted(rows, reverse=True):
        theirs.active.delete_rows(r)
    assert saved(ours, "a.xlsx") == saved(theirs, "b.xlsx")
    assert saved(ours, "a.xlsx")[1][1] == ("4-2", None) and len(saved(ours, "a.xlsx")) == 13


def test_a_busy_workbook_after_the_commit_is_finished_by_the_next_archive(tmp_path: Path) -> None:
    loaded, store, conn = setup(tmp_path)
    lock = tmp_path / "~$book.xlsx"
    lock.write_text("Excel has it open")
    res = archive(loaded, store, conn)
    assert res.keys == ["C2", "C4"] and res.rows_to_delete == [3, 5] and "archive` again" in res.why_not_removed
    assert sheet_ids(tmp_path / "book.xlsx") == ["C1", "C2", "C3", "C4"]  # nothing written meanwhile
    assert len(store.archived("customers_archive")) == 2 and len(store.outbox(loaded.name)) == 2
    lock.unlink()
    again = archive(loaded, store, conn)  # nothing new to move: it finishes the sheet side
    assert again.keys == [] and sheet_ids(tmp_path / "book.xlsx") == ["C1", "C3"]
    tab = openpyxl.load_workbook(tmp_path / "book.xlsx")["archive"]
    assert [r[0] for r in tab.iter_rows(min_row=2, values_only=True)] == ["C2", "C4"]
    assert store.outbox(loaded.name) == [] and store.get_meta(loaded.name, "archive_copy") is None
