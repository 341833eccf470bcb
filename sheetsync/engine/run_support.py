"""The edges of a run: the crash-test seam, request counting,
the "source unchanged since sheetsync left it" shortcut and the snapshot after a run.

Kept apart from engine/__init__.py so the ten steps read in one screen; `ctx` is engine.RunContext.
"""
from __future__ import annotations

import bisect
import gc
import hashlib
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .. import __version__
from ..backup.runner import snapshot_after_run
from ..errors import SheetsyncError
from ..model import SheetData, SheetRow
from ..layout import LoadedLayout, store_path
from ..store.damage import damage, restore_hint

if TYPE_CHECKING:
    from . import RunContext

log = logging.getLogger("sheetsync.engine")


def env_hook() -> Callable[[str], None]:
    """SHEETSYNC_TEST_KILL_AT=step makes this process SIGKILL itself at that step: the crash
    tests' seam for a real process kill (nothing is flushed, nothing cleaned up)."""
    target = os.environ.get("SHEETSYNC_TEST_KILL_AT")
    if not target:
        return lambda step: None

    def kill(step: str) -> None:
        if step == target:
            os.kill(os.getpid(), signal.SIGKILL)
    return kill


def state_marks(ctx: "RunContext") -> dict[str, str]:
    """What must be equal for a run to skip comparing rows: the layout and the store table."""
    layout_json = ctx.layout.model_dump_json()
    return {"layout_hash": hashlib.sha256(f"{__version__}:{layout_json}".encode()).hexdigest(),
            "history_mark": str(ctx.store.history_mark(ctx.layout.table))}


def source_unchanged(ctx: "RunContext") -> bool:
    """True when the source is exactly as sheetsync last left it and nothing else moved: same
    fingerprint (a file hash, a Drive version), same layout, no store change, empty outbox,
    and no backup left to retry."""
    last = ctx.store.get_meta(ctx.name, "fingerprint")
    if not last or ctx.result.replayed or ctx.store.outbox(ctx.name) \
            or ctx.store.get_meta(ctx.name, BACKUP_FAILED):
        return False
    try:
        if any(ctx.store.get_meta(ctx.name, k) != v for k, v in state_marks(ctx).items()):
            return False
    except Exception:  # the table does not exist yet
        return False
    return bool(ctx.connector.unchanged_since(last))


def remember_source_state(ctx: "RunContext", fingerprint: str | None) -> None:
    """Record the source's fingerprint only when it is known to hold everything this run saw."""
    with ctx.store.transaction():
        ctx.store.set_meta(ctx.name, "fingerprint", fingerprint)
        for k, v in state_marks(ctx).items():
            ctx.store.set_meta(ctx.name, k, v)


BACKUP_FAILED = "backup_failed"  # meta: why the last snapshot failed; the next run takes one


def snapshot(ctx: "RunContext", data: SheetData) -> None:
    """Step 10: a snapshot of the store and the sheet (as it reads after the write-back) when the
    run changed something, or when the last one failed. A failed backup fails the run (exit 4,
    status and the `failed` alert say so) though the data is committed and the sheet patched:
    a team must not believe it has backups it has not. The next run tries again. A run that
    finished one killed after its commit takes the snapshot that one never took."""
    res = ctx.result
    pending = ctx.store.get_meta(ctx.name, BACKUP_FAILED)
    if not (res.inserted or res.updated or res.deleted or res.patches_applied or ctx.owed_snapshot
            or pending):
        return
    if ctx.store.path == ":memory:":
        return  # no file to copy (a test's store)
    try:  # the store this run wrote, which a caller may have passed in instead of the layout's
        snapshot_after_run(ctx.loaded, Path(ctx.store.path), replace(data, rows=as_written(data, ctx.landed)),
                           res.run_id, changed=True)
    except SheetsyncError as exc:
        res.outcome = "failed"
        res.message = ((res.message + "; " if res.message else "") + "backup failed (the data was "
                       f"synced, but no snapshot was taken): {exc}")
        log.error("backup failed for %s: %s", ctx.name, exc)
        with ctx.store.transaction():
            ctx.store.set_meta(ctx.name, BACKUP_FAILED, exc.message)
        return
    if pending:
        with ctx.store.transaction():
            ctx.store.set_meta(ctx.name, BACKUP_FAILED, None)


def damaged_store(loaded: LoadedLayout, exc: BaseException) -> SheetsyncError | None:
    """A StoreCorrupt when `exc` means the store file is damaged, its hint naming the newest
    snapshot to restore (the command to type), else None."""
    found = damage(exc, store_path(loaded))
    if found is None:
        return None
    newest = _newest_snapshot(loaded)
    if newest:
        found.hint = restore_hint(newest, loaded.name)
    return found


def _newest_snapshot(loaded: LoadedLayout) -> str | None:
    from ..backup import list_snapshots
    from ..backup.runner import backup_dir_for
    try:
        mine = [m for m in list_snapshots(backup_dir_for(loaded, store_path(loaded)))
                if loaded.name in m.layouts]
    except SheetsyncError:
        return None
    return mine[-1].id if mine else None


def as_written(data: SheetData, landed: tuple) -> tuple[SheetRow, ...]:
    """The rows as they read after the patches that landed: values written, rows removed (the
    rows below a removed one move up)."""
    written: dict[int, dict[int, Any]] = {}
    gone = sorted(p.row for p in landed if p.kind == "remove")
    for p in landed:
        if p.write:
            written.setdefault(p.row, {})[p.col] = p.value
    if not written and not gone:
        return data.rows
    rows = []
    dropped = set(gone)
    for r in data.rows:
        if r.number in dropped:
            continue
        cols = written.get(r.number)
        if cols:
            values = list(r.values) + [None] * max(0, max(cols) - len(r.values))
            for c, v in cols.items():
                values[c - 1] = v
            r = SheetRow(r.number, tuple(values))
        shift = bisect.bisect_left(gone, r.number)
        rows.append(SheetRow(r.number - shift, r.values) if shift else r)
    return tuple(rows)


def pause_collector() -> Callable[[], None]:
    """Pause Python's cyclic garbage collector for one run; returns the call that puts it back
    as it was (a caller that keeps it off keeps it off). A run builds millions of small objects
    that all live until its end, and the collector would walk them again and again for nothing:
    measured back to back (benchmarks/README.md), a 100k-row first sync took a median 1.5 s
    (CSV) and 0.4 s (xlsx) longer with it on, and raising its threshold instead did not help."""
    was_on = gc.isenabled()
    gc.disable()
    return gc.enable if was_on else (lambda: None)
