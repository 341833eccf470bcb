"""Faults: Sheets API errors (429 + Retry-After, 500, 503 HTML, timeouts, resets), a full disk under
the store or the backup folder, a read-only workbook folder, a workbook open in Excel/LibreOffice.

Each run ends ok, partial (exit 3, outbox kept) or failed with a clear message naming the file;
never a half-written workbook (bytes unchanged on refusal) or store (integrity ok, no open runs).
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import REPO, TAB, SheetFixture, customer_rows, sheetsync_cmd, store_state
from sheetsync.connectors.gsheets import GSheetsConnector
from sheetsync.engine import sync_once
from sheetsync.layout_load import load_layout
from sheetsync.store import Store

EDITS = [(6, 2, "Renamed Person"), (9, 3, "13912345678")]


def assert_store_sound(db: Path) -> dict:
    state = store_state(db)
    assert state["integrity"] == "ok" and state["keys_unique"]
    assert set(state["inserts"].values()) == {1}
    with Store(db) as store:
        open_runs = store.db.execute("SELECT count(*) FROM _sheetsync_runs WHERE finished IS NULL").fetchone()[0]
    assert open_runs == 0, "a run row was left unfinished"
    return state


def edited(sheet: SheetFixture) -> SheetFixture:
    sync_once(sheet.layout)
    for e in EDITS:
        sheet.edit(*e)
    return sheet


def finish_and_check(sheet: SheetFixture) -> dict:
    """A rerun with the fault gone finishes the work: edits in the store, the outbox empty."""
    res = sync_once(sheet.layout)
    assert res.outcome in ("ok", "problems"), res.message
    state = assert_store_sound(sheet.db)
    assert state["outbox"] == []
    assert state["records"]["C005"]["name"] == "Renamed Person"
    assert state["records"]["C008"]["phone"] == "+86 139 1234 5678"
    return state


def json_run(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the Sheets API misbehaving -----------------------------------------------------------------

def gs_run(sheet: SheetFixture, **kw):
    conn = GSheetsConnector(spreadsheet_id=sheet.sid, sheet=TAB, endpoint=sheet.emu.url, **kw)
    return sync_once(load_layout(sheet.layout), connector=conn)


def test_429_waits_at_least_retry_after_and_finishes(tmp_path, emulator):
    sheet = edited(SheetFixture("emulator", tmp_path, customer_rows(), emu=emulator))
    waits: list[float] = []
    emulator.inject("429", count=2, retry_after="7")
    res = gs_run(sheet, sleep=waits.append)
    assert res.outcome in ("ok", "problems") and len(waits) == 2 and min(waits) >= 7
    finish_and_check(sheet)
    assert emulator.cell(sheet.sid, TAB, 9, 3) == "+86 139 1234 5678"


@pytest.mark.parametrize("kind", ["500", "503"])
def test_server_errors_are_retried_or_end_partial_with_the_outbox_kept(tmp_path, emulator, kind):
    sheet = edited(SheetFixture("emulator", tmp_path, customer_rows(), emu=emulator))
    emulator.inject(kind, count=2)
    assert gs_run(sheet, sleep=lambda s: None).outcome in ("ok", "problems")
    sheet.edit(10, 3, "13700001111")
    emulator.inject(kind, count=100, match="batchUpdate")
    run = gs_run(sheet, sleep=lambda s: None, max_tries=2)
    assert run.outcome == "partial" and run.message  # exit 3 from the CLI (lock-file test)
    assert "<html" not in run.message.lower() and "<!doctype" not in run.message.lower()
    assert store_state(sheet.db)["outbox"] != []  # kept for the next run
    assert emulator.cell(sheet.sid, TAB, 10, 3) == "13700001111"
    emulator.faults.clear()
    finish_and_check(sheet)
    assert emulator.cell(sheet.sid, TAB, 10, 3) == "+86 137 0000 1111"


def test_timeouts_end_the_run_cleanly_and_the_next_run_finishes(tmp_path, emulator):
    sheet = edited(SheetFixture("emulator", tmp_path, customer_rows(), emu=emulator))
    emulator.inject("delay", count=3, seconds=0.6)
    res = gs_run(sheet, timeout=(0.2, 0.2), sleep=lambda s: None, max_tries=2)
    assert res.outcome in ("ok", "problems", "partial")
    emulator.faults.clear()
    finish_and_check(sheet)


@pytest.mark.parametrize("land", [True, False])
def test_connection_reset_on_the_write_never_duplicates(tmp_path, emulator, land):
    sheet = edited(SheetFixture("emulator", tmp_path, customer_rows(), emu=emulator))
    emulator.inject("reset", count=2, match="batchUpdate", land=land)
    res = gs_run(sheet, sleep=lambda s: None)
    assert res.outcome in ("ok", "problems", "partial")
    state = finish_and_check(sheet)
    assert len(state["records"]) == 30
    assert emulator.cell(sheet.sid, TAB, 9, 3) == "+86 139 1234 5678"


# -- disks and files ----------------------------------------------------------------------------

@contextmanager
def tmpfs(folder: Path, size: str = "1m"):
    folder.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill_up(folder: Path) -> Path:
    """Write zeros until the filesystem is full; returns the filler file (delete it to free space)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_full_disk_under_the_store_fails_clearly_and_writes_nothing(tmp_path):
    with tmpfs(tmp_path / "disk") as disk:
        sheet = edited(SheetFixture("xlsx", disk, customer_rows()))
        before = sheet.path.read_bytes()
        filler = fill_up(disk)
        proc = sheetsync_cmd("sync", str(sheet.layout))
        assert proc.returncode == 4 and "Traceback" not in proc.stderr
        assert str(sheet.db) in proc.stderr
        assert sheet.path.read_bytes() == before
        filler.unlink()
        finish_and_check(sheet)


def test_store_hitting_a_file_size_limit_mid_commit_fails_clearly(tmp_path):
    sheet = edited(SheetFixture("csv", tmp_path, customer_rows(), extra={"backup": {"enabled": False}}))
    rows = sheet.path.read_text(encoding="utf-8").splitlines()
    bulk = [f"C{i:03d},Bulk person {i} with a long name,138 {i:04d} 1234,b{i}@example.com"
            for i in range(100, 1000)]
    sheet.path.write_text("\n".join(rows + bulk) + "\n", encoding="utf-8")
    before = sheet.path.read_bytes()
    limit = sheet.db.stat().st_size + (Path(str(sheet.db) + "-wal").stat().st_size
                                       if Path(str(sheet.db) + "-wal").exists() else 0) + 32768

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    proc = subprocess.run([sys.executable, "-m", "sheetsync", "sync", str(sheet.layout)], preexec_fn=cap,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert sheet.path.read_bytes() == before
    state = assert_store_sound(sheet.db)
    assert "C100" not in state["records"] and state["outbox"] == []
    with Store(sheet.db) as store:
        assert store.runs("customers")[0]["outcome"] == "failed"
    assert proc.returncode == 4 and "Traceback" not in proc.stderr and str(sheet.db) in proc.stderr


def test_full_backup_disk_keeps_the_sync_but_fails_the_run_until_a_backup_is_taken(tmp_path):
    with tmpfs(tmp_path / "backups") as backups:
        sheet = edited(SheetFixture("xlsx", tmp_path / "work", customer_rows(),
                                    extra={"backup": {"dir": str(backups)}}))
        taken = len(list((backups / "snapshots").iterdir()))
        filler = fill_up(backups)
        proc = sheetsync_cmd("sync", str(sheet.layout), "--json")
        run = json_run(proc)
        assert proc.returncode == 4 and run["outcome"] == "failed"  # no backup: not "ok"
        assert "backup failed" in run["message"] and str(backups) in proc.stderr
        assert "free space" in proc.stderr and "integrity_check" not in proc.stderr
        left = [p for p in backups.rglob("*") if p.is_file() and (p.parent.name == "tmp" or ".tmp" in p.name)]
        assert left == [], "half-written backup file left"
        state = assert_store_sound(sheet.db)  # the data itself was synced
        assert state["records"]["C005"]["name"] == "Renamed Person" and state["outbox"] == []
        assert sheetsync_cmd("status", "--layouts-dir", str(sheet.folder)).returncode == 4
        filler.unlink()
        finish_and_check(sheet)  # nothing changed in the sheet, yet this run takes the backup
        assert len(list((backups / "snapshots").iterdir())) == taken + 1
        sheet.edit(7, 2, "Another edit")
        run = json_run(sheetsync_cmd("sync", str(sheet.layout), "--json"))
        assert "backup failed" not in run["message"]
        assert list((backups / "snapshots").iterdir())


@contextmanager
def read_only(folder: Path):
    """Remount `folder` read-only (a bind mount): even root cannot write in it."""
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_read_only_workbook_folder_refuses_clearly_and_keeps_the_outbox(tmp_path, kind):
    sheet = SheetFixture(kind, tmp_path / "book", customer_rows(), extra={"store": str(tmp_path / "s.db")})
    sheet.db = tmp_path / "s.db"
    edited(sheet)
    before = sheet.path.read_bytes()
    with read_only(tmp_path / "book"):
        proc = sheetsync_cmd("sync", str(sheet.layout))
        assert sheet.path.read_bytes() == before
        assert store_state(sheet.db)["outbox"] != []
    assert proc.returncode in (3, 4) and "Traceback" not in proc.stderr
    assert sheet.path.name in proc.stderr + proc.stdout
    finish_and_check(sheet)


@pytest.mark.parametrize("lock", ["~${}", ".~lock.{}#"])
def test_workbook_open_in_excel_or_libreoffice_ends_partial_untouched(tmp_path, lock):
    sheet = edited(SheetFixture("xlsx", tmp_path, customer_rows()))
    before = sheet.path.read_bytes()
    lock_file = tmp_path / lock.format(sheet.path.name)
    lock_file.write_text("someone,host,01.01.2026 10:00,file:///;")
    proc = sheetsync_cmd("sync", str(sheet.layout), "--json")
    run = json_run(proc)
    assert proc.returncode == 3 and run["outcome"] == "partial"
    assert lock_file.name in run["message"]
    assert sheet.path.read_bytes() == before
    assert assert_store_sound(sheet.db)["outbox"] != []
    lock_file.unlink()
    finish_and_check(sheet)
    import openpyxl
    assert openpyxl.load_workbook(sheet.path)[TAB].cell(row=9, column=3).value == "+86 139 1234 5678"


# -- a person breaking a row's identity ------------------------------------------------------------

def _identity_state(sheet: SheetFixture) -> dict:
    """Records, history (minus times and run ids), open problems and every stored key."""
    state = store_state(sheet.db)
    with Store(sheet.db) as store:
        state["all_keys"] = sorted(r[0] for r in store.db.execute('SELECT "_key" FROM "customers"'))
        state["base"] = sorted(r[0] for r in store.db.execute(
            "SELECT ident FROM _sheetsync_base WHERE layout = 'customers'"))
    return state


@pytest.mark.parametrize("kind", ["xlsx", "csv", "emulator"])
def test_a_key_typed_over_another_rows_key_holds_that_row_back_and_loses_nothing(tmp_path, emulator, kind):
    sheet = SheetFixture(kind, tmp_path, customer_rows(4), emu=emulator, sid=f"taken-{kind}")
    sync_once(sheet.layout)
    before = _identity_state(sheet)
    sheet.edit(2, 1, "C002")  # C001's row now says C002, the key of the row below
    res = sync_once(sheet.layout)
    assert (res.updated, res.deleted, res.inserted, res.held_back) == (0, 0, 0, 1)
    during = _identity_state(sheet)
    assert during["records"] == before["records"] and during["history"] == before["history"]
    assert during["all_keys"] == ["C001", "C002", "C003", "C004"]
    taken = [p for p in Store(sheet.db).problems("customers") if p["code"] == "key_taken"]
    assert [(p["ident"], p["row"], p["col"]) for p in taken] == [("C001", 2, 1)]
    from sheetsync import messages
    assert "key C002 already belongs to row 3" in messages.render("key_taken", taken[0]["params"])
    if kind != "csv":  # the note sits on the key cell the person typed
        assert "already belongs to row 3" in sheet.cells()[(2, 1)][2]
    else:  # CSV keeps no notes: the problem goes to the report beside it
        assert "already belongs to row 3" in (tmp_path / "customers.sheetsync.csv").read_text(encoding="utf-8-sig")
    sheet.edit(2, 1, "C001")  # the typo fixed
    sync_once(sheet.layout)
    sync_once(sheet.layout)
    after = _identity_state(sheet)
    assert after["records"] == before["records"] and after["history"] == before["history"]
    assert after["all_keys"] == before["all_keys"] and after["base"] == before["base"]
    assert after["problems"] == before["problems"] and after["marks"] == before["marks"]
    assert "already belongs" not in str(sheet.cells())


def test_a_clash_row_never_becomes_a_record_keyed_by_an_internal_ident(tmp_path):
    """A new row typed with a key another row holds is held back; once the other row is gone,
    it becomes that key's record: no `C002@row6` ever reaches the store."""
    sheet = SheetFixture("csv", tmp_path, customer_rows(4))
    sync_once(sheet.layout)
    for col, value in enumerate(["C002", "Copy of 2", "+86 138 0099 8099", "copy2@example.com"], 1):
        sheet.edit(6, col, value)
    res = sync_once(sheet.layout)
    assert res.held_back == 1 and res.inserted == 0
    sheet.edit(3, 1, "C009")  # the original C002 row renamed: the copy may now have C002
    sync_once(sheet.layout)
    sync_once(sheet.layout)
    state = _identity_state(sheet)
    assert all("@" not in k and not k.startswith("row:") for k in state["all_keys"] + state["base"])
    assert state["records"]["C002"]["name"] == "Copy of 2"


def test_a_layout_without_key_or_id_column_is_refused_before_rows_are_mixed_up(tmp_path):
    """Rows told apart only by position would swap data when a row is inserted: `check` and
    `sync` refuse such a layout, naming the file and the key to add, and nothing is written."""
    import yaml
    sheet = SheetFixture("xlsx", tmp_path, customer_rows(10))
    data = yaml.safe_load(sheet.layout.read_text(encoding="utf-8"))
    del data["key"]
    sheet.layout.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    before = sheet.path.read_bytes()
    check = sheetsync_cmd("check", str(sheet.layout))
    assert check.returncode == 2
    assert f"{sheet.layout}:1: key:" in check.stdout + check.stderr
    assert "id_column" in check.stdout + check.stderr
    synced = sheetsync_cmd("sync", str(sheet.layout))
    assert synced.returncode == 2 and "id_column" in synced.stderr
    assert not sheet.db.exists() and sheet.path.read_bytes() == before


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_a_key_emptied_by_mistake_holds_the_row_back_and_deletes_nothing(tmp_path, kind):
    sheet = SheetFixture(kind, tmp_path, customer_rows(4))
    sync_once(sheet.layout)
    before = _identity_state(sheet)
    sheet.edit(3, 1, None)  # C002's key cell cleared
    res = sync_once(sheet.layout)
    assert (res.updated, res.deleted, res.inserted, res.held_back) == (0, 0, 0, 1)
    with Store(sheet.db) as store:
        assert [(p["ident"], p["code"]) for p in store.problems("customers") if p["code"].startswith("key")] == [
            ("C002", "key_missing")]
        assert store.records("customers")["C002"]["_deleted"] == 0
    sheet.edit(3, 1, "C002")
    sync_once(sheet.layout)
    after = _identity_state(sheet)
    assert after["records"] == before["records"] and after["history"] == before["history"]
    assert after["base"] == before["base"] and after["problems"] == before["problems"]


def test_a_new_row_with_no_key_is_held_back_never_stored_as_row_n(tmp_path):
    from conftest import LAYOUT_COLUMNS
    columns = {**LAYOUT_COLUMNS, "id": {"header": "ID", "pattern": r"^C\d{3}$"}}  # the key not `required`
    sheet = SheetFixture("csv", tmp_path, customer_rows(2), extra={"columns": columns})
    sync_once(sheet.layout)
    for col, value in enumerate(["", "No Key Yet", "+86 138 0099 8099", "nokey@example.com"], 1):
        sheet.edit(4, col, value)
    res = sync_once(sheet.layout)
    assert res.held_back == 1 and res.inserted == 0
    assert _identity_state(sheet)["all_keys"] == ["C001", "C002"]
    sheet.edit(4, 1, "C003")
    sync_once(sheet.layout)
    state = _identity_state(sheet)
    assert state["all_keys"] == ["C001", "C002", "C003"] and state["records"]["C003"]["name"] == "No Key Yet"


# -- a workbook or CSV that is a symlink to a shared file -----------------------------------------

@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_a_symlinked_sheet_is_written_through_to_its_shared_file(tmp_path, kind):
    shared = SheetFixture(kind, tmp_path / "share", customer_rows())  # the real file, on a share
    shared.path.chmod(0o640)
    work = tmp_path / "work"
    work.mkdir()
    link = work / shared.path.name
    link.symlink_to(os.path.relpath(shared.path, work))
    report = shared.folder / "customers.sheetsync.csv"  # CSV's report sidecar, shared the same way
    report.write_text("old report\n", encoding="utf-8")
    report.chmod(0o664)
    (work / report.name).symlink_to(report)
    layout = work / "customers.yaml"
    layout.write_text(shared.layout.read_text(encoding="utf-8"), encoding="utf-8")
    proc = sheetsync_cmd("sync", str(layout))
    assert proc.returncode == 1, proc.stderr
    assert link.is_symlink() and link.resolve() == shared.path.resolve()
    assert shared.path.stat().st_mode & 0o777 == 0o640
    assert shared.cells()[(5, 3)][0] == "+86 138 0004 8004"  # the correction is in the shared file
    assert not list(work.glob(".*.tmp")) and not list(shared.folder.glob(".*.tmp"))
    if kind == "csv":
        assert (work / report.name).is_symlink() and report.stat().st_mode & 0o777 == 0o664
        assert "user7@@example" in report.read_text(encoding="utf-8-sig")
    shared.edit(6, 2, "Renamed on the share")  # a colleague edits the real file
    proc = sheetsync_cmd("sync", str(layout))
    assert proc.returncode == 1, proc.stderr
    assert store_state(work / "sheetsync.db")["records"]["C005"]["name"] == "Renamed on the share"
    assert link.is_symlink()
    if kind == "xlsx":  # Excel opened the shared file itself: its lock file is beside the target
        lock = shared.folder / f"~${shared.path.name}"
        lock.write_text("someone")
        shared.edit(9, 3, "13912345678")
        before = shared.path.read_bytes()
        proc = sheetsync_cmd("sync", str(layout))
        assert proc.returncode == 3 and lock.name in proc.stdout + proc.stderr
        assert shared.path.read_bytes() == before


# -- a sheet that lost most of its rows at once (a CSV replaced by its header line) ----------------

def big_csv(tmp_path: Path, n: int, extra: dict | None = None) -> SheetFixture:
    rows = [[f"C{i:05d}", f"Person {i}", f"+86 138 {i:04d} {8000 + i % 1000}", f"user{i}@example.com"]
            for i in range(1, n + 1)]
    columns = {"id": {"header": "ID", "required": True}, "name": {"header": "Name"},
               "phone": {"header": "Phone", "type": "phone"}, "email": {"header": "Email", "type": "email"}}
    return SheetFixture("csv", tmp_path, rows, extra={"columns": columns, **(extra or {})})


@pytest.fixture()
def hook():
    """A webhook receiver on loopback (test_alerts.Hook), stopped after the test: a thread left
    running would outlive the test."""
    from test_alerts import Hook
    receiver = Hook()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def test_a_csv_emptied_to_its_header_deletes_nothing_until_an_admin_confirms(tmp_path, hook):
    sheet = big_csv(tmp_path, 3000, {"language": "zh", "alerts": {"webhook": {"url": hook.url, "retries": 0}}})
    assert sheetsync_cmd("sync", str(sheet.layout)).returncode == 0
    before = store_state(sheet.db)
    sheet._write_csv([["ID", "Name", "Phone", "Email"]])  # someone saved the header line alone
    for _ in range(2):  # held every run, not only the first ("source unchanged" never hides it)
        proc = sheetsync_cmd("sync", str(sheet.layout), "--json")
        run = json_run(proc)
        assert proc.returncode == 1 and run["outcome"] == "problems", proc.stdout + proc.stderr
        assert run["deleted"] == 0 and run["deletes_held"] == 3000
        assert "3000 of 3000" in run["message"] and "--allow-mass-delete" in run["message"]
        after = store_state(sheet.db)
        assert after["problems"] == sorted([*before["problems"], ("", "", "mass_delete")])
        assert {k: after[k] for k in ("records", "history", "marks", "outbox")} == \
            {k: before[k] for k in ("records", "history", "marks", "outbox")}
    report = (tmp_path / "customers.sheetsync.csv").read_text(encoding="utf-8-sig")
    assert "本表 3000 行中有 3000 行已不在表中，超过 sheetsync 一次最多删除的 1500 行" in report
    alerts = [b for b in hook.bodies if b["kind"] == "mass_delete"]
    assert len(alerts) == 1 and alerts[0]["state"] == "firing" and "3000 of 3000" in alerts[0]["detail"]
    proc = sheetsync_cmd("sync", str(sheet.layout), "--allow-mass-delete", "--json")
    assert proc.returncode == 0 and json_run(proc)["deleted"] == 3000, proc.stdout + proc.stderr
    state = store_state(sheet.db)
    assert all(r["_deleted"] for r in state["records"].values()) and state["problems"] == []


@pytest.mark.parametrize("max_delete, gone, held", [(5, 6, True), (5, 5, False), ("20%", 7, True),
                                                    ("20%", 6, False), (None, 20, False), ("100%", 30, False)])
def test_max_delete_in_the_layout_sets_the_limit(tmp_path, max_delete, gone, held):
    sheet = big_csv(tmp_path, 30, {} if max_delete is None else {"max_delete": max_delete})
    sync_once(sheet.layout)
    rows = list(csv_rows(sheet.path))
    sheet._write_csv(rows[:len(rows) - gone])
    res = sync_once(sheet.layout)
    assert (res.deleted, res.deletes_held) == ((0, gone) if held else (gone, 0))
    assert (("", "", "mass_delete") in store_state(sheet.db)["problems"]) == held


def csv_rows(path: Path) -> list[list[str]]:
    import csv
    return list(csv.reader(path.read_text(encoding="utf-8").splitlines()))


# -- backups you can trust ----------------------------------------------------------------------

def manifests(backups: Path) -> list[dict]:
    """Every snapshot manifest in the folder, oldest first."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((backups / "snapshots").glob("*.json"))]


def object_file(backups: Path, name: str) -> Path:
    return backups / "objects" / name[:2] / name[2:]


def objects_of(manifest: dict) -> set[str]:
    return {ref["sha256"] for ref in manifest["objects"].values()}


def flip_middle_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_damaged_object_is_written_again_not_reused_by_the_next_snapshot(tmp_path):
    sheet = SheetFixture("xlsx", tmp_path, customer_rows())
    backups = tmp_path / "backups"
    assert sheetsync_cmd("sync", str(sheet.layout)).returncode == 1  # invalid emails: problems
    first = manifests(backups)[0]
    for name in objects_of(first):
        flip_middle_byte(object_file(backups, name))
    sheet.edit(6, 2, "Renamed Person")
    proc = sheetsync_cmd("sync", str(sheet.layout), "--json")
    assert json_run(proc)["outcome"] == "problems", proc.stderr
    # ids start with the second the snapshot was taken, so two in one second sort by their random
    # suffix: the new one is the one that is not the first
    second = next(m for m in manifests(backups) if m["id"] != first["id"])
    reused = objects_of(first) & objects_of(second)
    assert reused, "the second snapshot shares no object with the first: nothing was tested"
    assert "damaged" in proc.stderr and sorted(reused)[0] in proc.stderr  # said in the log
    check = sheetsync_cmd("snapshots", "verify", second["id"], "--backup-dir", str(backups))
    assert check.returncode == 0 and check.stdout.strip().endswith("ok"), check.stdout
    # the objects rewritten heal the first snapshot too; only those it alone needs stay broken
    check = sheetsync_cmd("snapshots", "verify", "--backup-dir", str(backups))
    broken = {line.split()[2].rstrip(":") for line in check.stdout.splitlines() if line.startswith("BROKEN object")}
    assert check.returncode == 1 and broken == objects_of(first) - objects_of(second)
    restored = tmp_path / "restored.db"
    from sheetsync.backup import restore_store
    restore_store(backups, second["id"], restored)
    assert store_state(restored)["records"]["C005"]["name"] == "Renamed Person"


def test_a_damaged_object_that_cannot_be_written_again_fails_the_run(tmp_path):
    sheet = SheetFixture("xlsx", tmp_path, customer_rows())
    backups = tmp_path / "backups"
    sheetsync_cmd("sync", str(sheet.layout))
    damaged = manifests(backups)[0]["objects"]["store/schema"]["sha256"]
    flip_middle_byte(object_file(backups, damaged))
    sheet.edit(6, 2, "Renamed Person")
    with read_only(backups / "objects"):
        proc = sheetsync_cmd("sync", str(sheet.layout), "--json")
    run = json_run(proc)
    assert proc.returncode == 4 and run["outcome"] == "failed"
    assert "backup failed" in run["message"] and damaged in run["message"]
    assert "could not be written again" in run["message"]
    assert len(manifests(backups)) == 1, "a snapshot needing a broken object was recorded"
    assert store_state(sheet.db)["records"]["C005"]["name"] == "Renamed Person"
    assert sheetsync_cmd("status", "--layouts-dir", str(tmp_path)).returncode == 4
    finish_and_check_backup = sheetsync_cmd("sync", str(sheet.layout), "--json")  # writable again
    assert json_run(finish_and_check_backup)["outcome"] == "problems"
    assert sheetsync_cmd("snapshots", "verify", "--backup-dir", str(backups)).returncode == 0


@pytest.mark.parametrize("encrypted", [False, True])
def test_verify_finds_bytes_appended_to_an_object(tmp_path, encrypted):
    from sheetsync.backup import generate_key
    env = {"SHEETSYNC_BACKUP_KEY": generate_key()} if encrypted else {}
    sheet = SheetFixture("csv", tmp_path, customer_rows(),
                         extra={"backup": {"encrypt": True}} if encrypted else None)
    backups = tmp_path / "backups"
    sheetsync_cmd("sync", str(sheet.layout), env=env)
    snap = manifests(backups)[0]
    target = snap["objects"]["store/schema"]["sha256"]
    with open(object_file(backups, target), "ab") as fh:
        fh.write(b"\0" * 16)
    # without the key too: the exact stored bytes are checked before anything is decrypted
    proc = sheetsync_cmd("snapshots", "verify", "--backup-dir", str(backups))
    assert proc.returncode == 1, proc.stdout
    assert f"BROKEN object {target}" in proc.stdout and snap["id"] in proc.stdout
    if not encrypted:
        restore = sheetsync_cmd("snapshots", "restore", snap["id"], "--replace",
                                "--layouts-dir", str(tmp_path), env={"SHEETSYNC_DB": str(tmp_path / "new.db")})
        assert restore.returncode != 0 and target in restore.stderr
        assert not (tmp_path / "new.db").exists()


def test_objects_of_the_first_format_stay_readable_and_their_damage_is_found(tmp_path):
    """Backups written before objects carried their own checksum (MAGIC SSO1, kind, zlib body)."""
    import zlib
    sheet = SheetFixture("csv", tmp_path, customer_rows())
    backups = tmp_path / "backups"
    sheetsync_cmd("sync", str(sheet.layout))
    snap = manifests(backups)[0]
    for name in objects_of(snap):
        path = object_file(backups, name)
        raw = path.read_bytes()
        assert raw[:5] == b"SSO2P"
        path.write_bytes(b"SSO1P" + zlib.compress(zlib.decompress(raw[45:]), 6))
    assert sheetsync_cmd("snapshots", "verify", "--backup-dir", str(backups)).returncode == 0
    from sheetsync.backup import restore_store
    assert store_state(restore_store(backups, snap["id"], tmp_path / "r.db"))["records"]["C001"]
    target = snap["objects"]["store/schema"]["sha256"]
    with open(object_file(backups, target), "ab") as fh:
        fh.write(b"trailing bytes")
    proc = sheetsync_cmd("snapshots", "verify", "--backup-dir", str(backups))
    assert proc.returncode == 1 and f"BROKEN object {target}" in proc.stdout
    assert "14 unexpected byte(s)" in proc.stdout


def test_encrypted_backups_without_a_key_fail_check_the_run_status_and_alert(tmp_path, hook):
    sheet = SheetFixture("csv", tmp_path, customer_rows(), extra={
        "backup": {"encrypt": True}, "alerts": {"webhook": {"url": hook.url, "retries": 0}}})
    check = sheetsync_cmd("check", str(sheet.layout))
    assert check.returncode == 2
    assert f"{sheet.layout}:" in check.stdout and "backup.encrypt:" in check.stdout
    assert "SHEETSYNC_BACKUP_KEY" in check.stdout and "sheetsync snapshots keygen" in check.stdout
    proc = sheetsync_cmd("sync", str(sheet.layout), "--json")
    run = json_run(proc)
    assert proc.returncode == 4 and run["outcome"] == "failed" and "backup failed" in run["message"]
    assert store_state(sheet.db)["records"]["C001"]["name"] == "Person 1"  # the data is synced
    assert not (tmp_path / "backups" / "snapshots").exists() or manifests(tmp_path / "backups") == []
    status = sheetsync_cmd("status", "--layouts-dir", str(tmp_path))
    assert status.returncode == 4 and "backup failed" in status.stdout
    assert [(b["kind"], b["state"]) for b in hook.bodies] == [("failed", "firing")]
    assert "backup.encrypt" in hook.bodies[0]["message"]

    made = sheetsync_cmd("snapshots", "keygen", "--out", str(tmp_path / "backup.key"))
    assert made.returncode == 0 and (tmp_path / "backup.key").stat().st_mode & 0o777 == 0o600
    again = sheetsync_cmd("snapshots", "keygen", "--out", str(tmp_path / "backup.key"))
    assert again.returncode == 2 and "already exists" in again.stderr  # a key is never replaced
    text = sheet.layout.read_text(encoding="utf-8").replace("encrypt: true", "encrypt: true\n  key_file: backup.key")
    sheet.layout.write_text(text, encoding="utf-8")
    assert sheetsync_cmd("check", str(sheet.layout)).returncode == 0
    run = json_run(sheetsync_cmd("sync", str(sheet.layout), "--json"))  # the sheet is unchanged
    assert run["outcome"] == "problems" and "backup failed" not in run["message"]
    [snap] = manifests(tmp_path / "backups")
    assert snap["encrypted"] and snap["run_id"] == run["run_id"]
    assert sheetsync_cmd("status", "--layouts-dir", str(tmp_path)).returncode == 0
    assert [(b["kind"], b["state"]) for b in hook.bodies][-1] == ("failed", "recovered")


def damage_store(db: Path, how: str) -> None:
    """Flip the header bytes of every b-tree page after the first, or cut the file in half."""
    assert not Path(f"{db}-wal").exists(), "the store was not closed cleanly"
    raw = bytearray(db.read_bytes())
    if how == "truncated":
        db.write_bytes(bytes(raw[:len(raw) // 2]))
        return
    page = int.from_bytes(raw[16:18], "big")
    for start in range(page, len(raw), page):
        for i in range(start, start + 8):
            raw[i] ^= 0xA5
    db.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["flipped", "truncated"])
def test_a_damaged_store_says_how_to_restore_and_the_restore_works(tmp_path, how):
    sheet = edited(SheetFixture("xlsx", tmp_path, customer_rows()))
    before = store_state(sheet.db)
    snap = manifests(tmp_path / "backups")[-1]["id"]
    damage_store(sheet.db, how)
    damaged = sheet.db.read_bytes()
    proc = sheetsync_cmd("sync", str(sheet.layout))
    assert proc.returncode == 2, proc.stderr
    assert f"{sheet.db}: the store file is damaged" in proc.stderr
    assert f"sheetsync snapshots restore {snap} --replace --layout customers" in proc.stderr
    assert "internal error" not in proc.stderr and "bug" not in proc.stderr
    status = sheetsync_cmd("status", "--layouts-dir", str(tmp_path))
    assert status.returncode == 4 and "the store file is damaged" in status.stdout
    assert "internal error" not in status.stdout + status.stderr

    restore = sheetsync_cmd("snapshots", "restore", snap, "--replace", "--layout", "customers",
                            "--layouts-dir", str(tmp_path))
    assert restore.returncode == 0, restore.stderr
    [kept] = [p for p in tmp_path.iterdir() if p.name.startswith("sheetsync.db.damaged-")
              and not p.name.endswith(("-wal", "-shm"))]
    assert kept.read_bytes()[:len(damaged) // 2] == damaged[:len(damaged) // 2]  # set aside, not mended
    after = assert_store_sound(sheet.db)
    assert {k: after[k] for k in ("records", "history", "problems")} == \
        {k: before[k] for k in ("records", "history", "problems")}
    sheet.edit(7, 2, "Edited after the restore")
    run = json_run(sheetsync_cmd("sync", str(sheet.layout), "--json"))
    assert run["outcome"] == "problems", run["message"]
    assert store_state(sheet.db)["records"]["C006"]["name"] == "Edited after the restore"


def test_restore_replace_rebuilds_a_store_that_is_gone(tmp_path):
    sheet = edited(SheetFixture("csv", tmp_path, customer_rows()))
    before = store_state(sheet.db)
    snap = manifests(tmp_path / "backups")[-1]["id"]
    sheet.db.rename(tmp_path / "elsewhere.db")  # deleted or lost with its disk
    restore = sheetsync_cmd("snapshots", "restore", snap, "--replace", "--layouts-dir", str(tmp_path))
    assert restore.returncode == 0 and "missing" in restore.stdout, restore.stderr
    after = assert_store_sound(sheet.db)
    assert {k: after[k] for k in ("records", "history")} == {k: before[k] for k in ("records", "history")}
    with Store(sheet.db) as store:
        assert store.lease_holder("customers") is None
        assert store.runs("customers")[0]["message"].startswith(f"the store was restored from snapshot {snap}")


def test_export_refuses_a_damaged_object_instead_of_copying_it(tmp_path):
    sheet = SheetFixture("csv", tmp_path, customer_rows())
    backups = tmp_path / "backups"
    sheetsync_cmd("sync", str(sheet.layout))
    snap = manifests(backups)[0]
    target = snap["objects"]["store/schema"]["sha256"]
    flip_middle_byte(object_file(backups, target))
    proc = sheetsync_cmd("snapshots", "export", snap["id"], str(tmp_path / "copy.tar"),
                         "--backup-dir", str(backups))
    assert proc.returncode == 1 and target in proc.stderr and "checksum" in proc.stderr
    assert not (tmp_path / "copy.tar").exists()


def test_a_workbook_only_openpyxl_could_write_and_would_damage_is_refused_before_the_commit(tmp_path):
    """Threaded comments on the synced sheet: the direct patch steps aside and openpyxl would drop
    them. That is said at the read, so nothing is committed and no outbox is left to fail on every
    later run; a layout that accepts the loss syncs."""
    import yaml
    from book_parts import add_threaded_comment
    from sheetsync.errors import FeatureLossError
    sheet = SheetFixture("xlsx", tmp_path, customer_rows(12))
    add_threaded_comment(sheet.path, "xl/worksheets/sheet1.xml", "B3")
    before = sheet.path.read_bytes()
    with pytest.raises(FeatureLossError) as err:
        sync_once(sheet.layout)
    assert "threaded comments" in str(err.value) and "allow_feature_loss" in err.value.hint
    assert sheet.path.read_bytes() == before
    with Store(sheet.db) as store:  # the refused run is recorded as failed; nothing else is there
        assert "customers" not in store.tables() and store.outbox("customers") == []
        assert [r["outcome"] for r in store.runs("customers")] == ["failed"]
    data = yaml.safe_load(sheet.layout.read_text(encoding="utf-8"))
    data["source"]["allow_feature_loss"] = True
    sheet.layout.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    run = sync_once(sheet.layout)
    assert run.outcome == "problems" and run.inserted == 12 and run.patches_applied > 0


# -- a column renamed or deleted in the sheet: its stored values are kept, never read as empty -----

MISSING_COLUMNS = {"id": {"header": "ID", "required": True}, "name": {"header": "Name"},
                   "email": {"header": "Email", "type": "email"},
                   "limit": {"header": "Limit", "type": "integer", "protected": True}}


def write_sheet(sheet: SheetFixture, rows: list[list]) -> None:
    """A person saves the whole sheet (header included) as `rows`."""
    if sheet.kind == "csv":
        sheet._write_csv(rows)
        return
    import openpyxl
    wb = openpyxl.Workbook()
    wb.active.title = TAB
    for r in rows:
        wb.active.append(r)
    wb.save(sheet.path)


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
@pytest.mark.parametrize("header", [["ID", "Name", "E-mail address", "Limit"], ["ID", "Name"]])
def test_a_renamed_or_deleted_column_keeps_its_stored_values_and_says_so(tmp_path, hook, kind, header):
    sheet = SheetFixture(kind, tmp_path, [], extra={"columns": MISSING_COLUMNS, "language": "zh",
                                                    "alerts": {"webhook": {"url": hook.url, "retries": 0}}})
    people = [["C001", "Ann", "ann@x.com", 100], ["C002", "Bob", "bob@x.com", 200]]
    write_sheet(sheet, [["ID", "Name", "Email", "Limit"], *people])
    assert sheetsync_cmd("sync", str(sheet.layout)).returncode == 0
    before = store_state(sheet.db)
    write_sheet(sheet, [header, *([p[:len(header)] for p in people])])
    sheet.edit(2, 2, "Ann B")  # a person renames one customer
    proc = sheetsync_cmd("sync", str(sheet.layout), "--json")
    run = json_run(proc)
    assert proc.returncode == 1 and run["outcome"] == "problems", proc.stdout + proc.stderr
    gone = [f for f in ("email", "limit") if MISSING_COLUMNS[f]["header"] not in header]
    assert "not found in the sheet: their stored values are kept" in run["message"]
    after = store_state(sheet.db)
    assert after["records"]["C001"] == {**before["records"]["C001"], "name": "Ann B"}
    assert after["records"]["C002"] == before["records"]["C002"]
    assert after["history"]["C001"] == [*before["history"]["C001"], ("name", "Ann", "Ann B", "update")]
    assert after["problems"] == [("", f, "column_missing") for f in gone]
    report = (tmp_path / "customers.sheetsync.csv").read_text(encoding="utf-8-sig") if kind == "csv" else \
        "".join(str(c.value) for row in __import__("openpyxl").load_workbook(sheet.path)["sheetsync"].iter_rows()
                for c in row)
    assert "本表中找不到列 Email（可能被改名或删除），sheetsync 保留了该列已存储的值" in report
    status = sheetsync_cmd("status", str(sheet.layout))
    assert "column_missing" in status.stdout, status.stdout
    alerts = [b for b in hook.bodies if b["kind"] == "column_missing"]
    assert len(alerts) == 1 and alerts[0]["state"] == "firing" and "Email" in alerts[0]["detail"]
    # the header put back: the problem closes, an edit made meanwhile is taken, no false conflict
    write_sheet(sheet, [["ID", "Name", "Email", "Limit"], ["C001", "Ann B", "ann@x.com", 100],
                        ["C002", "Bob", "bob2@x.com", 200]])
    proc = sheetsync_cmd("sync", str(sheet.layout), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    final = store_state(sheet.db)
    assert final["problems"] == [] and final["records"]["C002"]["email"] == "bob2@x.com"
    assert final["records"]["C001"]["email"] == "ann@x.com" and final["records"]["C001"]["limit"] == 100


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_protected_value_first_typed_invalid_then_fixed_is_taken_not_blanked(tmp_path, kind):
    columns = {**MISSING_COLUMNS, "limit": {**MISSING_COLUMNS["limit"], "min": 0}}
    sheet = SheetFixture(kind, tmp_path, [], extra={"columns": columns})
    write_sheet(sheet, [["ID", "Name", "Email", "Limit"], ["C001", "Ann", "ann@x.com", 100],
                        ["C002", "Bob", "bob@x.com", -100]])
    sync_once(sheet.layout)
    assert store_state(sheet.db)["records"]["C002"]["limit"] is None  # invalid: nothing stored
    sheet.edit(3, 4, 150)  # a person fixes the value
    sheet.edit(2, 4, 999)  # and edits a validly stored one: still reverted
    res = sync_once(sheet.layout)
    state = store_state(sheet.db)
    assert state["records"]["C002"]["limit"] == 150 and ("limit", None, "150", "update") in state["history"]["C002"]
    assert state["records"]["C001"]["limit"] == 100 and res.protected == 1
    cells = sheet.cells()
    assert cells[(3, 4)][0] == "150" and cells[(2, 4)][0] == "100"
    assert ("C002", "limit", "invalid") not in state["problems"]


# -- file modes: files made for people follow the umask, a rebuilt store keeps its mode ------------

@contextmanager
def umask(mask: int):
    old = os.umask(mask)  # the sheetsync child inherits it
    try:
        yield
    finally:
        os.umask(old)


def test_files_made_for_people_get_the_umask_mode_and_sit_beside_a_links_target(tmp_path):
    shared = SheetFixture("csv", tmp_path / "share", customer_rows())
    work = tmp_path / "work"
    work.mkdir()
    (work / shared.path.name).symlink_to(shared.path)
    layout = work / "customers.yaml"
    layout.write_text(shared.layout.read_text(encoding="utf-8"), encoding="utf-8")
    with umask(0o002):
        proc = sheetsync_cmd("sync", str(layout))
        assert proc.returncode == 1, proc.stderr
        report = shared.folder / "customers.sheetsync.csv"  # beside the shared file, for everyone using it
        assert report.stat().st_mode & 0o777 == 0o664 and not (work / report.name).exists()
        snap = manifests(work / "backups")[-1]["id"]
        proc = sheetsync_cmd("snapshots", "restore", snap, "--layout", "customers", "--layouts-dir", str(work))
        assert proc.returncode == 0, proc.stderr
    copies = list(shared.folder.glob(f"*.restored-{snap}*")) + list(work.glob(f"*.restored-{snap}*"))
    assert len(copies) == 1 and copies[0].stat().st_mode & 0o777 == 0o664


def test_a_store_rebuilt_by_restore_replace_keeps_its_file_mode(tmp_path):
    sheet = edited(SheetFixture("csv", tmp_path, customer_rows()))
    before = store_state(sheet.db)
    sheet.db.chmod(0o600)  # a private store
    snap = manifests(tmp_path / "backups")[-1]["id"]
    damage_store(sheet.db, "flipped")
    with umask(0o022):
        restore = sheetsync_cmd("snapshots", "restore", snap, "--replace", "--layout", "customers",
                                "--layouts-dir", str(tmp_path))
    assert restore.returncode == 0, restore.stderr
    assert sheet.db.stat().st_mode & 0o777 == 0o600
    assert {k: assert_store_sound(sheet.db)[k] for k in ("records", "history")} == \
        {k: before[k] for k in ("records", "history")}


def test_a_new_rows_uncalculated_formula_in_a_required_column_holds_it_back_asking_for_a_save(tmp_path):
    columns = {"id": {"header": "ID", "required": True}, "name": {"header": "Name", "required": True},
               "email": {"header": "Email", "type": "email"}}
    sheet = SheetFixture("xlsx", tmp_path, [], extra={"columns": columns})
    write_sheet(sheet, [["ID", "Name", "Email"], ["C001", '=UPPER("ann")', "ann@x.com"], ["C002", "Bob", "b@x.com"]])
    res = sync_once(sheet.layout)  # openpyxl saved the formula without its result
    state = store_state(sheet.db)
    assert state["problems"] == [("C001", "", "held_back"), ("C001", "name", "formula_uncalculated")]
    assert set(state["records"]) == {"C002"} and res.held_back == 1
    note = sheet.cells()[(2, 2)][2]
    assert "open the file in Excel and save it" in note and "computed from" not in note
    sheet.edit(2, 2, "ANN")  # the value is there now (Excel saved it, or a person typed it)
    sync_once(sheet.layout)
    state = store_state(sheet.db)
    assert state["records"]["C001"]["name"] == "ANN" and state["problems"] == []
