"""Snapshots of a real SQLite store: incremental objects, restore drill, a writer in another process."""
from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sheetsync.backup import (BackupError, SheetCopy, restore_sheet, restore_store, snapshot,
                              verify)
from sheetsync.backup.objects import Repository

T0 = datetime(2026, 11, 23, 10, 30, tzinfo=timezone.utc)


def make_store(path: Path, customers: int = 300) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript("""
        CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, phone TEXT, credit REAL, pic BLOB);
        CREATE TABLE lookup(code TEXT, label TEXT);
        CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);
        CREATE TABLE pairs(a TEXT, b INTEGER, score REAL, PRIMARY KEY (a, b)) WITHOUT ROWID;
        CREATE TABLE calc(x INTEGER, doubled INTEGER GENERATED ALWAYS AS (x * 2) VIRTUAL);
        CREATE INDEX customers_name ON customers(name);
        CREATE VIEW rich AS SELECT * FROM customers WHERE credit > 100;
        CREATE TRIGGER lookup_audit AFTER INSERT ON lookup BEGIN
            INSERT INTO audit(what) VALUES ('lookup ' || new.code); END;
        PRAGMA user_version = 7;
    """)
    con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
                    [(i, f"客户 {i} 'x\"", f"+86 138 {i:04d}", i * 1.25 + 0.1,
                      bytes([i % 256, 0, 255]) if i % 7 == 0 else None)
                     for i in range(1, customers + 1)])
    con.executemany("INSERT INTO lookup VALUES (?, ?)", [("a", "Alpha"), ("b", "Béta"), ("c", None)])
    con.executemany("INSERT INTO pairs VALUES (?, ?, ?)", [("C1", 2, 0.93), ("C0", 5, 1.0)])
    con.executemany("INSERT INTO calc(x) VALUES (?)", [(1,), (2,), (None,)])
    con.execute("DELETE FROM lookup WHERE code = 'c'")  # leaves a rowid gap
    con.execute("INSERT INTO lookup VALUES ('d', '1e400')")
    con.commit()
    return con


def everything(path: Path) -> dict:
    """Every table's rows with rowids, the schema and the PRAGMAs: what a restore must give back."""
    con = sqlite3.connect(path)
    out = {"schema": con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall(),
           "user_version": con.execute("PRAGMA user_version").fetchone()[0]}
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        order = "a, b" if name == "pairs" else "rowid"
        cols = "*" if name == "pairs" else "rowid, *"
        out[name] = con.execute(f'SELECT {cols} FROM "{name}" ORDER BY {order}').fetchall()
    con.close()
    return out


def sheet(rows: list[list[str]]) -> SheetCopy:
    return SheetCopy("customers", "客户", ["name", "phone"], rows, {"B2": "sheetsync: phone 格式"})


def test_identical_content_gives_identical_objects_and_costs_nothing(tmp_path: Path) -> None:
    make_store(tmp_path / "s.db").close()
    first = snapshot(tmp_path / "s.db", tmp_path / "bk", sheets=[sheet([["a", "1"]])], clock=lambda: T0)
    files = sorted((tmp_path / "bk" / "objects").rglob("*"))
    second = snapshot(tmp_path / "s.db", tmp_path / "bk", sheets=[sheet([["a", "1"]])], clock=lambda: T0)
    assert second.objects == first.objects and second.id != first.id
    assert sorted((tmp_path / "bk" / "objects").rglob("*")) == files
    assert {r.kind for r in first.objects.values()} == {"store", "store-table", "sheet"}


def test_change_in_one_table_adds_only_that_table(tmp_path: Path) -> None:
    con = make_store(tmp_path / "s.db", customers=2000)
    first = snapshot(tmp_path / "s.db", tmp_path / "bk")
    con.execute("UPDATE lookup SET label = 'changed' WHERE code = 'a'")
    con.commit()
    before = sum(f.stat().st_size for f in (tmp_path / "bk" / "objects").rglob("*") if f.is_file())
    second = snapshot(tmp_path / "s.db", tmp_path / "bk")
    after = sum(f.stat().st_size for f in (tmp_path / "bk" / "objects").rglob("*") if f.is_file())
    changed = {n for n in first.objects if first.objects[n] != second.objects[n]}
    assert changed == {"store/table/lookup"}
    assert 0 < after - before < 300  # the small table's object (45 bytes of it its header), not the 2000-row customers


def _objects_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in (folder / "objects").rglob("*") if f.is_file())


def test_appended_rows_cost_only_the_last_part_of_a_big_table(tmp_path: Path) -> None:
    con = make_store(tmp_path / "s.db", customers=20_000)
    first = snapshot(tmp_path / "s.db", tmp_path / "bk")
    parts = [n for n in first.objects if n.endswith("/customers")]
    assert len(parts) > 3  # a 20k-row table is split into content-defined parts
    table_bytes = _objects_bytes(tmp_path / "bk")
    con.executemany("INSERT INTO customers(name) VALUES (?)", [(f"new {i}",) for i in range(50)])
    con.execute("UPDATE customers SET phone = 'x' WHERE id = 10")  # one edit near the start
    con.commit()
    second = snapshot(tmp_path / "s.db", tmp_path / "bk")
    changed = sorted(n for n in second.objects if first.objects.get(n) != second.objects[n])
    last = max(int(n.split("/")[2]) for n in parts if n.startswith("store/part/"))
    assert "store/table/customers" in changed and len(changed) <= 3, changed  # first part, last
    assert all(n == "store/table/customers" or int(n.split("/")[2]) >= last for n in changed)
    assert _objects_bytes(tmp_path / "bk") - table_bytes < table_bytes / 3
    restore_store(tmp_path / "bk", second.id, tmp_path / "r.db")
    assert everything(tmp_path / "r.db") == everything(tmp_path / "s.db")


def test_restore_drill_gives_back_every_table(tmp_path: Path) -> None:
    con = make_store(tmp_path / "s.db")
    original = everything(tmp_path / "s.db")
    rows1 = [["张三", "+86 138 0013 8000"], ["bob", "=1+1"]]
    first = snapshot(tmp_path / "s.db", tmp_path / "bk", sheets=[sheet(rows1)], run_id="r1",
                     layouts=["customers"], clock=lambda: T0)
    con.execute("UPDATE customers SET phone = 'gone' WHERE id % 3 = 0")
    con.execute("DELETE FROM customers WHERE id > 250")
    con.execute("INSERT INTO lookup VALUES ('z', 'Zulu')")
    con.execute("DELETE FROM pairs")
    con.execute("UPDATE calc SET x = 40")
    con.commit()
    changed = everything(tmp_path / "s.db")
    second = snapshot(tmp_path / "s.db", tmp_path / "bk", sheets=[sheet([["x", "y"]])])
    assert restore_store(tmp_path / "bk", first.id, tmp_path / "r1.db") == tmp_path / "r1.db"
    assert everything(tmp_path / "r1.db") == original
    assert everything(tmp_path / "r1.db")["calc"][0] == (1, 1, 2)  # generated column recomputed
    restore_store(tmp_path / "bk", second.id, tmp_path / "r2.db")
    assert everything(tmp_path / "r2.db") == changed
    assert restore_sheet(tmp_path / "bk", first.id, "customers") == sheet(rows1)
    assert first.run_id == "r1" and first.layouts == ["customers"]
    with sqlite3.connect(tmp_path / "r1.db") as r:
        assert r.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        r.execute("INSERT INTO audit(what) VALUES ('next')")  # AUTOINCREMENT state came back
        assert r.execute("SELECT max(id) FROM audit").fetchone()[0] == len(original["audit"]) + 1


def test_restore_never_overwrites_unless_asked_and_closed(tmp_path: Path) -> None:
    con = make_store(tmp_path / "s.db")
    snap = snapshot(tmp_path / "s.db", tmp_path / "bk")
    con.execute("DELETE FROM customers")
    con.commit()
    with pytest.raises(BackupError, match="already exists"):
        restore_store(tmp_path / "bk", snap.id, tmp_path / "s.db")
    with pytest.raises(BackupError, match="-wal"):  # the live store is still open
        restore_store(tmp_path / "bk", snap.id, tmp_path / "s.db", overwrite=True)
    con.close()
    restore_store(tmp_path / "bk", snap.id, tmp_path / "s.db", overwrite=True)
    with sqlite3.connect(tmp_path / "s.db") as r:
        assert r.execute("SELECT count(*) FROM customers").fetchone()[0] == 300
    assert [p.name for p in tmp_path.iterdir() if "restore" in p.name] == []


def test_sheet_object_is_canonical_jsonl(tmp_path: Path) -> None:
    make_store(tmp_path / "s.db").close()
    snap = snapshot(tmp_path / "s.db", tmp_path / "bk", sheets=[sheet([["张三", "1"]])])
    data = Repository(tmp_path / "bk").get(snap.objects["sheet/customers"].sha256).decode()
    lines = data.splitlines()
    assert lines[1:] == ['["张三","1"]']
    assert lines[0].index('"header"') < lines[0].index('"layout"') < lines[0].index('"marks"')
    with pytest.raises(BackupError, match="no sheet for layout 'orders'"):
        restore_sheet(tmp_path / "bk", snap.id, "orders")


def test_backup_files_are_private(tmp_path: Path) -> None:
    make_store(tmp_path / "s.db").close()
    snapshot(tmp_path / "s.db", tmp_path / "bk")
    for p in (tmp_path / "bk").rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p


def test_virtual_table_round_trip(tmp_path: Path) -> None:
    con = make_store(tmp_path / "s.db")
    try:
        con.execute("CREATE VIRTUAL TABLE notes USING fts5(body)")
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no fts5")
    con.executemany("INSERT INTO notes VALUES (?)", [("first note",), ("second words",)])
    con.commit()
    snap = snapshot(tmp_path / "s.db", tmp_path / "bk")
    restore_store(tmp_path / "bk", snap.id, tmp_path / "r.db")
    with sqlite3.connect(tmp_path / "r.db") as r:
        assert r.execute("SELECT body FROM notes WHERE notes MATCH 'words'").fetchall() == \
            [("second words",)]


WRITER = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30)
con.execute("PRAGMA journal_mode=WAL")
i = 0
while True:
    i += 1
    with con:
        con.execute("INSERT INTO a(id, v) VALUES (?, ?)", (i, "x" * 50))
        con.execute("INSERT INTO b(id, a_id) VALUES (?, ?)", (i, i))
"""


def test_snapshot_while_another_process_writes(tmp_path: Path) -> None:
    store = tmp_path / "live.db"
    with sqlite3.connect(store) as con:
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript("CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT);"
                          "CREATE TABLE b(id INTEGER PRIMARY KEY, a_id INTEGER);")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store)])
    try:
        deadline = time.monotonic() + 10
        while _count(store) < 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        snaps = [snapshot(store, tmp_path / "bk") for _ in range(3)]
        assert writer.poll() is None, "the writer must still be writing during the snapshots"
    finally:
        writer.kill()
        writer.wait()
    counts = []
    for n, snap in enumerate(snaps):
        restored = restore_store(tmp_path / "bk", snap.id, tmp_path / f"r{n}.db")
        with sqlite3.connect(restored) as r:
            assert r.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            ids_a = [x for (x,) in r.execute("SELECT id FROM a ORDER BY id")]
            ids_b = [x for (x,) in r.execute("SELECT a_id FROM b ORDER BY id")]
        assert ids_a == ids_b == list(range(1, len(ids_a) + 1))  # a consistent prefix
        counts.append(len(ids_a))
    assert counts[0] >= 200 and counts[-1] > counts[0]
    assert _count(store) > counts[-1]
    assert verify(tmp_path / "bk").ok


def _count(store: Path) -> int:
    with sqlite3.connect(store, timeout=10) as con:
        return con.execute("SELECT count(*) FROM a").fetchone()[0]
