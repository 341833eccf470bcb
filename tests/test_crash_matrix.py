"""Crash matrix: SIGKILL a real `sheetsync sync` process at every step of the cycle, for xlsx, CSV
and the Sheets emulator; two normal reruns must end exactly where an uncrashed twin ends."""
from __future__ import annotations

import pytest

from conftest import KILL_ENV, SheetFixture, customer_rows, store_state, sheetsync_cmd
from sheetsync.engine import STEPS, sync_once
from sheetsync.testing.sheets_emulator import SheetsEmulator

SOURCES = ("xlsx", "csv", "emulator")
# A person's edits between the first sync and the crashed one: a plain rename, a phone that needs
# reformatting, a fix of an invalid email (its red mark must go), and a new row.
EDITS = [(6, 2, "Renamed Person"), (8, 3, "13912345678"), (8, 4, "fixed7@example.com"),
         (32, 1, "C031"), (32, 2, "New Person"), (32, 3, "138 0031 8031"), (32, 4, "new@example.com")]


@pytest.fixture(scope="module")
def emu():
    with SheetsEmulator() as server:
        yield server


@pytest.fixture(scope="module")
def reference(tmp_path_factory, emu):
    """The clean run of each source, computed once: first sync, the edits, two syncs."""
    cache: dict[str, tuple] = {}

    def get(kind: str) -> tuple:
        if kind not in cache:
            sheet = SheetFixture(kind, tmp_path_factory.mktemp(f"ref-{kind}"), customer_rows(),
                                 emu=emu, sid=f"ref-{kind}")
            sync_once(sheet.layout)
            for edit in EDITS:
                sheet.edit(*edit)
            sync_once(sheet.layout)
            sync_once(sheet.layout)
            cache[kind] = (sheet.cells(), store_state(sheet.db))
        return cache[kind]
    return get


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("kind", SOURCES)
def test_sigkill_at_a_step_then_rerun_matches_a_clean_run(tmp_path, emu, reference, kind, step):
    sheet = SheetFixture(kind, tmp_path, customer_rows(), emu=emu, sid=f"crash-{kind}-{step}")
    sync_once(sheet.layout)
    for edit in EDITS:
        sheet.edit(*edit)
    killed = sheetsync_cmd("sync", str(sheet.layout), env={KILL_ENV: step})
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
    after_kill = store_state(sheet.db)
    committed = STEPS.index(step) > STEPS.index("commit")
    assert ("C031" in after_kill["records"]) == committed  # the kill really came at that step
    assert bool(after_kill["outbox"]) == (step == "apply")
    first = sync_once(sheet.layout)  # a dead process's lease must not block this run
    assert first.outcome in ("ok", "problems"), first.message
    sync_once(sheet.layout)
    ref_cells, ref_store = reference(kind)
    cells, state = sheet.cells(), store_state(sheet.db)
    assert state["integrity"] == "ok" and state["keys_unique"]
    assert state["outbox"] == []
    assert set(state["inserts"].values()) == {1} and set(state["inserts"]) == set(state["records"])
    rec = state["records"]
    assert rec["C005"]["name"] == "Renamed Person" and rec["C007"]["email"] == "fixed7@example.com"
    assert rec["C007"]["phone"] == "+86 139 1234 5678" and rec["C031"]["name"] == "New Person"
    assert rec == ref_store["records"]
    assert state["history"] == ref_store["history"]
    assert state["problems"] == ref_store["problems"] and state["marks"] == ref_store["marks"]
    assert cells == ref_cells  # values, fills and notes: no stale mark, no lost edit


@pytest.mark.parametrize("step", ["commit", "apply"])
def test_the_next_run_closes_the_row_of_a_killed_run(tmp_path, step):
    """Killed before its commit, a run saved nothing and failed; after it, it is finished."""
    from sheetsync.store import Store
    sheet = SheetFixture("csv", tmp_path, customer_rows())
    sync_once(sheet.layout)
    sheet.edit(6, 2, "Renamed Person")
    assert sheetsync_cmd("sync", str(sheet.layout), env={KILL_ENV: step}).returncode == -9
    sync_once(sheet.layout)
    with Store(sheet.db) as store:
        runs = store.runs("customers")
    assert all(r["finished"] is not None for r in runs)
    assert runs[1]["outcome"] == ("failed" if step == "commit" else "problems")
    assert sum(r["outcome"] == "failed" for r in runs) == (step == "commit")


# -- archive and restore killed while they hold the layout's lease -----------------------------

ARCHIVE_LAYOUT = """\
table: people
source: {kind: xlsx, path: book.xlsx, sheet: People}
key: id
columns:
  id: {header: ID}
  name: {header: Name}
  status: {header: Status}
archive:
  when: [{field: status, equals: closed}]
"""


def _people(tmp_path):
    """A synced workbook of three people, one closed (archivable); the sync took a snapshot."""
    import openpyxl
    from sheetsync import backup
    layouts = tmp_path / "layouts"
    layouts.mkdir()
    book = openpyxl.Workbook()
    book.active.title = "People"
    for row in (["ID", "Name", "Status"], ["C1", "Ann", "open"], ["C2", "Bob", "closed"], ["C3", "Cy", "open"]):
        book.active.append(row)
    book.save(layouts / "book.xlsx")
    (layouts / "people.yaml").write_text(ARCHIVE_LAYOUT, encoding="utf-8")
    assert sync_once(layouts / "people.yaml").outcome == "ok"
    (snap,) = backup.list_snapshots(layouts / "backups")
    return layouts, snap.id


@pytest.mark.parametrize("command", ["archive", "restore"])
def test_a_killed_archive_or_restore_never_blocks_the_next_command(tmp_path, command):
    from sheetsync.store import Store
    layouts, snap = _people(tmp_path)
    env = {"SHEETSYNC_DB": str(layouts / "sheetsync.db"), "SHEETSYNC_BACKUP_DIR": str(layouts / "backups")}
    if command == "restore":
        with Store(layouts / "sheetsync.db") as store, store.transaction():  # to be restored away
            store.write_record("people", "C1", {"name": "Changed"}, action="update", run_id="x")
    args = (["archive", "people"] if command == "archive" else ["snapshots", "restore", snap, "--replace"])
    args += ["--layouts-dir", str(layouts)]
    killed = sheetsync_cmd(*args, env={**env, KILL_ENV: command}, cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr[-2000:]
    with Store(layouts / "sheetsync.db") as store:
        assert store.lease_holder("people") is not None  # it died holding the lease
    leftovers = sorted(p.name for p in layouts.glob(".sheetsync-restore-*"))
    assert bool(leftovers) == (command == "restore")
    again = sheetsync_cmd(*args, env=env, cwd=tmp_path)  # at once, not 15 minutes later
    assert again.returncode == 0, again.stdout + again.stderr
    with Store(layouts / "sheetsync.db") as store:
        recs = store.records("people")
        assert store.lease_holder("people") is None
    if command == "archive":
        assert recs["C2"]["_deleted"] == 1 and "C2" not in {k for k, r in recs.items() if not r["_deleted"]}
    else:
        assert recs["C1"]["name"] == "Ann"
    assert list(layouts.glob(".sheetsync-restore-*")) == []  # the dead restore's copy is gone
    assert sync_once(layouts / "people.yaml").outcome in ("ok", "problems")


def test_a_sync_removes_the_store_copy_a_killed_restore_left(tmp_path):
    layouts, snap = _people(tmp_path)
    env = {"SHEETSYNC_DB": str(layouts / "sheetsync.db"), "SHEETSYNC_BACKUP_DIR": str(layouts / "backups")}
    killed = sheetsync_cmd("snapshots", "restore", snap, "--replace", "--layouts-dir", str(layouts),
                           env={**env, KILL_ENV: "restore"}, cwd=tmp_path)
    assert killed.returncode == -9 and list(layouts.glob(".sheetsync-restore-*/snapshot.db"))
    synced = sheetsync_cmd("sync", str(layouts / "people.yaml"), env=env, cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr[-2000:]
    assert list(layouts.glob(".sheetsync-restore-*")) == []


# -- a run killed after its commit is finished, not failed ----------------------------------------

def _report_tab(path) -> list[tuple]:
    """The xlsx report tab's rows, times of day left out (the two runs ran at different times)."""
    import re
    import openpyxl
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d( UTC)?")
    return [tuple(stamp.sub("T", "" if v is None else str(v)) for v in row)
            for row in openpyxl.load_workbook(path)["sheetsync"].iter_rows(values_only=True)]


@pytest.mark.parametrize("step", ["apply", "finish"])
def test_a_run_killed_after_its_commit_is_finished_by_the_next_with_its_own_counts(tmp_path, step):
    from sheetsync.store import Store
    clean = SheetFixture("xlsx", tmp_path / "clean", customer_rows())
    sheet = SheetFixture("xlsx", tmp_path / "killed", customer_rows())
    for s in (clean, sheet):
        sync_once(s.layout)
        for edit in EDITS:
            s.edit(*edit)
    sync_once(clean.layout)
    assert sheetsync_cmd("sync", str(sheet.layout), env={KILL_ENV: step}).returncode == -9
    nxt = sync_once(sheet.layout)
    assert (nxt.inserted, nxt.updated) == (0, 0)  # the killed run had saved them
    with Store(clean.db) as store:
        want = store.runs("customers")[0]
    with Store(sheet.db) as store:
        runs = store.runs("customers")
    dead = runs[1]
    assert dead["finished"] is not None and dead["outcome"] == want["outcome"] == "problems"
    counts = ("inserted", "updated", "deleted", "corrected", "invalid", "duplicates", "rows", "open_problems")
    assert {k: dead["result"][k] for k in counts} == {k: want["result"][k] for k in counts}
    assert dead["result"]["inserted"] == 1
    assert _report_tab(sheet.path) == _report_tab(clean.path)  # "1 added, ...", not the first run's 30
    assert "1 added" in str(_report_tab(sheet.path))
    from sheetsync import backup  # and the snapshot the killed run never took was taken
    assert len(backup.list_snapshots(sheet.folder / "backups")) == len(backup.list_snapshots(clean.folder / "backups"))


def test_an_archive_breaking_a_killed_syncs_lease_closes_that_run_as_finished(tmp_path):
    import openpyxl
    from sheetsync.store import Store
    layouts, _ = _people(tmp_path)
    book = openpyxl.load_workbook(layouts / "book.xlsx")
    book["People"]["B2"] = "Annie"
    book.save(layouts / "book.xlsx")
    env = {"SHEETSYNC_DB": str(layouts / "sheetsync.db"), "SHEETSYNC_BACKUP_DIR": str(layouts / "backups")}
    killed = sheetsync_cmd("sync", str(layouts / "people.yaml"), env={**env, KILL_ENV: "apply"}, cwd=tmp_path)
    assert killed.returncode == -9
    archived = sheetsync_cmd("archive", "people", "--layouts-dir", str(layouts), env=env, cwd=tmp_path)
    assert archived.returncode == 0, archived.stdout + archived.stderr
    with Store(layouts / "sheetsync.db") as store:
        dead = store.runs("people")[0]
        assert store.records("people")["C1"]["name"] == "Annie"
    assert (dead["outcome"], dead["result"]["updated"]) == ("ok", 1) and dead["finished"] is not None
