"""Encrypted backups: keys, sealed objects that leak nothing, round trips, wrong keys, tampering."""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from sheetsync.backup import (BackupCorrupt, BackupKeyError, SheetCopy, diff, export,
                              generate_key, import_, load_key, restore_sheet, restore_store,
                              snapshot, verify)
from sheetsync.backup.crypto import decode_key
from sheetsync.backup.objects import Repository
from sheetsync.errors import SheetsyncError, UsageError

SECRET = "Zhang-San-private-phone-13800138000"


def make_store(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, phone TEXT)")
    con.executemany("INSERT INTO customers VALUES (?, ?, ?)",
                    [(i, f"{SECRET} {i}", "13800138000") for i in range(1, 51)])
    con.execute("CREATE TABLE lookup(code TEXT)")
    con.execute("INSERT INTO lookup VALUES ('a')")
    con.commit()
    return con


def sheet() -> SheetCopy:
    return SheetCopy("cust", "Sheet1", ["name"], [[SECRET]], {"A2": "note"})


def test_keys_load_from_env_or_file(tmp_path: Path) -> None:
    text = generate_key()
    raw = decode_key(text)
    assert len(raw) == 32 and generate_key() != text
    assert load_key({"SHEETSYNC_BACKUP_KEY": text}) == raw
    (tmp_path / "key").write_text(text + "\n")
    assert load_key({}, key_file=tmp_path / "key") == raw
    assert load_key({"SHEETSYNC_BACKUP_KEY_FILE": str(tmp_path / "key")}) == raw
    assert load_key({}) is None
    with pytest.raises(UsageError) as err:
        load_key({"SHEETSYNC_BACKUP_KEY": "too-short"})
    assert err.value.where == "SHEETSYNC_BACKUP_KEY" and "sheetsync snapshots keygen" in err.value.hint
    with pytest.raises(UsageError, match="cannot read"):
        load_key({}, key_file=tmp_path / "missing")
    with pytest.raises(UsageError, match="32 raw bytes"):
        snapshot(tmp_path / "s.db", tmp_path / "bk", key=text.encode())


def test_encrypted_round_trip_leaks_no_content(tmp_path: Path) -> None:
    make_store(tmp_path / "s.db").close()
    key = decode_key(generate_key())
    snap = snapshot(tmp_path / "s.db", tmp_path / "bk", sheets=[sheet()], key=key)
    assert snap.encrypted and snap.key_id
    for f in (tmp_path / "bk" / "objects").rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes()
    plain = Repository(tmp_path / "plain")
    plain_snap = snapshot(tmp_path / "s.db", tmp_path / "plain", sheets=[sheet()])
    assert not set(r.sha256 for r in snap.objects.values()) & \
        set(r.sha256 for r in plain_snap.objects.values())  # names do not reveal plaintext
    assert plain.get(plain_snap.objects["sheet/cust"].sha256) == \
        Repository(tmp_path / "bk", key).get(snap.objects["sheet/cust"].sha256)

    restore_store(tmp_path / "bk", snap.id, tmp_path / "r.db", key=key)
    with sqlite3.connect(tmp_path / "r.db") as r, sqlite3.connect(tmp_path / "s.db") as s:
        assert list(r.iterdump()) == list(s.iterdump())
    assert restore_sheet(tmp_path / "bk", snap.id, "cust", key=key) == sheet()
    assert verify(tmp_path / "bk", key=key).ok
    again = snapshot(tmp_path / "s.db", tmp_path / "bk", sheets=[sheet()], key=key)
    assert again.objects == snap.objects  # still incremental under encryption
    assert all(v == {"added": 0, "removed": 0, "changed": 0}
               for v in diff(tmp_path / "bk", snap.id, again.id, key=key).values())


def test_wrong_or_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    make_store(tmp_path / "s.db").close()
    key, other = decode_key(generate_key()), decode_key(generate_key())
    snap = snapshot(tmp_path / "s.db", tmp_path / "bk", sheets=[sheet()], key=key)
    for call in (lambda k: restore_store(tmp_path / "bk", snap.id, tmp_path / "r.db", key=k),
                 lambda k: restore_sheet(tmp_path / "bk", snap.id, "cust", key=k),
                 lambda k: verify(tmp_path / "bk", snap.id, key=k)):
        with pytest.raises(BackupKeyError) as err:
            call(other)
        assert "different key" in err.value.message and err.value.hint
        assert isinstance(err.value, SheetsyncError)
        with pytest.raises(BackupKeyError, match="no backup key"):
            call(None)
    assert not (tmp_path / "r.db").exists()
    report = verify(tmp_path / "bk", key=other)  # --all: reported as not checked, not "ok"
    assert not report.ok and report.exit_code == 2 and snap.id in report.skipped


def test_tampered_or_swapped_encrypted_objects_are_named(tmp_path: Path) -> None:
    make_store(tmp_path / "s.db").close()
    key = decode_key(generate_key())
    snap = snapshot(tmp_path / "s.db", tmp_path / "bk", sheets=[sheet()], key=key)
    repo = Repository(tmp_path / "bk", key)
    flipped = snap.objects["store/table/customers"].sha256
    path = repo.object_path(flipped)
    raw = bytearray(path.read_bytes())
    raw[40] ^= 0x04
    path.write_bytes(bytes(raw))
    a, b = snap.objects["sheet/cust"].sha256, snap.objects["store/table/lookup"].sha256
    pa, pb = repo.object_path(a), repo.object_path(b)
    da, db = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(db)  # a swapped file fails: the name is the AES-GCM associated data
    pb.write_bytes(da)
    report = verify(tmp_path / "bk", key=key)
    assert sorted(x.name for x in report.broken) == sorted([flipped, a, b])
    # the stored bytes' checksum (format 2) covers the name too: caught before decrypting
    assert all("checksum" in x.problem for x in report.broken)
    with pytest.raises(BackupCorrupt):
        restore_sheet(tmp_path / "bk", snap.id, "cust", key=key)


def test_encrypted_export_import(tmp_path: Path) -> None:
    make_store(tmp_path / "s.db").close()
    key = decode_key(generate_key())
    snap = snapshot(tmp_path / "s.db", tmp_path / "bk", sheets=[sheet()], key=key)
    tar_path = export(tmp_path / "bk", snap.id, tmp_path / "x.tar")
    assert SECRET.encode() not in tar_path.read_bytes()
    sums = hashlib.sha256(tar_path.read_bytes()).hexdigest()
    assert import_(tmp_path / "offsite", tar_path) == snap  # checksums only, no key needed
    assert import_(tmp_path / "checked", tar_path, key=key) == snap  # and every object opened
    with pytest.raises(BackupKeyError):
        import_(tmp_path / "wrong", tar_path, key=decode_key(generate_key()))
    assert restore_sheet(tmp_path / "offsite", snap.id, "cust", key=key) == sheet()
    assert hashlib.sha256(tar_path.read_bytes()).hexdigest() == sums
