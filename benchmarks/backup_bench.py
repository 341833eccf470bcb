"""Snapshot cost on a 100k-row store: seconds and bytes added per step (python benchmarks/backup_bench.py).

Steps: initial snapshot, no change, 1% of customers changed, only the small lookup table
changed, 100 customers appended; then restore and verify times. Run with --encrypt to measure encrypted snapshots.
"""
from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sheetsync.backup import generate_key, restore_store, snapshot, verify  # noqa: E402
from sheetsync.backup.crypto import decode_key  # noqa: E402


def build_store(path: Path, rows: int, rng: random.Random) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE customers(id INTEGER PRIMARY KEY, code TEXT, name TEXT, phone TEXT, "
                "email TEXT, city TEXT, credit REAL, updated_at TEXT)")
    con.execute("CREATE TABLE lookup(code TEXT PRIMARY KEY, label TEXT)")
    con.execute("CREATE INDEX customers_phone ON customers(phone)")
    cities = ["上海", "北京", "深圳", "Berlin", "Paris", "Lagos"]
    con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (
        (i, f"C{i:06d}", f"客户 {rng.randrange(10**6)}", f"+86 138 {rng.randrange(10**8):08d}",
         f"user{i}@example.com", rng.choice(cities), round(rng.random() * 10**5, 2),
         f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}") for i in range(1, rows + 1)))
    con.executemany("INSERT INTO lookup VALUES (?, ?)", [(f"k{i}", f"label {i}") for i in range(50)])
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # so the file size below is the store's size
    return con


def folder_bytes(path: Path) -> tuple[int, int]:
    files = [f for f in path.rglob("*") if f.is_file()] if path.exists() else []
    return sum(f.stat().st_size for f in files), len(files)


def run_steps(changes: dict, con: sqlite3.Connection, store: Path, backup: Path,
              key: bytes | None) -> list:
    """Apply each change, snapshot, print seconds and bytes the backup folder grew by."""
    print(f"{'step':<18}{'seconds':>9}{'bytes added':>14}{'files added':>13}")
    snaps = []
    for step, change in changes.items():
        change()
        con.commit()
        before, nbefore = folder_bytes(backup)
        t0 = time.perf_counter()
        snaps.append(snapshot(store, backup, key=key))
        seconds = time.perf_counter() - t0
        after, nafter = folder_bytes(backup)
        print(f"{step:<18}{seconds:>9.2f}{after - before:>14,}{nafter - nbefore:>13}")
    return snaps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--encrypt", action="store_true")
    args = parser.parse_args(argv)
    rng = random.Random(5)
    key = decode_key(generate_key()) if args.encrypt else None
    with tempfile.TemporaryDirectory() as tmp:
        store, backup = Path(tmp) / "store.db", Path(tmp) / "backup"
        con = build_store(store, args.rows, rng)
        changes = {
            "initial": lambda: None,
            "no change": lambda: None,
            "1% of customers": lambda: con.executemany(
                "UPDATE customers SET credit = credit + 1 WHERE id = ?",
                [(i,) for i in rng.sample(range(1, args.rows + 1), args.rows // 100)]),
            "lookup only": lambda: con.execute("UPDATE lookup SET label = 'x' WHERE code = 'k3'"),
            "append 100 rows": lambda: con.executemany(
                "INSERT INTO customers(code, name) VALUES (?, ?)",
                [(f"N{i}", f"new {i}") for i in range(100)]),
        }
        print(f"store: {args.rows} customers + 50 lookup rows, {store.stat().st_size:,} bytes "
              f"on disk{', encrypted snapshots' if key else ''}")
        snaps = run_steps(changes, con, store, backup, key)
        parts = [r.size for n, r in snaps[0].objects.items() if n.endswith("/customers")]
        print(f"customers dump: {sum(parts):,} bytes plaintext in {len(parts)} content-defined parts")
        t0 = time.perf_counter()
        restore_store(backup, snaps[0].id, Path(tmp) / "restored.db", key=key)
        print(f"restore (rebuild + integrity_check + re-hash): {time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        report = verify(backup, key=key)
        print(f"verify --all ({len(report.snapshots)} snapshots, {report.objects_checked} objects, "
              f"deep): {time.perf_counter() - t0:.2f} s, ok={report.ok}")


if __name__ == "__main__":
    main()
