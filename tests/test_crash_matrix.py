"""Crash matrix: SIGKILL a real `sheetsync sync` process at every step of the cycle, for xlsx, CSV
and the Sheets emulator; two normal reruns must end exactly where an uncrashed twin ends. The same
for the sync after `duplicates --merge` (it removes a row) and for `sheetsync archive`."""
from __future__ import annotations

import pytest

from conftest import KILL_ENV, SheetFixture, customer_rows, store_state, sheetsync_cmd
from sheetsync.archive import STEPS as ARCHIVE_STEPS, archive
from sheetsync.cli import main
from sheetsync.engine import REMOVAL_STEPS, STEPS, sync_once
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


# -- `duplicates --merge` and the sync after it: the merged-away row leaves the sheet once ----------

MERGE_STEPS = (*STEPS, *REMOVAL_STEPS)


def _merge_fixture(kind, folder, emu, sid):
    rows = customer_rows()
    rows[2][3] = ""  # C003 has no email: the merge fills it from C010
    sheet = SheetFixture(kind, folder, rows, emu=emu, sid=sid)
    sync_once(sheet.layout)
    assert main(["duplicates", str(sheet.layout), "--merge", "C003", "C010"]) == 0
    return sheet


def _ids(cells):
    return [v[0] for (r, c), v in sorted(cells.items()) if c == 1 and r > 1]


@pytest.fixture(scope="module")
def merged_reference(tmp_path_factory, emu):
    """The clean run of each source: first sync, the merge, two syncs."""
    cache: dict[str, tuple] = {}

    def get(kind: str) -> tuple:
        if kind not in cache:
            sheet = _merge_fixture(kind, tmp_path_factory.mktemp(f"mref-{kind}"), emu, f"mref-{kind}")
            sync_once(sheet.layout)
            sync_once(sheet.layout)
            cache[kind] = (sheet.cells(), store_state(sheet.db))
        return cache[kind]
    return get


@pytest.mark.parametrize("step", MERGE_STEPS)
@pytest.mark.parametrize("kind", SOURCES)
def test_sigkill_in_the_sync_after_a_merge_then_rerun_matches_a_clean_run(tmp_path, emu, merged_reference,
                                                                          kind, step):
    sheet = _merge_fixture(kind, tmp_path, emu, f"mcrash-{kind}-{step}")
    killed = sheetsync_cmd("sync", str(sheet.layout), env={KILL_ENV: step})
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
    after_kill = store_state(sheet.db)
    if step == "removed":  # the source took the removal, the outbox does not know yet
        assert "C010" not in _ids(sheet.cells()) and after_kill["outbox"]
    elif step == "remove":  # the cells landed (C003's email), the removal waits in the outbox
        assert "C010" in _ids(sheet.cells()) and [p.kind for _, p, _, _ in after_kill["outbox"]] == ["remove"]
    first = sync_once(sheet.layout)
    assert first.outcome in ("ok", "problems"), first.message
    sync_once(sheet.layout)
    ref_cells, ref_store = merged_reference(kind)
    cells, state = sheet.cells(), store_state(sheet.db)
    assert state["integrity"] == "ok" and state["outbox"] == []
    ids = _ids(cells)
    assert "C010" not in ids and len(ids) == 29 and ids == sorted(ids)  # removed once: C011 is still there
    assert state["records"]["C010"]["_deleted"] == 1 and state["records"]["C003"]["email"] == "user10@example.com"
    assert [h[3] for h in state["history"]["C010"]].count("remove_row") == 1
    assert state == ref_store
    assert cells == ref_cells


# -- `sheetsync archive`: commit first, then the copy and the row removals; a re-run finishes ------

ARCHIVE_RULE = {"archive": {"when": [{"field": "name", "one_of": ["Person 3", "Person 9", "Person 20"]}]}}
ARCHIVED = ["C003", "C009", "C020"]


def _archive_fixture(kind, folder, emu, sid):
    sheet = SheetFixture(kind, folder, customer_rows(), emu=emu, sid=sid, extra=ARCHIVE_RULE)
    sync_once(sheet.layout)
    return sheet


def _archive_now(sheet):
    from sheetsync.connectors import from_source
    from sheetsync.layout_load import load_layout
    from sheetsync.store import Store
    loaded = load_layout(sheet.layout)
    with Store(sheet.db) as store:
        return archive(loaded, store, from_source(loaded.layout.source, loaded.path.parent))


def _archive_copy(sheet) -> list:
    """The record ids in the archive copy: NAME.archive.csv, or the archive tab."""
    import csv
    if sheet.kind == "csv":
        path = sheet.path.with_name("customers.archive.csv")
        return [r[0] for r in csv.reader(path.read_text(encoding="utf-8-sig").splitlines())][1:]
    if sheet.kind == "xlsx":
        import openpyxl
        return [r[0] for r in openpyxl.load_workbook(sheet.path)["archive"].iter_rows(min_row=2, values_only=True)]
    return [r[0] for r in sheet.emu.values(sheet.sid, "archive")[1:]]


def _archived_state(sheet) -> dict:
    from sheetsync.store import Store
    with Store(sheet.db) as store:
        rows = store.archived("customers_archive")
    return {**store_state(sheet.db), "archived": sorted((r["_key"], r["name"], r["email"]) for r in rows)}


@pytest.fixture(scope="module")
def archive_reference(tmp_path_factory, emu):
    """The clean archive of each source: first sync, archive, sync."""
    cache: dict[str, tuple] = {}

    def get(kind: str) -> tuple:
        if kind not in cache:
            sheet = _archive_fixture(kind, tmp_path_factory.mktemp(f"aref-{kind}"), emu, f"aref-{kind}")
            assert _archive_now(sheet).rows_removed == [4, 10, 21]
            sync_once(sheet.layout)
            cache[kind] = (sheet.cells(), _archived_state(sheet), _archive_copy(sheet))
        return cache[kind]
    return get


@pytest.mark.parametrize("step", (*ARCHIVE_STEPS, *REMOVAL_STEPS))
@pytest.mark.parametrize("kind", SOURCES)
def test_sigkill_in_archive_then_rerun_archives_each_record_once(tmp_path, emu, archive_reference, kind, step):
    sheet = _archive_fixture(kind, tmp_path, emu, f"acrash-{kind}-{step}")
    killed = sheetsync_cmd("archive", str(sheet.layout), env={KILL_ENV: step})
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
    after_kill = _archived_state(sheet)
    assert bool(after_kill["archived"]) == (step != "archive_commit")  # nothing before the commit
    assert all(k in _ids(sheet.cells()) for k in ARCHIVED) == (step not in ("removed", "archive_done"))
    sync_once(sheet.layout)  # breaks the dead process's lease and replays its row removals
    _archive_now(sheet)      # writes the archive copy it owed (or, killed before its commit, all of it)
    sync_once(sheet.layout)
    ref_cells, ref_state, ref_copy = archive_reference(kind)
    copy, state, cells = _archive_copy(sheet), _archived_state(sheet), sheet.cells()
    assert sorted(copy) == ARCHIVED and copy == ref_copy  # each record once
    assert [k for k, _, _ in state["archived"]] == ARCHIVED and state["outbox"] == []
    assert not set(ARCHIVED) & set(_ids(cells)) and len(_ids(cells)) == 27  # no other row went
    assert all(state["records"][k]["_deleted"] == 1 for k in ARCHIVED)
    assert state == ref_state and cells == ref_cells


def test_rows_a_killed_archive_removed_are_no_mass_delete(tmp_path):
    rule = {"archive": {"when": [{"field": "name", "one_of": [f"Person {i}" for i in range(1, 81)]}]}}
    sheet = SheetFixture("csv", tmp_path, customer_rows(120), extra=rule)
    sync_once(sheet.layout)
    killed = sheetsync_cmd("archive", str(sheet.layout), env={KILL_ENV: "removed"})
    assert killed.returncode == -9 and len(_ids(sheet.cells())) == 40  # 80 of 120 rows went
    run = sync_once(sheet.layout)
    assert run.outcome in ("ok", "problems") and "max_delete" not in run.message
    state = store_state(sheet.db)
    assert "mass_delete" not in {code for _, _, code in state["problems"]} and state["outbox"] == []
    assert sum(r["_deleted"] for r in state["records"].values()) == 80
