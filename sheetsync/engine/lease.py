"""The one lease every command that changes a layout's data takes (sync, archive, snapshots
restore --replace), and what a killed holder leaves behind: its lease, its unfinished run, its
restore folder. A dead holder's leftovers are cleared by the next command, never waited out.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..errors import SourceBusy
from ..report import quality_stats
from ..store import Store

log = logging.getLogger("sheetsync.lease")
LEASE_SECONDS = 15 * 60
RESTORE_PREFIX = ".sheetsync-restore-"
#: a restore folder of an older sheetsync names no process: it is left alone this long
OLD_FOLDER_SECONDS = 60 * 60


def new_run_id(now: float, kind: str = "") -> str:
    """The one shape of a run id (sync, archive, merge): `[kind-]YYYYMMDDTHHMMSS-xxxxxxxx`, UTC
    time first so a sync's ids sort by start, eight random hex digits so two runs in one second
    of two processes never share one (the lease holder and the history rows name it)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{kind}-{stamp}-{uuid.uuid4().hex[:8]}" if kind else f"{stamp}-{uuid.uuid4().hex[:8]}"


def holder_of(run_id: str) -> str:
    """`host:pid:run_id`: enough for another process of this machine to tell whether it lives."""
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"


def _alive(host: str, pid: str) -> bool:
    """False only for a process of this machine known to be gone (another machine's: alive)."""
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def break_dead_lease(store: Store, name: str) -> bool:
    """Release a lease whose holder died or expired, and close the sync run it left unfinished
    (an archive or restore leaves none). True when that run was finished (killed after its
    commit): the caller owes its snapshot."""
    held = store.lease_holder(name)
    if not held:
        return False
    holder, expires = held
    host, _, rest = holder.partition(":")
    pid, _, run_id = rest.partition(":")
    if expires > store.clock() and _alive(host, pid):
        return False
    log.warning("layout %s: breaking the lease of %s, which is no longer running", name, holder)
    store.release_lease(name, holder)
    return close_dead_run(store, run_id)


def close_dead_run(store: Store, run_id: str) -> bool:
    """Close the run a process that died left unfinished. Killed after its commit, it is finished
    as it would have ended (its counts, its outcome by the open problems; the next run replays its
    outbox and writes the report tab); killed before, it failed. True when it was finished."""
    with store.transaction():
        run = store.run(run_id)
        if run is None or run["finished"] is not None:
            return False
        if run["result"] is None:
            store.abandon_run(run_id, "the sync process died or hung before finishing, before it saved anything")
            return False
        problems = store.problems(run["layout"])
        store.finish_run(run_id, "problems" if problems else "ok",
                         {**run["result"], **quality_stats(store, run["layout"], problems)},
                         "the sync process died after saving its changes; a later run finished its work")
    return True


def take(store: Store, name: str, run_id: str, *, hint: str) -> str:
    """The layout's lease for this process (a dead holder's is broken first); returns the holder.
    SourceBusy (exit 3) while a live process holds it."""
    break_dead_lease(store, name)
    holder = holder_of(run_id)
    if not store.acquire_lease(name, holder, LEASE_SECONDS):
        who = store.lease_holder(name)
        raise SourceBusy(f"another run holds layout {name!r} ({who[0] if who else '?'})", hint=hint)
    return holder


@contextmanager
def held(store: Store, name: str, run_id: str, *, hint: str) -> Iterator[str]:
    """`with held(...)`: the lease for the body, released however it ends."""
    holder = take(store, name, run_id, hint=hint)
    try:
        yield holder
    finally:
        store.release_lease(name, holder)


def restore_folder_prefix() -> str:
    """The prefix of this process's temporary restore folders: it names the process, so another
    one can tell a dead restore's leftover from a restore still running."""
    return f"{RESTORE_PREFIX}{socket.gethostname()}-{os.getpid()}-"


def clean_restore_leftovers(store: Store, now: Callable[[], float] = time.time) -> list[Path]:
    """Remove the restore folders beside the store whose process is gone (a killed restore leaves
    a store copy, often tens of MB); returns what was removed. A live process's folder stays, and
    another machine's or an older sheetsync's until it is an hour old."""
    removed: list[Path] = []
    if store.path == ":memory:":
        return removed
    folder = Path(store.path).parent
    try:
        entries = [p for p in folder.iterdir() if p.name.startswith(RESTORE_PREFIX) and p.is_dir()]
    except OSError:
        return removed
    host = socket.gethostname()
    for path in entries:
        rest = path.name[len(RESTORE_PREFIX):]
        if rest.startswith(host + "-"):
            pid = rest[len(host) + 1:].partition("-")[0]
            dead = not _alive(host, pid)
        else:  # an older sheetsync's folder, or another machine's: only when long abandoned
            dead = "-" not in rest and _age(path, now) > OLD_FOLDER_SECONDS
        if dead:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            log.info("removed %s, left by a restore that did not finish", path)
    return removed


def _age(path: Path, now: Callable[[], float]) -> float:
    try:
        return now() - path.stat().st_mtime
    except OSError:
        return 0.0
