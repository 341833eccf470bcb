"""engine/commit.py, step 8: plain new rows take the short way (a record, one history row, a base
row without a copy of the values), and what they leave must make the next run a no-op."""
from __future__ import annotations

from sheetsync.connectors.memory import MemoryBook, MemoryConnector
from sheetsync.engine import sync_once
from sheetsync.layout import Layout, LoadedLayout
from sheetsync.store import Store

COLUMNS = {"name": {"header": "Name", "required": True}, "email": {"header": "Email", "type": "email"},
           "vip": {"header": "VIP", "type": "boolean"}}
CLEAN = [["Ann", "ann@example.cn", True], ["Bo", "bo@example.cn", False], ["Cy", None, None]]
DERIVED = "SELECT count(*) FROM _sheetsync_base WHERE sheet_vals = '@'"


def layout(tmp_path, **extra):
    return LoadedLayout(layout=Layout.model_validate({"table": "people", "source": {"kind": "memory", "name": "p"},
                                                      "columns": COLUMNS, **extra}),
                        path=tmp_path / "p.yaml", name="p")


def run(loaded, book, store, **kw):
    return sync_once(loaded, store=store, connector=MemoryConnector(book), **kw)


def test_plain_inserts_keep_no_copy_and_the_next_full_compare_changes_nothing(tmp_path):
    loaded = layout(tmp_path, key="name")
    book = MemoryBook(header=["Name", "Email", "VIP"], rows=[list(r) for r in CLEAN], name="p")
    store = Store(tmp_path / "s.db")
    first = run(loaded, book, store)
    assert (first.inserted, first.patches_applied) == (3, 0)
    assert store.db.execute(DERIVED).fetchone()[0] == 3
    assert store.history("people", "Ann")[0]["action"] == "insert"  # the audit row is still full
    again = run(loaded, book, store, full=True)
    assert (again.unchanged, again.updated, again.patches_applied) == (3, 0, 0)
    book.set(3, 2, "bo@example.org")
    edited = run(loaded, book, store)
    assert edited.updated == 1 and store.records("people")["Bo"]["email"] == "bo@example.org"
    assert store.db.execute(DERIVED).fetchone()[0] == 2  # the edited row's base is explicit now


def test_a_clean_row_given_a_managed_id_keeps_a_derived_base_hashed_with_its_id(tmp_path):
    loaded = layout(tmp_path, id_column="sheetsync id")
    book = MemoryBook(header=["Name", "Email", "VIP", "sheetsync id"], rows=[list(r) for r in CLEAN], name="p")
    store = Store(tmp_path / "s.db")
    first = run(loaded, book, store)
    ids = [book.get(r, 4) for r in (2, 3, 4)]
    assert first.inserted == 3 and all(i.startswith("R") for i in ids)
    assert store.db.execute(DERIVED).fetchone()[0] == 3
    again = run(loaded, book, store, full=True)  # rows now carry their ids: hashes must match
    assert (again.unchanged, again.updated, again.inserted, again.patches_applied) == (3, 0, 0, 0)


def test_new_rows_in_a_batch_beside_rows_that_need_a_decision(tmp_path):
    # clean brand-new rows are inserted column-wise; a correction, a duplicate, an invalid cell and
    # a held-back row beside them still get their marks, problems and base, and the row held back
    # (it has a base and marks now) takes the per-row way once fixed, which clears its marks
    columns = {**COLUMNS, "vip": {"header": "VIP", "type": "boolean", "required": True}}
    loaded = layout(tmp_path, key="name", columns=columns, dedupe={"exact": [["email"]]})
    rows = [["Ann", "ann@example.cn", True], ["Bo", " BO@Example.cn ", False], ["Cy", "ann@example.cn", True],
            ["Di", "not an email", False], ["Gus", "x@example.cn", None], ["Ed", None, True]]
    book = MemoryBook(header=["Name", "Email", "VIP"], rows=rows, name="p")
    store = Store(tmp_path / "s.db")
    first = run(loaded, book, store)
    assert (first.inserted, first.corrected, first.duplicates, first.held_back) == (5, 1, 1, 1)
    records = store.records("people")
    assert sorted(records) == ["Ann", "Bo", "Cy", "Di", "Ed"] and records["Ann"]["vip"] is True
    assert records["Bo"]["email"] == "bo@example.cn" and records["Di"]["email"] is None
    assert {(h["field"], h["row"]) for h in store.history("people", "Ed")} == {("name", 7), ("vip", 7)}
    assert book.get(3, 2) == "bo@example.cn"
    assert {(p["ident"], p["code"]) for p in store.problems("p")} >= {("Cy", "duplicate"), ("Gus", "held_back")}
    assert (6, 3) in book.fills
    assert store.db.execute(DERIVED).fetchone()[0] == 3  # Ann and Ed (the batch), Cy (a duplicate: per row)
    book.set(6, 3, True)
    fixed = run(loaded, book, store)
    assert fixed.inserted == 1 and store.records("people")["Gus"]["vip"] is True
    assert not [p for p in store.problems("p") if p["ident"] == "Gus"] and (6, 3) not in book.fills
    again = run(loaded, book, store, full=True)
    assert (again.updated, again.inserted, again.patches_applied) == (0, 0, 0)
