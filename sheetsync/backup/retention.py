"""Retention: `forget` drops manifests a policy no longer keeps; `prune` deletes unreferenced objects.

The policy is Grist's default: the 5 newest, then the newest snapshot of each of the 25 most
recent earlier hours, 32 days, 12 ISO weeks and 96 months that have snapshots. Buckets count
snapshots that exist, not wall-clock time, so a machine that was off for a month loses nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Hashable, Sequence

from sheetsync.backup.objects import Manifest, Repository
from sheetsync.backup.snapshot import as_utc
from sheetsync.layout import RetentionPolicy  # noqa: F401 (a layout key, re-exported for backup callers)


_BUCKETS: list[tuple[str, Callable[[datetime], Hashable]]] = [
    ("hourly", lambda t: (t.date(), t.hour)),
    ("daily", lambda t: t.date()),
    ("weekly", lambda t: t.isocalendar()[:2]),
    ("monthly", lambda t: (t.year, t.month)),
]


def keep_flags(newest_first: Sequence[datetime], policy: RetentionPolicy) -> list[bool]:
    """For times sorted newest first (UTC): keep each one? Grist's walk: a time is kept when it
    opens a new hour/day/week/month compared with the last one kept for that bucket, until
    that bucket's count is used up; the newest time anchors every bucket."""
    if not newest_first:
        return []
    prev = {name: fn(newest_first[0]) for name, fn in _BUCKETS}
    used = dict.fromkeys(prev, 0)
    flags = []
    for index, moment in enumerate(newest_first):
        keep = index < policy.keep_last
        for name, fn in _BUCKETS:
            bucket = fn(moment)
            if used[name] < getattr(policy, name) and bucket != prev[name]:
                prev[name], used[name], keep = bucket, used[name] + 1, True
        flags.append(keep)
    return flags


def select_kept(timestamps: Sequence[datetime], policy: RetentionPolicy,
                now: datetime | None = None) -> set[datetime]:
    """The timestamps the policy keeps. Times after `now` (a clock that was wrong) are kept and
    do not take part, so they cannot push real snapshots out."""
    times = sorted({as_utc(t) for t in timestamps}, reverse=True)
    future = {t for t in times if now is not None and t > as_utc(now)}
    rest = [t for t in times if t not in future]
    return future | {t for t, keep in zip(rest, keep_flags(rest, policy)) if keep}


def forget(backup_dir: Path | str, policy: RetentionPolicy | None = None,
           now: datetime | None = None, *, layout: str | None = None) -> list[str]:
    """Delete the manifests the policy drops; returns their ids. Labelled snapshots are kept.
    Snapshots are grouped by their set of layouts, so each layout's sheet history is thinned on
    its own and a busy layout does not push out another's snapshots. `layout` limits the walk
    to snapshots of that layout, so one layout's policy never thins another's snapshots."""
    policy = policy or RetentionPolicy()
    repo = Repository(backup_dir)
    groups: dict[tuple[str, ...], list[Manifest]] = {}
    for m in repo.manifests():
        if layout is not None and layout not in m.layouts:
            continue
        groups.setdefault(tuple(m.layouts), []).append(m)
    dropped = []
    for manifests in groups.values():
        newest_first = sorted(manifests, key=lambda m: (m.created, m.id), reverse=True)
        if now is not None:
            newest_first = [m for m in newest_first if m.created_at <= as_utc(now)]
        flags = keep_flags([m.created_at for m in newest_first], policy)
        dropped += [m.id for m, keep in zip(newest_first, flags) if not keep and m.label is None]
    for snap_id in sorted(dropped):
        repo.manifest_path(snap_id).unlink(missing_ok=True)
    return sorted(dropped)


@dataclass(frozen=True)
class PruneReport:
    deleted: list[str]   # object names
    bytes_freed: int
    kept: int            # objects still referenced
    temp_removed: int    # leftovers of interrupted writes


def prune(backup_dir: Path | str, *, grace: timedelta = timedelta(minutes=15)) -> PruneReport:
    """Delete objects no manifest references. An object younger than `grace` is left alone: a
    snapshot being taken right now has written (or touched) it but not yet its manifest."""
    repo = Repository(backup_dir)
    needed = {ref.sha256 for m in repo.manifests() for ref in m.objects.values()}
    cutoff = time.time() - grace.total_seconds()
    deleted, freed, kept = [], 0, 0
    for name in list(repo.object_names()):
        if name in needed:
            kept += 1
            continue
        path = repo.object_path(name)
        try:
            st = path.stat()
            if st.st_mtime > cutoff:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        deleted.append(name)
        freed += st.st_size
    temp = 0
    if repo.tmp_dir.is_dir():
        for leftover in repo.tmp_dir.iterdir():
            if leftover.is_file() and leftover.stat().st_mtime <= cutoff:
                leftover.unlink(missing_ok=True)
                temp += 1
    return PruneReport(deleted, freed, kept, temp)
