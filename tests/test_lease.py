"""engine/lease.py on its own: one lease for every command, a dead holder's run closed by what it had
saved, and the store copies of killed restores removed (real folders, real dead processes).
(Breaking leases of dead, live and far processes: tests/test_run_support.py.)"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sheetsync.engine import lease
from sheetsync.errors import SourceBusy
from sheetsync.store import Store

HOST = socket.gethostname()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture()
def store(tmp_path: Path):
    with Store(tmp_path / "s.db") as s:
        yield s


def test_held_releases_however_the_body_ends_and_a_live_holder_makes_it_busy(store) -> None:
    with pytest.raises(RuntimeError):
        with lease.held(store, "people", "archive-1", hint="later"):
            assert store.lease_holder("people")[0] == f"{HOST}:{os.getpid()}:archive-1"
            raise RuntimeError("boom")
    assert store.lease_holder("people") is None
    assert store.acquire_lease("people", f"{HOST}:{os.getppid()}:run-live", 600)  # the parent: alive
    with pytest.raises(SourceBusy) as busy:
        lease.take(store, "people", "restore-x", hint="restore again later")
    assert "another run holds layout 'people'" in str(busy.value) and busy.value.hint == "restore again later"


def test_a_dead_sync_that_had_committed_is_finished_with_its_counts(store) -> None:
    store.start_run("r-committed", "people")
    with store.transaction():
        store.record_commit("r-committed", {"inserted": 2, "updated": 1})
    assert store.acquire_lease("people", f"{HOST}:{_dead_pid()}:r-committed", 600)
    assert lease.break_dead_lease(store, "people") is True
    run = store.run("r-committed")
    assert run["outcome"] == "ok" and run["finished"] is not None
    assert run["result"]["inserted"] == 2 and run["result"]["open_problems"] == 0
    assert "after saving its changes" in run["message"]
    assert lease.break_dead_lease(store, "people") is False  # nothing left to break


def test_a_dead_archive_leaves_no_run_to_close(store) -> None:
    assert store.acquire_lease("people", f"{HOST}:{_dead_pid()}:archive-20260101", 600)
    assert lease.break_dead_lease(store, "people") is False
    assert store.lease_holder("people") is None and store.runs() == []


def test_only_restore_folders_of_gone_processes_are_removed(store, tmp_path: Path) -> None:
    dead = tmp_path / f".sheetsync-restore-{HOST}-{_dead_pid()}-abc"
    live = tmp_path / f"{lease.restore_folder_prefix()}def"
    far = tmp_path / ".sheetsync-restore-other-host.example-1-ghi"
    legacy_old, legacy_new = tmp_path / ".sheetsync-restore-k2j4h5g6", tmp_path / ".sheetsync-restore-a1b2c3d4"
    for folder in (dead, live, far, legacy_old, legacy_new):
        folder.mkdir()
        (folder / "snapshot.db").write_bytes(b"x" * 1000)
    os.utime(legacy_old, (0, 0))
    os.utime(far, (0, 0))  # another machine's: its process cannot be checked from here, ever
    removed = lease.clean_restore_leftovers(store)
    assert sorted(removed) == sorted([dead, legacy_old])
    assert not dead.exists() and not legacy_old.exists()
    assert live.exists() and far.exists() and legacy_new.exists()


def test_an_in_memory_store_has_no_folder_to_clean() -> None:
    with Store() as memory:
        assert lease.clean_restore_leftovers(memory) == []


def test_one_run_id_shape_for_sync_archive_and_merge() -> None:
    # engine, archive and `duplicates --merge` each rolled their own id; one helper now
    now = 1_780_000_000.0  # 2026-05-28 UTC
    sync, archive = lease.new_run_id(now), lease.new_run_id(now, "archive")
    assert re.fullmatch(r"20260528T\d{6}-[0-9a-f]{8}", sync)
    assert re.fullmatch(r"archive-20260528T\d{6}-[0-9a-f]{8}", archive)
    assert lease.new_run_id(now, "merge").startswith("merge-20260528T")
    assert len({lease.new_run_id(now) for _ in range(50)}) == 50  # one second, many processes
