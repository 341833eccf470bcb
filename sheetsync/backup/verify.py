"""Read snapshots back: verify (rehash every object, rebuild and integrity_check each store copy)
and diff (records added, removed and changed per table and sheet between two snapshots)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sheetsync.backup.objects import (BackupCorrupt, BackupKeyError, Manifest, Repository,
                                      unframe)
from sheetsync.backup.snapshot import (SHEET_PREFIX, STORE_KINDS, load_object, open_snapshot,
                                       rebuild_checked, table_refs)
from sheetsync.store.dump import TABLE_PREFIX, row_keys
from sheetsync.errors import SheetsyncError


@dataclass(frozen=True)
class BrokenObject:
    name: str               # the object file's name (objects/ab/cdef...)
    problem: str
    snapshots: list[str]    # every snapshot that needs it


@dataclass(frozen=True)
class VerifyReport:
    snapshots: list[str]
    objects_checked: int
    bytes_checked: int
    broken: list[BrokenObject] = field(default_factory=list)
    store_problems: dict[str, str] = field(default_factory=dict)  # snapshot id -> problem
    skipped: dict[str, str] = field(default_factory=dict)         # snapshot id -> why (key)

    @property
    def ok(self) -> bool:
        return not (self.broken or self.store_problems or self.skipped)

    @property
    def exit_code(self) -> int:
        """0 all good; 1 corruption (a data problem); 2 something could not be checked (key)."""
        return 1 if self.broken or self.store_problems else 2 if self.skipped else 0

    def lines(self) -> list[str]:
        out = [f"checked {len(self.snapshots)} snapshot(s), {self.objects_checked} object(s), "
               f"{self.bytes_checked} bytes"]
        out += [f"BROKEN object {b.name}: {b.problem} (used by {', '.join(b.snapshots)})"
                for b in self.broken]
        out += [f"BROKEN store in {s}: {p}" for s, p in self.store_problems.items()]
        out += [f"NOT CHECKED {s}: {p}" for s, p in self.skipped.items()]
        return out + (["ok"] if self.ok else [])


def verify(backup_dir: Path | str, snap_id: str | None = None, key: bytes | None = None, *,
           deep: bool = True) -> VerifyReport:
    """Check one snapshot, or all when `snap_id` is None. `deep` also rebuilds each distinct store
    copy and runs integrity_check on it. Corruption is reported, not raised; a wrong key for
    the one snapshot asked for raises BackupKeyError. Snapshots whose key is not given are
    NOT CHECKED for content, but their objects' exact stored bytes still are."""
    repo = Repository(backup_dir, key)
    locked: list[Manifest] = []
    if snap_id is not None:
        chosen = [open_snapshot(backup_dir, snap_id, key)[1]]
        skipped: dict[str, str] = {}
    else:
        manifests = repo.manifests()
        chosen, skipped = _usable(repo, manifests)
        locked = [m for m in manifests if m.id in skipped]
    users, sizes = _users(chosen)
    broken, total = [], 0
    for name in sorted(users):
        problem = _check_object(repo, name, sizes[name])
        if problem:
            broken.append(BrokenObject(name, problem, sorted(set(users[name]))))
        else:
            total += sizes[name]
    broken += _check_locked(repo, locked, set(users))
    bad = {b.name for b in broken}
    stores = _check_stores(repo, chosen, bad) if deep else {}
    return VerifyReport([m.id for m in chosen], len(users), total, broken, stores, skipped)


def _users(manifests: list[Manifest]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """object name -> the snapshots that need it, and -> its plaintext size."""
    users: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for m in manifests:
        for ref in m.objects.values():
            users.setdefault(ref.sha256, []).append(m.id)
            sizes[ref.sha256] = ref.size
    return users, sizes


def _check_locked(repo: Repository, locked: list[Manifest], done: set[str]) -> list[BrokenObject]:
    """Objects of snapshots whose key is not at hand: their exact stored bytes can still be
    checked (length and sha256 of format 2), so damage shows before the key is needed."""
    users, _ = _users(locked)
    out = []
    for name in sorted(set(users) - done):
        try:
            unframe(name, repo.object_path(name).read_bytes(), where=str(repo.object_path(name)))
        except FileNotFoundError:
            out.append(BrokenObject(name, f"object {name} is missing", sorted(set(users[name]))))
        except (OSError, BackupCorrupt) as exc:
            out.append(BrokenObject(name, getattr(exc, "message", str(exc)),
                                    sorted(set(users[name]))))
    return out


def _usable(repo: Repository, manifests: list[Manifest]) -> tuple[list[Manifest], dict[str, str]]:
    chosen, skipped = [], {}
    for m in manifests:
        try:
            repo.check_key(m)
            chosen.append(m)
        except BackupKeyError as exc:
            skipped[m.id] = exc.message
    return chosen, skipped


def _check_object(repo: Repository, name: str, size: int) -> str:
    try:
        data = repo.get(name)
    except BackupCorrupt as exc:
        return exc.message
    return "" if len(data) == size else f"size {len(data)} is not the manifest's {size}"


def _check_stores(repo: Repository, chosen: list[Manifest], bad: set[str]) -> dict[str, str]:
    """Rebuild each distinct store copy once (many snapshots share all their table objects)."""
    problems: dict[str, str] = {}
    seen: dict[frozenset, str] = {}
    if chosen:  # rebuilds go to tmp/; checking an empty or missing folder creates nothing
        repo.ensure()
    for m in chosen:
        refs = frozenset((n, r.sha256) for n, r in m.objects.items() if r.kind in STORE_KINDS)
        if not refs:
            continue
        if refs not in seen:
            broken = sorted(n for n, sha in refs if sha in bad)
            seen[refs] = f"needs broken object(s) {', '.join(broken)}" if broken else \
                _rebuild_problem(repo, m)
        if seen[refs]:
            problems[m.id] = seen[refs]
    return problems


def _rebuild_problem(repo: Repository, manifest: Manifest) -> str:
    tmp = repo.tmp_dir / f"verify-{manifest.id}-{os.urandom(4).hex()}.sqlite"
    try:
        rebuild_checked(repo, manifest, tmp)
        return ""
    except SheetsyncError as exc:
        return exc.message
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)


def diff(backup_dir: Path | str, id1: str, id2: str,
         key: bytes | None = None) -> dict[str, dict[str, int]]:
    """{table: {"added", "removed", "changed"}} from snapshot id1 to id2, rows matched by rowid
    (or primary key); sheets appear as "sheet:<layout>" with rows matched by position."""
    repo, old = open_snapshot(backup_dir, id1, key)
    _, new = open_snapshot(backup_dir, id2, key)
    out: dict[str, dict[str, int]] = {}
    for name in sorted(set(old.objects) | set(new.objects)):
        if name.startswith(TABLE_PREFIX):
            label, keyed, refs = name[len(TABLE_PREFIX):], row_keys, table_refs
        elif name.startswith(SHEET_PREFIX):
            label, keyed, refs = "sheet:" + name[len(SHEET_PREFIX):], _sheet_rows, _one_ref
        else:
            continue  # the schema, and further parts of tables (read with their first part)
        a = refs(old.objects, name) if name in old.objects else None
        b = refs(new.objects, name) if name in new.objects else None
        if a == b:
            out[label] = {"added": 0, "removed": 0, "changed": 0}
            continue
        rows_a = keyed(load_object(repo, old.objects, name)) if a else {}
        rows_b = keyed(load_object(repo, new.objects, name)) if b else {}
        out[label] = {"added": len(rows_b.keys() - rows_a.keys()),
                      "removed": len(rows_a.keys() - rows_b.keys()),
                      "changed": sum(1 for k in rows_a.keys() & rows_b.keys()
                                     if rows_a[k] != rows_b[k])}
    return out


def _one_ref(objects: dict, name: str) -> list:
    return [objects[name]]


def _sheet_rows(data: bytes) -> dict[int, bytes]:
    lines = [line for line in data.split(b"\n") if line][1:]
    return dict(enumerate(lines))
