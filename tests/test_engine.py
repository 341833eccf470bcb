"""The whole run on the in-memory connector: write-back, idempotence, reconcile, crash recovery."""
from __future__ import annotations


import pytest

from sheetsync.connectors.memory import MemoryBook, MemoryConnector
from sheetsync.engine import STEPS, sync_once
from sheetsync.errors import SourceBusy, SourceError
from sheetsync.layout import Layout, LoadedLayout
from sheetsync.store import Store

HEADER = ["Customer ID", "Name", "Phone", "Email", "Limit"]
LAYOUT = {
    "table": "customers",
    "source": {"kind": "memory", "name": "t"},
    "key": "id",
    "columns": {
        "id": {"header": "Customer ID", "required": True, "pattern": r"^C\d{3}$"},
        "name": {"header": "Name", "required": True},
        "phone": {"header": "Phone", "type": "phone"},
        "email": {"header": "Email", "type": "email"},
        "limit": {"header": "Limit", "type": "integer", "protected": True},
    },
    "dedupe": {"exact": [["phone"]]},
}


def rows():
    return [
        ["C001", "张伟", "138 0013 8000", "zw@example.cn", 100],
        ["C002", "Li Na", "+86 139 0013 9000", "bob@@acme", 200.0],
        ["C003", "王芳", "１３７００１３７０００", " WF@Example.cn ", "1,000"],
        ["C004", "Dup", "13800138000", "dup@example.cn", 5],
        ["BAD", "No key", "+86 186 0018 6000", "x@example.cn", 1],
    ]


def make(tmp_path, **overrides):
    layout = LoadedLayout(layout=Layout.model_validate({**LAYOUT, **overrides}), path=tmp_path / "c.yaml", name="c")
    book = MemoryBook(header=list(HEADER), rows=rows(), name="t")
    return layout, book, Store(tmp_path / "s.db")


def run(layout, book, store, **kw):
    return sync_once(layout, store=store, connector=MemoryConnector(book), **kw)


def problems(store):
    return sorted((p["row"], p["field"], p["code"]) for p in store.problems("c"))


def test_first_sync_stores_valid_rows_and_explains_every_cell(tmp_path):
    layout, book, store = make(tmp_path)
    res = run(layout, book, store)
    assert res.outcome == "problems"
    assert (res.rows_read, res.inserted, res.held_back) == (5, 4, 1)
    recs = store.records("customers")
    assert recs["C001"]["phone"] == "+86 138 0013 8000" and recs["C003"]["limit"] == 1000
    assert recs["C002"]["email"] is None  # invalid: never in the store
    assert "BAD" not in recs and "row:6" not in recs
    assert book.get(2, 3) == "+86 138 0013 8000" and book.get(4, 3) == "+86 137 0013 7000"
    assert book.get(4, 4) == "wf@example.cn"
    assert book.notes[(2, 3)].startswith("sheetsync: ") and "138 0013 8000" in book.notes[(2, 3)]
    assert book.fills[(3, 4)] == layout.layout.colours.invalid
    assert book.fills[(5, 3)] == layout.layout.colours.duplicate
    assert problems(store) == [(3, "email", "type.email"), (5, "phone", "duplicate"),
                               (6, "", "held_back"), (6, "id", "pattern")]
    tab = [list(r) for r in book.reports["sheetsync"]]
    assert any("4 open" in str(c) for r in tab for c in r)
    header = next(i for i, r in enumerate(tab) if r and r[0] == "Cell")
    assert [r[0] for r in tab[header + 1:]] == ["D3", "C5", "", "A6"]


def test_second_sync_of_an_untouched_sheet_does_nothing(tmp_path):
    layout, book, store = make(tmp_path)
    run(layout, book, store)
    before = (book.version, dict(book.notes), dict(book.fills))
    res = run(layout, book, store)
    assert (res.inserted, res.updated, res.patches_applied, res.unchanged) == (0, 0, 0, 5)
    assert (book.version, dict(book.notes), dict(book.fills)) == before


def test_fixing_a_cell_clears_the_mark_and_the_problem_but_keeps_a_persons_fill(tmp_path):
    layout, book, store = make(tmp_path)
    book.fills[(3, 4)] = "00FF00"  # a person's own colour on the cell, before sheetsync marks it
    run(layout, book, store)
    assert book.fills[(3, 4)] == layout.layout.colours.invalid
    book.set(3, 4, "lina@example.cn")
    res = run(layout, book, store)
    assert res.updated == 1
    assert book.fills.get((3, 4)) == "00FF00" and (3, 4) not in book.notes
    assert (3, "email", "type.email") not in problems(store)
    assert store.records("customers")["C002"]["email"] == "lina@example.cn"


def test_deleted_row_is_soft_deleted_and_reported(tmp_path):
    layout, book, store = make(tmp_path)
    run(layout, book, store)
    del book.rows[0]
    res = run(layout, book, store)
    assert res.deleted == 1
    assert store.records("customers")["C001"]["_deleted"] == 1
    assert store.records("customers")["C002"]["_deleted"] == 0  # moved up one row, same record
    assert store.history("customers", "C001")[-1]["action"] == "delete"


def test_a_store_change_is_pushed_to_the_sheet(tmp_path):
    layout, book, store = make(tmp_path)
    run(layout, book, store)
    with store.transaction():
        store.write_record("customers", "C001", {"name": "张伟伟"}, action="update", run_id="other")
    res = run(layout, book, store)
    assert book.get(2, 2) == "张伟伟" and book.fills[(2, 2)] == layout.layout.colours.pushed
    assert res.patches_applied >= 1 and res.updated == 0


def test_clean_rows_keep_no_copy_of_their_values_yet_store_changes_and_clashes_are_seen(tmp_path):
    """A plain new row's base is "the record's own values"; a later store-side change writes
    those values out first, so the three-way reconcile still tells pushes from conflicts."""
    layout, book, store = make(tmp_path)
    book.rows = [["C010", "Clean", "+86 138 0013 8010", "c@example.cn", 10],
                 ["C011", "Also", "+86 138 0013 8011", "d@example.cn", 11]]
    run(layout, book, store)
    derived = "SELECT count(*) FROM _sheetsync_base WHERE sheet_vals = '@'"
    assert store.db.execute(derived).fetchone()[0] == 2
    with store.transaction():
        store.write_record("customers", "C010", {"name": "Store"}, action="update", run_id="other")
        store.write_record("customers", "C011", {"name": "Store too"}, action="update", run_id="other")
    assert store.db.execute(derived).fetchone()[0] == 0  # written out before the records changed
    book.set(3, 2, "Sheet")  # C011's name edited in the sheet as well: a conflict
    res = run(layout, book, store)
    assert book.get(2, 2) == "Store" and book.fills[(2, 2)] == layout.layout.colours.pushed
    assert res.conflicts == 1 and (3, "name", "conflict") in problems(store)
    assert store.records("customers")["C011"]["name"] == "Store too"


def test_a_boolean_cell_is_not_rewritten_when_another_cell_of_its_row_changes(tmp_path):
    layout, book, store = make(tmp_path, columns={**LAYOUT["columns"], "vip": {"header": "VIP", "type": "boolean"}})
    book.header.append("VIP")
    book.rows = [["C010", "Clean", "+86 138 0013 8010", "c@example.cn", 10, True]]
    run(layout, book, store)
    assert store.records("customers")["C010"]["vip"] is True  # SQLite's 1 comes back as a bool
    book.set(2, 2, "Renamed")
    res = run(layout, book, store)
    assert res.updated == 1 and res.patches_applied == 0 and book.get(2, 6) is True


def test_protected_edit_is_reverted_and_explained(tmp_path):
    layout, book, store = make(tmp_path)
    run(layout, book, store)
    book.set(2, 5, 999999)
    res = run(layout, book, store)
    assert res.protected == 1
    assert book.get(2, 5) == 100 and "999999" in book.notes[(2, 5)]
    assert store.records("customers")["C001"]["limit"] == 100


def test_conflict_is_flagged_and_kept_until_settled(tmp_path):
    layout, book, store = make(tmp_path)
    run(layout, book, store)
    with store.transaction():
        store.write_record("customers", "C001", {"name": "Store name"}, action="update", run_id="other")
    book.set(2, 2, "Sheet name")
    res = run(layout, book, store)
    assert res.conflicts == 1 and (2, "name", "conflict") in problems(store)
    assert store.records("customers")["C001"]["name"] == "Store name" and book.get(2, 2) == "Sheet name"
    book.set(2, 5, 100)  # an unrelated edit of the row: the conflict is still seen
    run(layout, book, store)
    assert (2, "name", "conflict") in problems(store)
    book.set(2, 2, "Store name")  # a person settles it
    run(layout, book, store)
    assert (2, "name", "conflict") not in problems(store) and (2, 2) not in book.notes


def test_a_value_starting_with_equals_stays_text(tmp_path):
    layout, book, store = make(tmp_path)
    book.rows[0][1] = "=HYPERLINK(\"http://evil\")"
    run(layout, book, store)
    assert store.records("customers")["C001"]["name"] == "=HYPERLINK(\"http://evil\")"


def test_missing_required_column_stops_before_anything_is_written(tmp_path):
    layout, book, store = make(tmp_path)
    book.header[1] = "Nom"
    with pytest.raises(SourceError, match="name"):
        run(layout, book, store)
    assert book.version == 1 and store.runs("c")[0]["outcome"] == "failed"
    assert "customers" not in store.tables()


def test_busy_source_ends_partial_and_writes_nothing(tmp_path):
    layout, book, store = make(tmp_path)
    book.busy = True
    res = run(layout, book, store)
    assert res.outcome == "partial" and store.records("customers") == {} if "customers" in store.tables() else True


def test_a_held_lease_refuses_a_second_run(tmp_path):
    layout, book, store = make(tmp_path)
    assert store.acquire_lease("c", "someone-else", 600)
    with pytest.raises(SourceBusy):
        run(layout, book, store)


def test_person_edit_between_read_and_write_is_not_overwritten(tmp_path):
    layout, book, store = make(tmp_path)
    book.edit_before_apply = {(2, 3): "+86 150 0015 0000"}
    res = run(layout, book, store)
    assert res.patches_deferred >= 1 and book.get(2, 3) == "+86 150 0015 0000"
    res = run(layout, book, store)
    assert store.records("customers")["C001"]["phone"] == "+86 150 0015 0000"
    assert run(layout, book, store).patches_applied == 0


def _final_state(book, store):
    recs = {k: {f: v for f, v in r.items() if not f.startswith("_")} for k, r in store.records("customers").items()}
    return ([list(r) for r in book.rows], dict(book.fills), dict(book.notes), recs, problems(store),
            store.outbox("c"))


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_is_finished_by_the_next_run(tmp_path, step):
    clean_layout, clean_book, clean_store = make(tmp_path / "clean")
    run(clean_layout, clean_book, clean_store)
    run(clean_layout, clean_book, clean_store)
    layout, book, store = make(tmp_path / "crash")

    def hook(name):
        if name == step:
            raise RuntimeError(f"crash at {name}")
    with pytest.raises(RuntimeError):
        run(layout, book, store, hook=hook)
    store.release_lease("c", store.lease_holder("c")[0]) if store.lease_holder("c") else None
    run(layout, book, store)
    run(layout, book, store)
    assert _final_state(book, store) == _final_state(clean_book, clean_store)
    for key in store.records("customers"):
        assert store.history("customers", key)[0]["action"] == "insert"


def test_a_crash_midway_through_the_write_back_is_replayed(tmp_path):
    layout, book, store = make(tmp_path)
    book.crash_after = 2
    res = run(layout, book, store)
    assert res.outcome == "partial" and len(store.outbox("c")) > 0
    res = run(layout, book, store)
    assert res.replayed > 0 and store.outbox("c") == []
    clean_layout, clean_book, clean_store = make(tmp_path / "clean")
    run(clean_layout, clean_book, clean_store)
    assert _final_state(book, store)[:4] == _final_state(clean_book, clean_store)[:4]


def test_row_scope_lets_a_sheet_create_and_edit_only_its_own_rows(tmp_path):
    overrides = {"columns": {**LAYOUT["columns"], "region": {"header": "Region"}},
                 "access": {"row_scope": {"field": "region", "equals": "East"}}}
    layout, book, store = make(tmp_path, **overrides)
    book.header.append("Region")
    for r in book.rows:
        r.append("East")
    book.rows[1][5] = "West"  # C002: a West row typed into the East sheet
    res = run(layout, book, store)
    assert "C002" not in store.records("customers") and res.held_back == 2
    assert (3, "region", "row_scope_new") in problems(store)
    # a West record (from another sheet) shown here: its edits are reverted and explained
    with store.transaction():
        store.write_record("customers", "C001", {"region": "West"}, action="update", run_id="west")
    run(layout, book, store)
    assert book.get(2, 6) == "West"
    book.set(2, 2, "Renamed by East")
    res = run(layout, book, store)
    assert res.protected == 1 and book.get(2, 2) == "张伟" and "East" in book.notes[(2, 2)]
    # an East row moved to West by this sheet is reverted
    book.set(4, 6, "West")
    run(layout, book, store)
    assert book.get(4, 6) == "East" and store.records("customers")["C003"]["region"] == "East"


def test_read_only_sheet_only_receives_store_data(tmp_path):
    layout, book, store = make(tmp_path)
    run(layout, book, store)
    ro = LoadedLayout(layout=Layout.model_validate({**LAYOUT, "access": {"read_only": True}}),
                      path=tmp_path / "c.yaml", name="c")
    book.set(2, 2, "edited in a read-only sheet")
    book.rows.append(["C009", "New", "+86 150 0015 0009", "n@example.cn", 1])
    del book.rows[2]  # C003's row deleted
    res = run(ro, book, store)
    assert book.get(2, 2) == "张伟" and "read-only" in book.notes[(2, 2)]
    assert "C009" not in store.records("customers")
    assert store.records("customers")["C003"]["_deleted"] == 0 and res.deleted == 0
    with store.transaction():
        store.write_record("customers", "C001", {"name": "From the store"}, action="update", run_id="x")
    run(ro, book, store)
    assert book.get(2, 2) == "From the store"


def test_a_managed_id_column_keeps_identity_when_rows_are_sorted(tmp_path):
    cols = {k: v for k, v in LAYOUT["columns"].items() if k != "id"}
    layout = LoadedLayout(layout=Layout.model_validate({**LAYOUT, "key": None, "id_column": "sheetsync id",
                                                        "columns": cols, "dedupe": {}}),
                          path=tmp_path / "c.yaml", name="c")
    book = MemoryBook(header=["Name", "Phone", "Email", "Limit", "sheetsync id"],
                      rows=[r[1:] for r in rows()[:3]], name="t")
    store = Store(tmp_path / "s.db")
    res = run(layout, book, store)
    ids = [book.get(r, 5) for r in (2, 3, 4)]
    assert res.inserted == 3 and all(i and i.startswith("R") for i in ids)
    assert store.records("customers")[ids[0]]["name"] == "张伟"
    book.rows.reverse()  # a person sorts the sheet
    book.version += 1
    res = run(layout, book, store)
    assert (res.inserted, res.deleted, res.updated) == (0, 0, 0)
    book.set(2, 1, "王芳芳")  # now row 2 is the third record
    run(layout, book, store)
    assert store.records("customers")[ids[2]]["name"] == "王芳芳"
    book.rows.append(list(book.rows[0]))  # a copied row, id included, is a new record
    book.version += 1
    res = run(layout, book, store)
    assert res.inserted == 1 and book.get(5, 5) not in ids


def test_a_missing_managed_id_column_is_a_clear_error(tmp_path):
    cols = {k: v for k, v in LAYOUT["columns"].items() if k != "id"}
    layout = LoadedLayout(layout=Layout.model_validate({**LAYOUT, "key": None, "id_column": "sheetsync id",
                                                        "columns": cols, "dedupe": {}}),
                          path=tmp_path / "c.yaml", name="c")
    book = MemoryBook(header=["Name", "Phone", "Email", "Limit"], rows=[r[1:] for r in rows()[:3]], name="t")
    with pytest.raises(SourceError, match="sheetsync id"):
        run(layout, book, Store(tmp_path / "s.db"))


def test_unique_column_refuses_a_value_another_record_holds(tmp_path):
    cols = {**LAYOUT["columns"], "email": {"header": "Email", "type": "email", "unique": True}}
    layout, book, store = make(tmp_path, columns=cols)
    book.rows[3][3] = "ZW@example.cn"  # C004 takes C001's email (after normalising)
    run(layout, book, store)
    assert store.records("customers")["C004"]["email"] is None
    assert (5, "email", "unique") in problems(store)
    assert "C001" in book.notes[(5, 4)]
    book.rows.append(["C005", "New", "+86 150 0015 0005", "zw@example.cn", 1])
    book.version += 1
    run(layout, book, store)
    assert (7, "email", "unique") in problems(store)


def test_ten_thousand_errors_in_one_sheet_are_each_reported_once(tmp_path):
    layout, book, store = make(tmp_path)
    book.rows = [[f"C{i:03d}" if i < 1000 else f"X{i}", "N", "12345", f"bad{i}@@x", 1] for i in range(10_000)]
    res = run(layout, book, store)
    found = problems(store)
    assert res.invalid >= 10_000 and len(found) == len(set(found))
    assert sum(1 for _, f, c in found if (f, c) == ("email", "type.email")) == 10_000
    assert len(book.notes) >= 10_000 and book.reports["sheetsync"]
    assert run(layout, book, store).patches_applied == 0


def test_duplicate_headers_for_one_field_are_refused_naming_both_columns(tmp_path):
    layout, book, store = make(tmp_path)
    book.header[4] = "phone"  # "Phone" and "phone" both fold to the phone field
    with pytest.raises(SourceError, match=r"C \('Phone'\).*E \('phone'\)"):
        run(layout, book, store)
    assert book.version == 1


def test_sql_and_quotes_in_headers_and_values_are_plain_data(tmp_path):
    evil = 'Name"; DROP TABLE customers; --'
    cols = {**LAYOUT["columns"], "name": {"header": evil, "required": True}}
    layout, book, store = make(tmp_path, columns=cols)
    book.header[1] = evil
    book.rows[0][1] = "Robert'); DROP TABLE _sheetsync_runs; --"
    run(layout, book, store)
    assert store.records("customers")["C001"]["name"] == "Robert'); DROP TABLE _sheetsync_runs; --"
    assert store.runs("c")


def test_editing_the_earlier_of_two_duplicate_rows_does_not_flag_it_too(tmp_path):
    layout, book, store = make(tmp_path)
    run(layout, book, store)
    assert (5, "phone", "duplicate") in problems(store) and (2, "phone", "duplicate") not in problems(store)
    book.set(2, 2, "张伟 (edited)")
    run(layout, book, store)
    assert (2, "phone", "duplicate") not in problems(store) and (5, "phone", "duplicate") in problems(store)


def test_editing_an_earlier_row_into_a_duplicate_flags_the_later_row(tmp_path):
    layout, book, store = make(tmp_path)
    run(layout, book, store)
    book.set(3, 3, "+86 137 0013 7000")  # C002 takes the phone of C003 (row 4, unchanged)
    run(layout, book, store)
    assert (4, "phone", "duplicate") in problems(store) and (3, "phone", "duplicate") not in problems(store)


def test_a_duplicate_flag_clears_when_its_partner_row_is_edited_away(tmp_path):
    """The later row of a pair is flagged; when a person edits the earlier row so they no longer
    match, the later (unchanged) row is checked again and its flag and note go."""
    layout, book, store = make(tmp_path)
    book.rows = [["C010", "First", "+86 138 0013 8010", "a@example.cn", 10],
                 ["C011", "Second", "+86 138 0013 8010", "b@example.cn", 11]]
    run(layout, book, store)
    assert (3, "phone", "duplicate") in problems(store) and (3, 3) in book.notes
    book.set(2, 3, "+86 138 0013 8099")
    run(layout, book, store)
    assert not [p for p in problems(store) if p[2] == "duplicate"] and (3, 3) not in book.notes


def test_protected_and_read_only_reverts_never_write_over_a_formula(tmp_path):
    """A person turns a protected cell, and a cell of a read-only sheet, into formulas: the store
    keeps its values, the formulas stay (marked, with a note to fix the inputs), and the next run
    asks for nothing more."""
    layout, book, store = make(tmp_path)
    run(layout, book, store)
    book.set(2, 5, 999999)
    book.formulas.add((2, 5))  # =999999 (its result is what a read sees)
    res = run(layout, book, store)
    assert res.protected == 1 and book.get(2, 5) == 999999
    assert "computed by a formula" in book.notes[(2, 5)] and "999999" in book.notes[(2, 5)]
    assert store.records("customers")["C001"]["limit"] == 100
    ro = LoadedLayout(layout=Layout.model_validate({**LAYOUT, "access": {"read_only": True}}),
                      path=tmp_path / "c.yaml", name="c")
    book.set(3, 2, "=UPPER name")
    book.formulas.add((3, 2))
    run(ro, book, store)
    assert book.get(3, 2) == "=UPPER name" and "computed by a formula" in book.notes[(3, 2)]
    assert run(ro, book, store).patches_applied == 0
