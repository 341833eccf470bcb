"""The engine's backup step: snapshot after a run that changed something, encrypted when the
layout says so, retention applied per layout, and the backup folder resolved as documented."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest

from sheetsync.backup import (generate_key, list_snapshots, load_key, restore_sheet, restore_store,
                              verify)
from sheetsync.backup.runner import backup_dir_for, sheet_copy, snapshot_after_run
from sheetsync.connectors.xlsx import XlsxConnector
from sheetsync.engine import store_path, sync_once
from sheetsync.errors import UsageError
from sheetsync.layout_load import load_layout
from sheetsync.store import Store

LAYOUT = """\
table: customers
source: {kind: xlsx, path: book.xlsx}
key: id
columns:
  id: {header: ID}
  email: {header: Email, type: email}
"""


def setup(tmp_path: Path, extra: str = ""):
    book = openpyxl.Workbook()
    book.active.append(["ID", "Email"])
    book.active.append(["C1", " A@Example.cn "])
    book.active.append(["C2", "bob@@acme"])
    book.save(tmp_path / "book.xlsx")
    (tmp_path / "c.yaml").write_text(LAYOUT + extra, encoding="utf-8")
    loaded = load_layout(tmp_path / "c.yaml")
    result = sync_once(loaded)
    return loaded, result, XlsxConnector(tmp_path / "book.xlsx").read()


def clock_at(hours: int):
    return lambda: datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(hours=hours)


def test_snapshot_after_a_run_holds_store_and_sheet(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SHEETSYNC_BACKUP_DIR", raising=False)
    loaded, result, data = setup(tmp_path)
    db = store_path(loaded)
    m = snapshot_after_run(loaded, db, data, result.run_id, changed=True)
    assert m is not None and m.run_id == result.run_id and m.layouts == ["c"]
    folder = tmp_path / "backups"
    snaps = list_snapshots(folder)  # the sync itself took the first one (engine step 10)
    assert backup_dir_for(loaded, db) == folder and m.id in {s.id for s in snaps}
    assert len(snaps) == 2 and all(s.run_id == result.run_id for s in snaps)
    sheet = restore_sheet(folder, m.id, "c")
    assert sheet.header == ["ID", "Email"] and sheet.rows == [["C1", "a@example.cn"], ["C2", "bob@@acme"]]
    assert "B3" in sheet.marks and sheet.marks["B3"].startswith("sheetsync: ")
    restore_store(folder, m.id, tmp_path / "copy.db")
    with Store(tmp_path / "copy.db") as copy:
        assert copy.records("customers")["C1"]["email"] == "a@example.cn"
    assert verify(folder).ok
    assert snapshot_after_run(loaded, db, data, "r2", changed=False) is None


def test_disabled_and_backup_dir_choices(tmp_path: Path, monkeypatch) -> None:
    loaded, result, data = setup(tmp_path, "backup: {enabled: false}\n")
    assert snapshot_after_run(loaded, store_path(loaded), data, result.run_id, True) is None
    assert not (tmp_path / "backups").exists()
    monkeypatch.setenv("SHEETSYNC_BACKUP_DIR", str(tmp_path / "elsewhere"))
    assert backup_dir_for(loaded, tmp_path / "x" / "s.db") == tmp_path / "elsewhere"
    (tmp_path / "d.yaml").write_text(LAYOUT + "backup: {dir: ../bk}\n", encoding="utf-8")
    assert backup_dir_for(load_layout(tmp_path / "d.yaml"), tmp_path / "s.db") == \
        tmp_path.resolve() / "../bk"


def test_encrypted_snapshot_needs_the_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SHEETSYNC_BACKUP_KEY", raising=False)
    monkeypatch.delenv("SHEETSYNC_BACKUP_KEY_FILE", raising=False)
    loaded, result, data = setup(tmp_path, "backup: {encrypt: true, dir: bk}\n")
    with pytest.raises(UsageError) as info:
        snapshot_after_run(loaded, store_path(loaded), data, result.run_id, True)
    assert "backup.encrypt" in str(info.value) and "SHEETSYNC_BACKUP_KEY" in info.value.hint
    monkeypatch.setenv("SHEETSYNC_BACKUP_KEY", generate_key())
    m = snapshot_after_run(loaded, store_path(loaded), data, result.run_id, True)
    assert m.encrypted and m.key_id
    raw = b"".join(p.read_bytes() for p in (tmp_path / "bk" / "objects").rglob("*") if p.is_file())
    assert b"a@example.cn" not in raw
    assert restore_sheet(tmp_path / "bk", m.id, "c", key=load_key()).rows[0] == ["C1", "a@example.cn"]


def test_key_file_from_the_layout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SHEETSYNC_BACKUP_KEY", raising=False)
    (tmp_path / "k.key").write_text(generate_key(), encoding="ascii")
    loaded, result, data = setup(tmp_path, "backup: {encrypt: true, key_file: k.key}\n")
    m = snapshot_after_run(loaded, store_path(loaded), data, result.run_id, True)
    assert m.encrypted
    assert verify(tmp_path / "backups", m.id, key=load_key(key_file=tmp_path / "k.key")).ok


def test_retention_is_applied_per_layout(tmp_path: Path, monkeypatch) -> None:
    policy = "retention: {keep_last: 2, hourly: 0, daily: 0, weekly: 0, monthly: 0}\n"
    monkeypatch.setenv("SHEETSYNC_BACKUP_DIR", str(tmp_path / "sync-backups"))  # the sync's own snapshot
    loaded, result, data = setup(tmp_path, policy)
    monkeypatch.delenv("SHEETSYNC_BACKUP_DIR")
    db = store_path(loaded)
    folder = backup_dir_for(loaded, db)
    from sheetsync.backup import snapshot
    other = snapshot(db, folder, layouts=["other"], clock=clock_at(0))
    ids = [snapshot_after_run(loaded, db, data, f"r{h}", True, clock=clock_at(h)).id
           for h in range(1, 5)]
    kept = {m.id for m in list_snapshots(folder)}
    assert kept == {other.id, *ids[-2:]}


def test_sheet_copy_is_canonical_text() -> None:
    from sheetsync.model import SheetData, SheetRow
    data = SheetData("S", ("a", "b"), (SheetRow(2, (5000.0, None)),), "fp", marks={(2, 1): "sheetsync: x"})
    copy = sheet_copy("lay", data)
    assert copy.rows == [["5000", ""]] and copy.marks == {"A2": "sheetsync: x"}


def test_snapshot_while_the_engine_store_is_open(tmp_path: Path) -> None:
    loaded, result, data = setup(tmp_path)
    db = store_path(loaded)
    with Store(db) as store:  # WAL, a committed write not yet checkpointed
        with store.transaction():
            store.write_record("customers", "C9", {"email": "z@example.cn"}, action="insert", run_id="r9")
        m = snapshot_after_run(loaded, db, data, "r9", True)
    restore_store(tmp_path / "backups", m.id, tmp_path / "copy.db")
    with Store(tmp_path / "copy.db") as copy:
        assert copy.records("customers")["C9"]["email"] == "z@example.cn"
