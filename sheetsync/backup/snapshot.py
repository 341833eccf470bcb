"""Take a snapshot (store + sheet values) and restore from one, always checked against the manifest.

Why per-table objects and no whole-file object: a `VACUUM INTO` copy is taken for consistency and
checked with integrity_check, then dumped canonically per table (store/dump.py) and each dump is
cut into content-defined parts of ~2048 rows. An unchanged table is the same objects as before;
a changed one costs the parts that changed (appends: the last part). Keeping the whole file too
would cost the whole store on every change (sizes: benchmarks/README.md, backup_bench.py).
Restore rebuilds the file, runs integrity_check and re-dumps it: every part must hash to the
manifest's object, so a restored store is proven equal to the one snapshotted.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from sheetsync.backup.objects import BackupCorrupt, BackupError, Manifest, ObjectRef, Repository
from sheetsync.store.dump import (TABLE_PREFIX, check_integrity, consistent_copy, iter_dump,
                                         part_names, rebuild_store, split_parts)
from sheetsync.fileio import fsync_dir

SHEET_PREFIX = "sheet/"
STORE_KINDS = ("store", "store-table")


@dataclass(frozen=True)
class SheetCopy:
    """One worksheet's values as sheetsync read them (cells as canonical text) and its own marks."""

    layout: str
    sheet: str
    header: list[str]
    rows: list[list[str]]
    marks: dict[str, str]  # "A1" -> the note sheetsync put there


def encode_sheet(sheet: SheetCopy) -> bytes:
    """Canonical JSONL: a header object (sorted keys), then one JSON array per row."""
    head = {"layout": sheet.layout, "sheet": sheet.sheet, "header": list(sheet.header),
            "marks": dict(sheet.marks)}
    lines = [json.dumps(head, sort_keys=True, ensure_ascii=False)]
    lines += [json.dumps(list(row), ensure_ascii=False, separators=(",", ":")) for row in sheet.rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def decode_sheet(data: bytes) -> SheetCopy:
    head, *rows = [line for line in data.decode("utf-8").split("\n") if line]
    h = json.loads(head)
    return SheetCopy(layout=h["layout"], sheet=h["sheet"], header=h["header"],
                     rows=[json.loads(r) for r in rows], marks=h["marks"])


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """Aware datetimes are converted; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else \
        moment.astimezone(timezone.utc)


def snapshot(store_path: Path | str, backup_dir: Path | str, *, sheets: Sequence[SheetCopy] = (),
             run_id: str | None = None, layouts: Sequence[str] = (), key: bytes | None = None,
             clock: Callable[[], datetime] = _utcnow) -> Manifest:
    """Snapshot the store file and `sheets`; returns the manifest (written last, so a crash
    part-way leaves only unreferenced objects that prune removes)."""
    repo = Repository(backup_dir, key)
    repo.ensure()
    now = as_utc(clock())
    snap_id = f"{now:%Y%m%dT%H%M%SZ}-{os.urandom(4).hex()}"
    copy = repo.tmp_dir / f"store-{snap_id}.sqlite"
    objects: dict[str, ObjectRef] = {}
    try:
        journal_mode = consistent_copy(Path(store_path), copy)
        store_bytes = copy.stat().st_size
        for name, kind, data in stored_parts(iter_dump(copy, journal_mode)):
            objects[name] = ObjectRef(repo.put(data), len(data), kind)
    finally:
        copy.unlink(missing_ok=True)
    for sheet in sheets:
        if SHEET_PREFIX + sheet.layout in objects:
            raise BackupError(f"two sheet copies for layout {sheet.layout!r}",
                              hint="pass one SheetCopy per layout")
        data = encode_sheet(sheet)
        objects[SHEET_PREFIX + sheet.layout] = ObjectRef(repo.put(data), len(data), "sheet")
    manifest = Manifest(id=snap_id, created=f"{now:%Y-%m-%dT%H:%M:%SZ}", run_id=run_id,
                        layouts=sorted(set(layouts) | {s.layout for s in sheets}), label=None,
                        objects=objects, encrypted=key is not None,
                        key_id=repo.cipher.key_id if repo.cipher else None,
                        store_bytes=store_bytes)
    repo.save_manifest(manifest)
    return manifest


def stored_parts(dump: Iterable[tuple[str, str, bytes]]) -> Iterator[tuple[str, str, bytes]]:
    """A store dump as stored: each table split into content-defined parts (store/dump.py)."""
    for name, kind, data in dump:
        if kind != "store-table":
            yield name, kind, data
            continue
        parts = split_parts(data)
        yield from ((n, kind, part) for n, part in zip(part_names(name, len(parts)), parts))


def table_refs(objects: dict[str, ObjectRef], name: str) -> list[ObjectRef]:
    """The ObjectRefs of all parts of table object `name` (TABLE_PREFIX + table), in order."""
    count = 1
    while part_names(name, count + 1)[-1] in objects:
        count += 1
    return [objects[n] for n in part_names(name, count)]


def load_object(repo: Repository, objects: dict[str, ObjectRef], name: str) -> bytes:
    """One object's plaintext; for a table, all its parts joined into the table's dump."""
    if name not in objects:
        raise BackupCorrupt(f"the manifest has no object {name}")
    if name.startswith(TABLE_PREFIX):
        return b"".join(repo.get(ref.sha256) for ref in table_refs(objects, name))
    return repo.get(objects[name].sha256)


def open_snapshot(backup_dir: Path | str, snap_id: str, key: bytes | None) -> tuple[Repository, Manifest]:
    """The repository and manifest, with the key checked before any object is read."""
    repo = Repository(backup_dir, key)
    manifest = repo.load_manifest(snap_id)
    repo.check_key(manifest)
    return repo, manifest


def list_snapshots(backup_dir: Path | str) -> list[Manifest]:
    """Every snapshot, oldest first."""
    return Repository(backup_dir).manifests()


def show(backup_dir: Path | str, snap_id: str) -> Manifest:
    return Repository(backup_dir).load_manifest(snap_id)


def label(backup_dir: Path | str, snap_id: str, name: str) -> Manifest:
    """Name a snapshot; retention keeps labelled snapshots until they are unlabelled."""
    if not name.strip() or len(name) > 200 or any(c in name for c in "\r\n\t"):
        raise BackupError(f"bad label {name!r}", hint="a label is one line of 1-200 characters")
    repo = Repository(backup_dir)
    manifest = replace(repo.load_manifest(snap_id), label=name.strip())
    repo.save_manifest(manifest)
    return manifest


def unlabel(backup_dir: Path | str, snap_id: str) -> Manifest:
    repo = Repository(backup_dir)
    manifest = replace(repo.load_manifest(snap_id), label=None)
    repo.save_manifest(manifest)
    return manifest


def restore_sheet(backup_dir: Path | str, snap_id: str, layout: str,
                  key: bytes | None = None) -> SheetCopy:
    """The sheet values of `layout` in a snapshot (checked); the engine writes them to a new tab."""
    repo, manifest = open_snapshot(backup_dir, snap_id, key)
    ref = manifest.objects.get(SHEET_PREFIX + layout)
    if ref is None:
        have = [n[len(SHEET_PREFIX):] for n in manifest.objects if n.startswith(SHEET_PREFIX)]
        raise BackupError(f"snapshot {snap_id} has no sheet for layout {layout!r}",
                          hint=f"it has: {', '.join(have) or 'no sheets'}")
    return decode_sheet(repo.get(ref.sha256))


def rebuild_checked(repo: Repository, manifest: Manifest, target: Path) -> None:
    """Rebuild the store into the new file `target`, then prove it: integrity_check, and every
    table re-dumped must hash to the manifest's object."""
    refs = {n: r for n, r in manifest.objects.items() if r.kind in STORE_KINDS}
    if not refs:
        raise BackupError(f"snapshot {manifest.id} holds no store copy")
    rebuild_store(lambda name: load_object(repo, refs, name), target)
    check_integrity(target, what=f"the store rebuilt from snapshot {manifest.id}")
    got = {name: repo.name_for(data, manifest.encrypted)
           for name, _kind, data in stored_parts(iter_dump(target))}
    differ = sorted(n for n in set(got) | set(refs)
                    if got.get(n) != (refs[n].sha256 if n in refs else None))
    if differ:
        raise BackupCorrupt(f"the store rebuilt from snapshot {manifest.id} differs in "
                            f"{', '.join(differ)}", where=str(target))


def restore_store(backup_dir: Path | str, snap_id: str, target: Path | str,
                  key: bytes | None = None, *, overwrite: bool = False) -> Path:
    """Write the snapshot's store to `target`, verified before it takes that name (os.replace).

    Replacing an existing file needs `overwrite=True` and a closed store: a leftover `-wal` file
    would be replayed onto the restored file, so it is refused.
    """
    repo, manifest = open_snapshot(backup_dir, snap_id, key)
    target = Path(target)
    if target.exists() and not overwrite:
        raise BackupError("the restore target already exists", where=str(target),
                          hint="restore to a new file, or pass overwrite=True with the store closed")
    wal = target.with_name(target.name + "-wal")
    if overwrite and wal.exists():
        raise BackupError("the store is open or was not closed cleanly (a -wal file exists)",
                          where=str(wal), hint="stop every sheetsync process, then retry")
    tmp = target.with_name(f".{target.name}.restore-{os.urandom(4).hex()}")
    try:
        rebuild_checked(repo, manifest, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if target.exists():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)
    return target
