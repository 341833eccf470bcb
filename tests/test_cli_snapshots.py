"""The snapshots and archive commands, through an argparse parser built the way cli.py builds it:
list/show/diff/verify/label/export/import/forget/prune, restore beside and --replace, archive."""
from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import openpyxl
import pytest

from sheetsync.backup import generate_key
from sheetsync.backup.runner import snapshot_after_run
from sheetsync.cli.snapshots import add_snapshot_commands
from sheetsync.connectors.xlsx import XlsxConnector
from sheetsync.engine import store_path, sync_once
from sheetsync.errors import LayoutError, SheetsyncError
from sheetsync.layout_load import load_layout
from sheetsync.store import Store

LAYOUT = """\
table: customers
source: {kind: xlsx, path: book.xlsx, sheet: People}
key: id
columns:
  id: {header: ID}
  name: {header: Name}
  status: {header: Status}
archive:
  when: [{field: status, equals: closed}]
"""


def cli(capsys, *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="sheetsync")
    add_snapshot_commands(parser.add_subparsers(metavar="COMMAND"))
    args = parser.parse_args(list(argv))
    try:
        code = args.func(args)
    except LayoutError as exc:
        print(exc)
        code = exc.exit_code
    except SheetsyncError as exc:
        print(f"error: {exc}")
        code = exc.exit_code
    return code, capsys.readouterr().out


def edit(tmp_path: Path, cell: str, value: str) -> None:
    book = openpyxl.load_workbook(tmp_path / "book.xlsx")
    book["People"][cell] = value
    book.save(tmp_path / "book.xlsx")


@pytest.fixture
def world(tmp_path: Path, monkeypatch):
    """Two synced versions of one sheet, each snapshotted: ids (first, second)."""
    monkeypatch.delenv("SHEETSYNC_BACKUP_DIR", raising=False)
    monkeypatch.delenv("SHEETSYNC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    layouts = tmp_path / "layouts"
    layouts.mkdir()
    book = openpyxl.Workbook()
    book.active.title = "People"
    for row in (["ID", "Name", "Status"], ["C1", "Ann", "open"], ["C2", "Bob", "closed"]):
        book.active.append(row)
    book.save(layouts / "book.xlsx")
    (layouts / "people.yaml").write_text(LAYOUT, encoding="utf-8")
    loaded = load_layout(layouts / "people.yaml")
    ids = []
    for hour, change in ((1, None), (2, ("B2", "Annie"))):
        if change:
            edit(layouts, *change)
        monkeypatch.setenv("SHEETSYNC_BACKUP_DIR", str(tmp_path / "sync-backups"))  # the sync's own
        res = sync_once(loaded)
        monkeypatch.delenv("SHEETSYNC_BACKUP_DIR")
        data = XlsxConnector(layouts / "book.xlsx", sheet="People").read()
        clock = lambda h=hour: datetime(2026, 3, 1, h, tzinfo=timezone.utc)  # noqa: E731
        ids.append(snapshot_after_run(loaded, store_path(loaded), data, res.run_id, True, clock).id)
    return loaded, ids


def test_list_show_diff_label(world, capsys) -> None:
    loaded, (first, second) = world
    code, out = cli(capsys, "snapshots", "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == [first, second] and rows[0]["layouts"] == ["people"]
    code, out = cli(capsys, "snapshots", "show", first)
    assert code == 0 and "sheet/people" in out and "store/table/customers" in out
    code, out = cli(capsys, "snapshots", "diff", first, second, "--json")
    changes = json.loads(out)
    assert changes["customers"] == {"added": 0, "removed": 0, "changed": 1}
    assert changes["sheet:people"]["changed"] == 1
    code, out = cli(capsys, "snapshots", "diff", first, second)
    assert "customers: +0 added, -0 removed, ~1 changed" in out
    assert cli(capsys, "snapshots", "label", first, "before cleanup")[0] == 0
    code, out = cli(capsys, "snapshots", "list")
    assert "[before cleanup]" in out


def test_verify_names_a_bit_flipped_object(world, capsys) -> None:
    loaded, (first, second) = world
    code, out = cli(capsys, "snapshots", "verify", "--all")
    assert code == 0 and out.strip().endswith("ok")
    manifest = json.loads(cli(capsys, "snapshots", "show", second, "--json")[1])
    sha = manifest["objects"]["sheet/people"]["sha256"]
    obj = loaded.path.parent / "backups" / "objects" / sha[:2] / sha[2:]
    raw = bytearray(obj.read_bytes())
    raw[-3] ^= 0x01
    obj.write_bytes(bytes(raw))
    code, out = cli(capsys, "snapshots", "verify")
    assert code == 1 and f"BROKEN object {sha}" in out and second in out
    code, out = cli(capsys, "snapshots", "verify", first)
    assert code == 0


def test_restore_beside_the_live_workbook(world, capsys) -> None:
    loaded, (first, second) = world
    code, out = cli(capsys, "snapshots", "restore", first)
    target = loaded.path.parent / f"book.restored-{first}.xlsx"
    assert code == 0 and str(target) in out
    ws = openpyxl.load_workbook(target)["People"]
    assert [list(r) for r in ws.iter_rows(values_only=True)] == [
        ["ID", "Name", "Status"], ["C1", "Ann", "open"], ["C2", "Bob", "closed"]]
    live = openpyxl.load_workbook(loaded.path.parent / "book.xlsx")["People"]
    assert live["B2"].value == "Annie"  # the live sheet is untouched
    assert cli(capsys, "snapshots", "restore", first)[0] == 2  # never overwrites


def test_restore_replace_is_audited_and_pushed_by_the_next_sync(world, capsys) -> None:
    loaded, (first, second) = world
    edit(loaded.path.parent, "A4", "C3")  # a record added after the snapshot
    sync_once(loaded)
    code, out = cli(capsys, "snapshots", "restore", first, "--replace")
    assert code == 0 and "1 record(s) changed, 1 deleted" in out
    with Store(store_path(loaded)) as store:
        recs = store.records("customers")
        assert recs["C1"]["name"] == "Ann" and recs["C3"]["_deleted"] == 1
        last = store.history("customers", "C1")[-1]
        assert (last["action"], last["old"], last["new"]) == ("restore", "Annie", "Ann")
        assert last["run_id"] == f"restore-{first}"
    sync_once(loaded)
    live = openpyxl.load_workbook(loaded.path.parent / "book.xlsx")["People"]
    assert live["B2"].value == "Ann"


def test_encrypted_round_trip_export_import(world, capsys, tmp_path, monkeypatch) -> None:
    loaded, _ = world
    monkeypatch.setenv("SHEETSYNC_BACKUP_KEY", generate_key())
    layout_file = loaded.path
    layout_file.write_text(LAYOUT + "backup: {encrypt: true, dir: ../enc}\n", encoding="utf-8")
    enc = load_layout(layout_file)
    res = sync_once(enc)
    snap = snapshot_after_run(enc, store_path(enc), None, res.run_id, True)
    assert snap.encrypted
    assert cli(capsys, "snapshots", "verify", snap.id)[0] == 0
    code, out = cli(capsys, "snapshots", "export", snap.id, str(tmp_path / "off.tar"))
    assert code == 0 and (tmp_path / "off.tar").exists()
    code, out = cli(capsys, "snapshots", "import", str(tmp_path / "off.tar"),
                    "--backup-dir", str(tmp_path / "other"))
    assert code == 0 and snap.id in out
    assert cli(capsys, "snapshots", "verify", "--backup-dir", str(tmp_path / "other"))[0] == 0
    monkeypatch.setenv("SHEETSYNC_BACKUP_KEY", generate_key())
    code, out = cli(capsys, "snapshots", "verify", snap.id)
    assert code == 2 and "different key" in out


def test_forget_and_prune(world, capsys) -> None:
    loaded, (first, second) = world
    loaded.path.write_text(LAYOUT + "retention: {keep_last: 1, hourly: 0, daily: 0, weekly: 0, "
                           "monthly: 0}\n", encoding="utf-8")
    code, out = cli(capsys, "snapshots", "forget", "--layout", "people")
    assert code == 0 and first in out and second not in out
    code, out = cli(capsys, "snapshots", "prune", "--grace-minutes", "0")
    assert code == 0 and int(out.split()[1]) >= 1  # "deleted N object(s)": the first's sheet
    code, out = cli(capsys, "snapshots", "list", "--json")
    assert [r["id"] for r in json.loads(out)] == [second]
    assert cli(capsys, "snapshots", "verify")[0] == 0


def test_archive_command_dry_run_then_real(world, capsys) -> None:
    loaded, _ = world
    code, out = cli(capsys, "archive", "people", "--dry-run")
    assert code == 0 and "would move 1 record(s)" in out and "C2 (row 3)" in out
    assert openpyxl.load_workbook(loaded.path.parent / "book.xlsx")["People"].max_row == 3
    code, out = cli(capsys, "archive", "people", "--json")
    res = json.loads(out)
    assert code == 0 and res["keys"] == ["C2"] and res["rows_removed"] == [3]
    book = openpyxl.load_workbook(loaded.path.parent / "book.xlsx")
    assert book["People"].max_row == 2 and book["archive"]["A2"].value == "C2"


def test_snapshots_alone_prints_help_and_no_backup_dir_is_a_usage_error(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHEETSYNC_BACKUP_DIR", raising=False)
    code, out = cli(capsys, "snapshots")
    assert code == 2 and "verify" in out and "restore" in out
    code, out = cli(capsys, "snapshots", "list")
    assert code == 2 and "--backup-dir" in out
