"""Recovering a store file that is damaged or gone: the damaged file (and its -wal and -shm) is
set aside, never deleted, and the whole store is rebuilt from a snapshot, checked before it
takes the store's name. Never opens the damaged file for writing."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sheetsync.backup.objects import Manifest, Repository
from sheetsync.backup.snapshot import restore_store
from sheetsync.fileio import fsync_dir
from sheetsync.store.damage import probe


@dataclass(frozen=True)
class Recovered:
    store: Path
    snapshot: str
    problem: str               # what was wrong with the store ("missing" when there was none)
    set_aside: list[Path]      # where the damaged file and its companions went


def needs_recovery(store: Path) -> str:
    """"" for a sound store; "missing", or what SQLite found wrong (read-only look)."""
    if not store.exists():
        return "missing"
    return probe(store)


def recover_store(backup_dir: Path | str, snap_id: str, store: Path, key: bytes | None,
                  problem: str) -> Recovered:
    """Set the damaged store aside as NAME.damaged-TIME, then restore snapshot `snap_id` whole
    in its place (every table: records, history, base state, other layouts' tables)."""
    mode = stat.S_IMODE(store.stat().st_mode) if store.exists() else None
    aside = set_aside(store)
    restore_store(backup_dir, snap_id, store, key)
    if mode is not None:  # the rebuilt store keeps the old file's mode (a 0600 store stays private)
        os.chmod(store, mode)
    _close_snapshot_run(store, Repository(backup_dir).load_manifest(snap_id))
    return Recovered(store, snap_id, problem, aside)


def _close_snapshot_run(store: Path, manifest: Manifest) -> None:
    """A snapshot is taken while its run still holds the lease and is not yet recorded as
    finished: in the restored file, free the lease and close that run with a plain message."""
    from sheetsync.store import Store

    with Store(store) as restored, restored.transaction():
        for layout in manifest.layouts:
            held = restored.lease_holder(layout)
            if held:
                restored.release_lease(layout, held[0])
        if manifest.run_id:
            restored.abandon_run(manifest.run_id, f"the store was restored from snapshot "
                                 f"{manifest.id}, taken as this run ended; the next sync goes on")


def set_aside(store: Path) -> list[Path]:
    """Rename the store and its -wal/-shm to NAME.damaged-<UTC time>[-wal|-shm]: a -wal left
    beside a new file would be replayed onto it, and the damaged copy stays for a closer look."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = store.with_name(f"{store.name}.damaged-{stamp}")
    if any(Path(f"{base}{s}").exists() for s in ("", "-wal", "-shm")):
        base = base.with_name(f"{base.name}-{os.urandom(3).hex()}")
    moved = []
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{store}{suffix}")
        if src.exists():
            dst = Path(f"{base}{suffix}")
            os.replace(src, dst)
            moved.append(dst)
    if moved:
        fsync_dir(store.parent)
    return moved
