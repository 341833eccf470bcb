"""Concurrency: a person editing between pull and write-back, two sync processes on one layout,
and a scheduler-like loop running beside manual syncs: no lost edit, no duplicate, one history."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TAB, SheetFixture, customer_rows, store_state
from sheetsync.engine import sync_once
from sheetsync.store import Store


def assert_consistent(db: Path) -> dict:
    """Keys unique, one insert per record, the outbox empty, each record's history a chain."""
    state = store_state(db)
    assert state["integrity"] == "ok" and state["keys_unique"] and state["outbox"] == []
    assert set(state["inserts"].values()) == {1} and set(state["inserts"]) == set(state["records"])
    for key, history in state["history"].items():
        current: dict = {}
        for fld, old, new, action in history:
            if action == "update":
                assert current.get(fld) == old, (key, fld, old, current.get(fld))
            current[fld] = new
        rec = state["records"][key]
        assert all(str(rec[f]) == v for f, v in current.items() if v is not None), key
    return state


def popen_sync(layout: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sheetsync", "sync", str(layout)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def test_emulator_edit_between_pull_and_write_back_survives(tmp_path, emulator):
    sheet = SheetFixture("emulator", tmp_path, customer_rows(), emu=emulator)
    sync_once(sheet.layout)
    sheet.edit(9, 3, "13912345678")  # needs a correction this run...
    emulator.edit_after_next_read(sheet.sid, TAB, 9, 3, "15000150000")  # ...but a person is quicker
    res = sync_once(sheet.layout)
    assert res.patches_deferred >= 1
    assert emulator.cell(sheet.sid, TAB, 9, 3) == 15000150000 or emulator.cell(sheet.sid, TAB, 9, 3) == "15000150000"
    sync_once(sheet.layout)
    assert store_state(sheet.db)["records"]["C008"]["phone"] == "+86 150 0015 0000"
    assert emulator.cell(sheet.sid, TAB, 9, 3) == "+86 150 0015 0000"
    assert_consistent(sheet.db)


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_file_saved_by_a_person_during_the_write_back_keeps_their_edit(tmp_path, kind):
    sheet = SheetFixture(kind, tmp_path, customer_rows())
    sync_once(sheet.layout)
    sheet.edit(9, 3, "13912345678")

    def person_saves(step: str) -> None:
        if step == "apply":
            sheet.edit(9, 2, "Typed during the sync")
    res = sync_once(sheet.layout, hook=person_saves)
    assert res.outcome == "partial" and store_state(sheet.db)["outbox"] != []
    assert sheet.cells()[(9, 2)][0] == "Typed during the sync"
    sync_once(sheet.layout)
    sync_once(sheet.layout)
    state = assert_consistent(sheet.db)
    assert state["records"]["C008"]["name"] == "Typed during the sync"
    assert state["records"]["C008"]["phone"] == "+86 139 1234 5678"
    cells = sheet.cells()
    assert cells[(9, 2)][0] == "Typed during the sync" and cells[(9, 3)][0] == "+86 139 1234 5678"


@pytest.mark.parametrize("fresh", [False, True], ids=["existing-store", "fresh-store"])
def test_two_processes_on_one_layout_exactly_one_runs(tmp_path, emulator, fresh):
    sheet = SheetFixture("emulator", tmp_path, customer_rows(), emu=emulator)
    if not fresh:
        sync_once(sheet.layout)
        sheet.edit(6, 2, "Renamed Person")
    emulator.inject("delay", count=1, seconds=2.5)  # keeps the winner busy while the other arrives
    procs = [popen_sync(sheet.layout) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[1] == 3 and codes[0] in (0, 1), [(p.returncode, o[1][-800:]) for p, o in zip(procs, outs)]
    busy = next(o for p, o in zip(procs, outs) if p.returncode == 3)
    assert "another run holds" in busy[1]
    state = assert_consistent(sheet.db)
    assert len(state["records"]) == 30


LOOP = """
import sys, time
from sheetsync.cli import main
codes = []
for _ in range(5):
    codes.append(main(["sync", sys.argv[1]]))
    time.sleep(0.05)
print(codes)
"""


def test_a_scheduler_loop_beside_manual_syncs(tmp_path, emulator):
    sheet = SheetFixture("emulator", tmp_path, customer_rows(), emu=emulator)
    sync_once(sheet.layout)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    loops = [subprocess.Popen([sys.executable, "-c", LOOP, str(sheet.layout)], text=True, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for i in range(8):  # people keep editing while both loops run
        sheet.edit(2 + i, 2, f"Edit {i}")
        sheet.edit(20 + i, 3, f"1391234{i:04d}")
        time.sleep(0.25)
    outs = [p.communicate(timeout=120) for p in loops]
    for p, (out, err) in zip(loops, outs):
        assert p.returncode == 0 and "Traceback" not in err, err[-1500:]
        codes = ast.literal_eval(out.strip().splitlines()[-1])
        assert set(codes) <= {0, 1, 3}, codes
    sync_once(sheet.layout)
    state = assert_consistent(sheet.db)
    assert len(state["records"]) == 30
    for i in range(8):
        assert state["records"][f"C{1 + i:03d}"]["name"] == f"Edit {i}"
        assert state["records"][f"C{19 + i:03d}"]["phone"] == f"+86 139 1234 {i:04d}"
    with Store(sheet.db) as store:
        runs = store.runs("customers", limit=100)
    assert all(r["finished"] is not None for r in runs)


# -- a person saving while sheetsync's save is under way (a slow fsync, as on a network share) -------

def start_sync(layout: Path, pause: str) -> subprocess.Popen:
    """`sheetsync sync` in a child whose save sleeps at a step (safe_write.PAUSE_ENV)."""
    return subprocess.Popen([sys.executable, "-m", "sheetsync", "sync", str(layout)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO), "SHEETSYNC_TEST_PAUSE_AT": pause})


def wait_for_pause(child: subprocess.Popen, step: str) -> list[str]:
    """Read the child's stderr until it says it sleeps at `step`; the lines read so far."""
    lines = []
    for line in child.stderr:  # type: ignore[union-attr]
        lines.append(line)
        if f"test pause: {step}" in line:
            return lines
    raise AssertionError("the sync never reached " + step + ": " + "".join(lines)[-2000:])


def slow_save_sheet(tmp_path: Path, kind: str) -> SheetFixture:
    """A synced sheet with one cell needing a correction; `xlsx-openpyxl` forces the openpyxl save."""
    sheet = SheetFixture(kind.split("-")[0], tmp_path, customer_rows())
    sync_once(sheet.layout)
    sheet.edit(9, 3, "13912345678")
    if kind == "xlsx-openpyxl":  # threaded comments: the direct zip patch steps aside
        import yaml
        from test_xlsx import add_parts
        add_parts(sheet.path, {"xl/threadedComments/threadedComment1.xml": b"<ThreadedComments/>"})
        data = yaml.safe_load(sheet.layout.read_text(encoding="utf-8"))
        data["source"]["allow_feature_loss"] = True
        sheet.layout.write_text(yaml.safe_dump(data), encoding="utf-8")
    return sheet


@pytest.mark.parametrize("kind", ["xlsx", "xlsx-openpyxl", "csv"])
@pytest.mark.parametrize("pause", ["fsync=2", "checked=2", "swapped=2"])
def test_a_save_during_a_slow_write_back_is_never_overwritten(tmp_path, kind, pause):
    sheet = slow_save_sheet(tmp_path, kind)
    opened = sheet.path.read_bytes()  # a person opens the file in Excel...
    sheet.edit(9, 2, "Typed during the write")
    theirs = sheet.path.read_bytes()  # ...and edits it there, unsaved yet
    sheet.path.write_bytes(opened)
    child = start_sync(sheet.layout, pause)
    early = wait_for_pause(child, pause.split("=")[0])
    sheet.path.write_bytes(theirs)  # Excel saves its copy while sheetsync is mid-save
    out, err = child.communicate(timeout=120)
    err = "".join(early) + err
    caught = {"fsync": "while sheetsync was writing", "checked": "at the moment sheetsync wrote",
              "swapped": "just after sheetsync wrote"}[pause.split("=")[0]]  # before, at, after the rename
    assert child.returncode == 3 and f"saved by someone else {caught}" in out + err, (out, err)
    cells = sheet.cells()
    assert cells[(9, 2)][0] == "Typed during the write" and cells[(9, 3)][0] == "13912345678"
    assert not list(sheet.folder.glob(f".{sheet.path.name}.*.tmp"))
    assert store_state(sheet.db)["outbox"] != []  # the correction waits, not lost
    sync_once(sheet.layout)
    sync_once(sheet.layout)
    state = assert_consistent(sheet.db)
    assert state["records"]["C008"]["name"] == "Typed during the write"
    assert state["records"]["C008"]["phone"] == "+86 139 1234 5678"
    cells = sheet.cells()
    assert cells[(9, 2)][0] == "Typed during the write" and cells[(9, 3)][0] == "+86 139 1234 5678"
