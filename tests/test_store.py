"""The SQLite store: quoting of untrusted names, history, base state, outbox, leases, migrations."""
from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from sheetsync.errors import StoreError, UsageError
from sheetsync.model import Patch
from sheetsync.store import SCHEMA_VERSION, BaseRow, Mark, Store


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_hostile_table_and_column_names_are_quoted_not_executed(tmp_path):
    store = Store(tmp_path / "s.db")
    table, col = 'x"; DROP TABLE _sheetsync_runs; --', "name'); DELETE FROM x; --"
    store.ensure_table(table, {col: "string", "limit": "integer"})
    with store.transaction():
        store.write_record(table, "K1", {col: "Robert'); --", "limit": 5}, action="insert", run_id="r1")
    assert store.records(table)["K1"][col] == "Robert'); --"
    assert store.db.execute("SELECT count(*) FROM _sheetsync_runs").fetchone() == (0,)
    types = {r[1]: r[2] for r in store.db.execute(f'PRAGMA table_info("{table.replace(chr(34), chr(34) * 2)}")')}
    assert types["limit"] == "INTEGER" and types[col] == "TEXT"


def test_reserved_column_names_are_refused():
    with pytest.raises(UsageError):
        Store().ensure_table("t", {"_rev": "string"})


def test_history_records_every_changed_field_with_run_and_place():
    clock = Clock()
    store = Store(clock=clock)
    store.ensure_table("customers", {"name": "string", "phone": "phone"})
    with store.transaction():
        store.write_record("customers", "C1", {"name": "张伟", "phone": "+86 138 0013 8000"},
                           action="insert", run_id="r1", layout="east", sheet="Customers", row=3)
    clock.t = 2000.0
    with store.transaction():
        rev = store.write_record("customers", "C1", {"name": "张伟", "phone": "+86 139 0013 9000"},
                                 action="update", run_id="r2", layout="east", sheet="Customers", row=4)
        store.delete_record("customers", "C1", run_id="r3", layout="east", sheet="Customers", row=4)
    assert rev == 2
    hist = [(h["field"], h["old"], h["new"], h["action"], h["run_id"], h["row"]) for h in store.history("customers", "C1")]
    assert hist == [
        ("name", None, "张伟", "insert", "r1", 3),
        ("phone", None, "+86 138 0013 8000", "insert", "r1", 3),
        ("phone", "+86 138 0013 8000", "+86 139 0013 9000", "update", "r2", 4),
        (None, "0", "1", "delete", "r3", 4),
    ]
    rec = store.records("customers")["C1"]
    assert rec["_deleted"] == 1 and rec["_rev"] == 3
    assert store.records("customers", include_deleted=False) == {}


def test_unchanged_write_adds_no_history_and_keeps_rev():
    store = Store()
    store.ensure_table("t", {"a": "string"})
    with store.transaction():
        store.write_record("t", "k", {"a": "1"}, action="insert", run_id="r1")
        assert store.write_record("t", "k", {"a": "1"}, action="update", run_id="r2") == 1
    assert len(store.history("t", "k")) == 1


def test_transaction_rolls_back_everything_on_error():
    store = Store()
    store.ensure_table("t", {"a": "string"})
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.write_record("t", "k", {"a": "1"}, action="insert", run_id="r1")
            store.add_outbox("lay", "r1", [(Patch(row=2, col=1, kind="corrected", write=True, value="x"), "k", "a")])
            raise RuntimeError("crash inside the commit")
    assert store.records("t") == {} and store.outbox("lay") == [] and store.history("t", "k") == []


def test_base_marks_problems_and_outbox_round_trip():
    store = Store()
    with store.transaction():
        store.put_base("lay", {"C1": BaseRow("h", 3, {"a": "1"}, {"a": "1"}, 2)})
        store.put_marks("lay", {("C1", "a"): Mark("invalid", "FFC7CE", "sheetsync: bad", None)})
        store.replace_problems("lay", ["C1"], [{"ident": "C1", "field": "a", "code": "type.email",
                                               "params": {"value": "x"}, "row": 3, "col": 1}], "r1")
        patch = Patch(row=3, col=1, kind="invalid", fill="FFC7CE", note="n", expected="x", anchor=(1, "C1"))
        store.add_outbox("lay", "r1", [(patch, "C1", "a")])
    assert store.base("lay")["C1"] == BaseRow("h", 3, {"a": "1"}, {"a": "1"}, 2)
    assert store.marks("lay")[("C1", "a")].kind == "invalid"
    assert [(p["ident"], p["code"], p["row"]) for p in store.problems("lay")] == [("C1", "type.email", 3)]
    [(oid, replayed, ident, field)] = store.outbox("lay")
    assert replayed == patch and (ident, field) == ("C1", "a")
    with store.transaction():
        store.drop_outbox([oid])
        store.relocate("lay", {"C1": 9})
        store.put_marks("lay", {("C1", "a"): None})
    assert store.outbox("lay") == [] and store.marks("lay") == {}
    assert store.problems("lay")[0]["row"] == 9 and store.base("lay")["C1"].row == 9


def test_problem_keeps_its_opening_time_while_it_stays_open():
    clock = Clock(100.0)
    store = Store(clock=clock)
    p = {"ident": "C1", "field": "a", "code": "required", "params": {}, "row": 2, "col": 1}
    with store.transaction():
        store.replace_problems("lay", ["C1"], [p], "r1")
    clock.t = 500.0
    with store.transaction():
        store.replace_problems("lay", ["C1"], [p], "r2")
    assert store.problems("lay")[0]["opened"] == 100.0


def test_lease_excludes_a_second_holder_until_it_expires():
    clock = Clock()
    store = Store(clock=clock)
    assert store.acquire_lease("lay", "a", 60)
    assert not store.acquire_lease("lay", "b", 60)
    clock.t += 61
    assert store.acquire_lease("lay", "b", 60)
    store.release_lease("lay", "a")  # not the holder any more: no effect
    assert store.lease_holder("lay")[0] == "b"


def test_lease_is_shared_between_two_connections_to_one_file(tmp_path):
    one, two = Store(tmp_path / "s.db"), Store(tmp_path / "s.db")
    assert one.acquire_lease("lay", "p1", 60)
    assert not two.acquire_lease("lay", "p2", 60)


def test_find_by_values_matches_live_records_only():
    store = Store()
    store.ensure_table("t", {"phone": "phone", "email": "email"})
    with store.transaction():
        store.write_record("t", "A", {"phone": "+86 1", "email": "a@x.cn"}, action="insert", run_id="r")
        store.write_record("t", "B", {"phone": "+86 1", "email": "b@x.cn"}, action="insert", run_id="r")
        store.write_record("t", "C", {"phone": "+86 2", "email": "a@x.cn"}, action="insert", run_id="r")
        store.delete_record("t", "B", run_id="r")
    assert store.find_by_values("t", ["phone"], [("+86 1",), ("",)]) == {("+86 1",): ["A"]}
    assert store.find_by_values("t", ["phone", "email"], [("+86 2", "a@x.cn")]) == {("+86 2", "a@x.cn"): ["C"]}


def test_new_store_file_is_private_and_migrated(tmp_path):
    path = tmp_path / "s.db"
    Store(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def _open_after(barrier, path, errors) -> None:
    barrier.wait()
    try:
        Store(path).close()
    except StoreError as exc:
        errors.put(str(exc))


def test_processes_opening_a_new_store_at_once_all_wait_their_turn(tmp_path):
    # switching a new file to WAL takes its lock without SQLite's busy handler; CI saw the
    # loser of that race fail with "database is locked" instead of waiting
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    errors = ctx.SimpleQueue()
    for trial in range(8):
        path = str(tmp_path / f"s{trial}.db")
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open_after, args=(barrier, path, errors)) for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [proc.exitcode for proc in procs] == [0] * 4
        assert errors.empty(), errors.get()
        assert Store(path).db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_newer_store_schema_is_refused(tmp_path):
    path = tmp_path / "s.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_a_file_that_is_not_sqlite_gives_a_clear_error(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as err:
        Store(path)
    assert str(path) in str(err.value)


def test_encode_texts_is_json_dumps_byte_for_byte():
    import json
    from sheetsync.store.state import encode_texts
    cases = [{}, {"a": "x"}, {"a%b": "100%s", 'é"k': "\\n\n\x00中\u2028"}, {"a": None, "b": "1"},
             {"a": 1, "b": 2.5, "c": True, "d": "x"}]
    for texts in cases:
        expected = json.dumps({k: v if isinstance(v, str) else str(v) for k, v in texts.items() if v is not None},
                              ensure_ascii=False)
        assert encode_texts(texts) == expected
        assert json.loads(encode_texts(texts)) == json.loads(expected)


def test_insert_records_writes_each_record_with_one_full_history_row():
    store = Store(clock=Clock(5.0))
    odd = "it's'); DROP TABLE t; --"  # a field name is untrusted text, here a JSON key in SQL
    store.ensure_table("t", {"name": "string", "n": "integer", "vip": "boolean", odd: "string"})
    with store.transaction():
        store.insert_records("t", ["A", "B"], {"name": ["Ann", "Bo"], "n": [1, None], "vip": [True, False],
                                               odd: ['"x"\n中', None]},
                             [2, 7], run_id="r1", layout="lay", sheet="S")
    records = store.records("t")
    assert (records["A"]["name"], records["A"]["n"], records["A"]["vip"], records["A"]["_rev"]) == ("Ann", 1, True, 1)
    assert records["B"]["n"] is None and records["B"]["vip"] is False and records["B"]["_source"] == "lay"
    history = store.history("t", "B")
    assert {(h["field"], h["new"]) for h in history} == {("name", "Bo"), ("vip", "False")}  # empty ones left out
    assert {(h["action"], h["run_id"], h["sheet"], h["row"], h["at"]) for h in history} == {("insert", "r1", "S", 7, 5.0)}
    assert {h["field"]: h["new"] for h in store.history("t", "A")} == {"name": "Ann", "n": "1", "vip": "True",
                                                                       odd: '"x"\n中'}


def test_insert_records_history_keeps_each_value_text_as_given():
    """The history JSON is built by SQLite from the stored record where that gives back the same
    text, and from texts passed in where it would not (floats, numbers in a text kept as one)."""
    store = Store(clock=Clock(5.0))
    store.ensure_table("t", {"x": "number", "i": "integer", "s": "string", "b": "boolean"})
    with store.transaction():  # rows and history rows already there: the batch goes after them
        store.write_record("t", "OLD", {"s": "old"}, action="insert", run_id="r0")
        store.write_record("t", "OLD", {"s": "older"}, action="update", run_id="r0")
        after = store.insert_records(
            "t", ["A", "B", "C"], {"x": [0.1 + 0.2, 5.0, 1e16], "i": [5, None, -3], "s": ["05", 7, True],
                                   "b": [True, False, None]}, [9, 4, None], run_id="r1", layout="lay")
        store.put_inserted_base("lay", "t", ["ha", "hb", "hc"], after)
    expanded = {k: {h["field"]: h["new"] for h in store.history("t", k)} for k in "ABC"}
    assert expanded == {"A": {"x": "0.30000000000000004", "i": "5", "s": "05", "b": "True"},
                        "B": {"x": "5.0", "s": "7", "b": "False"},
                        "C": {"x": "1e+16", "i": "-3", "s": "True"}}
    assert {k: {(h["row"], h["run_id"], h["layout"]) for h in store.history("t", k)} for k in "ABC"} == {
        "A": {(9, "r1", "lay")}, "B": {(4, "r1", "lay")}, "C": {(None, "r1", "lay")}}
    assert {k: (b.hash, b.row) for k, b in store.base("lay").items()} == {"A": ("ha", 9), "B": ("hb", 4),
                                                                         "C": ("hc", None)}
    assert store.records("t")["B"]["x"] == 5.0 and store.records("t")["OLD"]["s"] == "older"


def test_a_field_named_like_the_rowid_is_refused():
    store = Store()
    with pytest.raises(UsageError, match="RowId"):
        store.ensure_table("t", {"RowId": "string"})


def test_inserted_base_rows_rest_on_their_records():
    store = Store()
    store.ensure_table("t", {"name": "string"})
    with store.transaction():
        after = store.insert_records("t", ["A"], {"name": ["Ann"]}, [2], run_id="r1")
        store.put_inserted_base("lay", "t", ["h1"], after)
    (base,) = store.base("lay").values()
    assert (base.hash, base.row, base.rev, base.sheet) == ("h1", 2, 1, None)
    assert base.resolve(store.records("t")["A"]).sheet == {"name": "Ann"}
    with store.transaction():  # a change in the store writes the agreed values out first
        store.write_record("t", "A", {"name": "Anna"}, action="update", run_id="r2")
    assert store.base("lay")["A"].sheet == {"name": "Ann"}


def test_a_derived_base_row_is_written_out_before_its_record_changes():
    store = Store()
    store.ensure_table("t", {"id": "string", "n": "integer", "ok": "boolean"})
    with store.transaction():
        store.write_record("t", "A", {"id": "A", "n": 5, "ok": True}, action="insert", run_id="r1")
        store.put_base("sheet1", {"A": BaseRow("h", 2, None, None, 1)}, table="t")
    assert store.base("sheet1")["A"].sheet is None
    assert store.base("sheet1")["A"].resolve(store.records("t")["A"]).store == {"id": "A", "n": "5", "ok": "TRUE"}
    with store.transaction():  # the same values: nothing to write out
        store.write_record("t", "A", {"n": 5}, action="update", run_id="r2")
    assert store.base("sheet1")["A"].sheet is None
    with store.transaction():
        store.write_record("t", "A", {"n": 6}, action="update", run_id="r3")
    base = store.base("sheet1")["A"]
    assert base.sheet == base.store == {"id": "A", "n": "5", "ok": "TRUE"}
    assert base.resolve(store.records("t")["A"]) is base  # explicit values stay as they are


def test_put_base_refuses_derived_rows_without_their_table():
    with pytest.raises(ValueError):
        Store().put_base("sheet1", {"A": BaseRow("h", 2, None, None, 1)})
