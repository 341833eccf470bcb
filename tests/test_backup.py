"""The backup API over a real folder: list/show/label, verify on damage, diff, export/import."""
from __future__ import annotations

import hashlib
import io
import sqlite3
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sheetsync.backup import (BackupCorrupt, BackupError, SheetCopy, diff, export, import_, label,
                              list_snapshots, restore_store, show, snapshot, unlabel, verify)
from sheetsync.backup.objects import Repository

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


def make_store(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, phone TEXT);"
                      "CREATE TABLE lookup(code TEXT PRIMARY KEY, label TEXT) WITHOUT ROWID;")
    con.executemany("INSERT INTO customers VALUES (?, ?, ?)",
                    [(i, f"name {i}", f"138{i:08d}") for i in range(1, 101)])
    con.executemany("INSERT INTO lookup VALUES (?, ?)", [("a", "A"), ("b", "B")])
    con.commit()
    return con


def two_snapshots(tmp_path: Path) -> tuple:
    con = make_store(tmp_path / "s.db")
    one = snapshot(tmp_path / "s.db", tmp_path / "bk", clock=lambda: T0, run_id="r1",
                   sheets=[SheetCopy("cust", "Sheet1", ["name"], [["a"], ["b"]], {})])
    con.execute("UPDATE customers SET phone = 'x' WHERE id <= 3")
    con.execute("DELETE FROM customers WHERE id > 95")
    con.executemany("INSERT INTO customers(name) VALUES (?)", [("new1",), ("new2",)])
    con.execute("UPDATE lookup SET label = 'AA' WHERE code = 'a'")
    con.commit()
    two = snapshot(tmp_path / "s.db", tmp_path / "bk", clock=lambda: T0 + timedelta(hours=1),
                   sheets=[SheetCopy("cust", "Sheet1", ["name"], [["a"], ["B"], ["c"]], {})])
    con.close()
    return one, two


def test_list_show_label(tmp_path: Path) -> None:
    one, two = two_snapshots(tmp_path)
    assert [m.id for m in list_snapshots(tmp_path / "bk")] == [one.id, two.id]
    assert one.id.startswith("20261123T100000Z-") and one.created == "2026-11-23T10:00:00Z"
    assert show(tmp_path / "bk", one.id) == one
    assert label(tmp_path / "bk", one.id, "before import").label == "before import"
    assert show(tmp_path / "bk", one.id).label == "before import"
    assert unlabel(tmp_path / "bk", one.id).label is None
    with pytest.raises(BackupError, match="not a snapshot id"):
        show(tmp_path / "bk", "../../etc/passwd")
    with pytest.raises(BackupError, match="no snapshot"):
        show(tmp_path / "bk", "20200101T000000Z-00000000")
    assert list_snapshots(tmp_path / "nothing-here") == []


def test_verify_good_backup(tmp_path: Path) -> None:
    one, two = two_snapshots(tmp_path)
    report = verify(tmp_path / "bk")
    assert report.ok and report.exit_code == 0
    assert report.snapshots == [one.id, two.id]
    assert report.objects_checked == len({r.sha256 for m in (one, two) for r in m.objects.values()})
    assert verify(tmp_path / "bk", one.id).snapshots == [one.id]


def test_bit_flip_is_named_with_the_snapshots_using_it(tmp_path: Path) -> None:
    one, two = two_snapshots(tmp_path)
    shared = one.objects["store/schema"].sha256
    assert two.objects["store/schema"].sha256 == shared
    target = one.objects["store/table/customers"].sha256
    path = Repository(tmp_path / "bk").object_path(target)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    report = verify(tmp_path / "bk")
    assert not report.ok and report.exit_code == 1
    assert [(b.name, b.snapshots) for b in report.broken] == [(target, [one.id])]
    assert target in "\n".join(report.lines())
    assert set(report.store_problems) == {one.id}  # two does not need the damaged object
    with pytest.raises(BackupCorrupt) as err:
        restore_store(tmp_path / "bk", one.id, tmp_path / "r.db")
    assert err.value.name == target and not (tmp_path / "r.db").exists()


def test_missing_object_is_named(tmp_path: Path) -> None:
    one, two = two_snapshots(tmp_path)
    shared = one.objects["store/schema"].sha256
    Repository(tmp_path / "bk").object_path(shared).unlink()
    report = verify(tmp_path / "bk")
    assert [(b.name, b.snapshots) for b in report.broken] == [(shared, [one.id, two.id])]
    assert "missing" in report.broken[0].problem
    assert set(report.store_problems) == {one.id, two.id}


def test_diff_counts_records_per_table_and_sheet(tmp_path: Path) -> None:
    one, two = two_snapshots(tmp_path)
    d = diff(tmp_path / "bk", one.id, two.id)
    # customers: ids 96-100 removed, two inserted get rowids 96 and 97 (rowid reuse after
    # deleting the top rows), so 96/97 count as changed, 98-100 removed; 3 phones changed.
    assert d["customers"] == {"added": 0, "removed": 3, "changed": 5}
    assert d["lookup"] == {"added": 0, "removed": 0, "changed": 1}
    assert d["sheet:cust"] == {"added": 1, "removed": 0, "changed": 1}
    assert diff(tmp_path / "bk", one.id, one.id)["customers"] == {"added": 0, "removed": 0,
                                                                 "changed": 0}
    assert diff(tmp_path / "bk", two.id, one.id)["customers"] == {"added": 3, "removed": 0,
                                                                 "changed": 5}


def test_export_import_round_trip(tmp_path: Path) -> None:
    one, _ = two_snapshots(tmp_path)
    tar_path = export(tmp_path / "bk", one.id, tmp_path / "one.tar")
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
        sums = tar.extractfile("SHA256SUMS").read().decode()  # type: ignore[union-attr]
    assert names[0] == "SHA256SUMS" and f"snapshots/{one.id}.json" in names
    assert len(sums.splitlines()) == len(names) - 1
    imported = import_(tmp_path / "other", tar_path)
    assert imported == one
    assert verify(tmp_path / "other").ok
    restore_store(tmp_path / "other", one.id, tmp_path / "r.db")
    restore_store(tmp_path / "bk", one.id, tmp_path / "r0.db")
    dump = lambda p: list(sqlite3.connect(p).iterdump())  # noqa: E731
    assert dump(tmp_path / "r.db") == dump(tmp_path / "r0.db")
    assert import_(tmp_path / "other", tar_path) == one  # importing twice is harmless
    with pytest.raises(BackupError, match="already exists"):
        export(tmp_path / "bk", one.id, tar_path)


def _rewrite_tar(src: Path, dst: Path, change) -> None:
    with tarfile.open(src) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
    members = change(members)
    with tarfile.open(dst, "w") as out:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


def _flip_object(members: dict) -> dict:
    name = next(n for n in members if n.startswith("objects/"))
    data = bytearray(members[name])
    data[-1] ^= 0x80
    return {**members, name: bytes(data)}


def _flip_and_resum(members: dict) -> dict:
    members = _flip_object(members)
    members["SHA256SUMS"] = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n"
                                    for n, d in sorted(members.items()) if n != "SHA256SUMS").encode()
    return members


@pytest.mark.parametrize("change, message", [
    (_flip_object, "does not match SHA256SUMS"),
    (_flip_and_resum, "object"),
    (lambda m: {**m, "../evil": b"x"}, "unexpected member"),
    (lambda m: {k: v for k, v in m.items() if k != "SHA256SUMS"}, "no SHA256SUMS"),
])
def test_tampered_export_is_refused(tmp_path: Path, change, message: str) -> None:
    one, _ = two_snapshots(tmp_path)
    export(tmp_path / "bk", one.id, tmp_path / "one.tar")
    _rewrite_tar(tmp_path / "one.tar", tmp_path / "bad.tar", change)
    with pytest.raises(BackupCorrupt, match=message):
        import_(tmp_path / "other", tmp_path / "bad.tar")
    assert list_snapshots(tmp_path / "other") == []
    assert not (tmp_path / "other" / "objects").exists()


def test_snapshot_of_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="does not exist"):
        snapshot(tmp_path / "nope.db", tmp_path / "bk")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="cannot copy the store"):
        snapshot(tmp_path / "junk.db", tmp_path / "bk")
    assert list_snapshots(tmp_path / "bk") == []
