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


def test_the_next_run_closes_the_row_of_a_killed_run(tmp_path):
    from sheetsync.store import Store
    sheet = SheetFixture("csv", tmp_path, customer_rows())
    sync_once(sheet.layout)
    sheet.edit(6, 2, "Renamed Person")
    assert sheetsync_cmd("sync", str(sheet.layout), env={KILL_ENV: "apply"}).returncode == -9
    sync_once(sheet.layout)
    with Store(sheet.db) as store:
        runs = store.runs("customers")
    assert all(r["finished"] is not None for r in runs)
    assert sum(r["outcome"] == "failed" for r in runs) == 1
