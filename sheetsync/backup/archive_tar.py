"""Offline copies: one self-contained tar per snapshot (SHA256SUMS, manifest, objects) and import.

Objects go in as stored (still encrypted when the snapshot is). Import reads members by name,
never extracts paths, checks every checksum and every object before adding anything, and writes
the manifest last.
"""
from __future__ import annotations

import hashlib
import io
import re
import tarfile
from pathlib import Path

from sheetsync.backup.objects import (OBJECT_NAME, BackupCorrupt, BackupError,
                                      Manifest, Repository, unframe)

SUMS = "SHA256SUMS"
_MEMBER = re.compile(r"^(SHA256SUMS|snapshots/\d{8}T\d{6}Z-[0-9a-f]{8}\.json|"
                     r"objects/[0-9a-f]{2}/[0-9a-f]{62})$")


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, mtime
    tar.addfile(info, io.BytesIO(data))


def export(backup_dir: Path | str, snap_id: str, tar_path: Path | str) -> Path:
    """Write snapshot `snap_id` with every object it needs to `tar_path` (a new file). Each
    object's exact stored bytes are checked first (no key needed): an offline copy of a
    damaged object would only fail on the day it is needed."""
    repo = Repository(backup_dir)
    manifest = repo.load_manifest(snap_id)
    members = {f"snapshots/{snap_id}.json": manifest.to_json()}
    for name in sorted({ref.sha256 for ref in manifest.objects.values()}):
        path = repo.object_path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise BackupCorrupt(f"object {name} is missing", where=str(path), name=name) from None
        unframe(name, raw, where=str(path))
        members[f"objects/{name[:2]}/{name[2:]}"] = raw
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {member}\n"
                   for member, data in sorted(members.items()))
    tar_path = Path(tar_path)
    if tar_path.exists():
        raise BackupError("the export file already exists", where=str(tar_path),
                          hint="choose a new file name")
    mtime = int(manifest.created_at.timestamp())
    tmp = tar_path.with_name(f".{tar_path.name}.partial")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, SUMS, sums.encode("ascii"), mtime)
        for member, data in sorted(members.items()):
            _add(tar, member, data, mtime)
    tmp.replace(tar_path)
    return tar_path


def _read_members(tar_path: Path) -> dict[str, bytes]:
    """Regular files with expected names only; anything else refuses the whole file."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(tar_path, "r:") as tar:
            for info in tar:
                if not info.isfile() or not _MEMBER.match(info.name) or info.name in out:
                    raise BackupCorrupt(f"unexpected member {info.name!r} in the export",
                                        where=str(tar_path))
                out[info.name] = tar.extractfile(info).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupCorrupt(f"not a readable export: {exc}", where=str(tar_path)) from None
    return out


def _check_sums(members: dict[str, bytes], where: str) -> None:
    if SUMS not in members:
        raise BackupCorrupt("the export has no SHA256SUMS", where=where)
    listed: dict[str, str] = {}
    for line in members[SUMS].decode("ascii", "replace").splitlines():
        digest, _, member = line.partition("  ")
        listed[member] = digest
    files = set(members) - {SUMS}
    if set(listed) != files:
        odd = sorted(set(listed) ^ files)
        raise BackupCorrupt(f"SHA256SUMS does not list exactly the files present: {odd[:5]}",
                            where=where)
    for member in sorted(files):
        if hashlib.sha256(members[member]).hexdigest() != listed[member]:
            raise BackupCorrupt(f"{member} does not match SHA256SUMS", where=where,
                                name=member.replace("objects/", "").replace("/", ""))


def import_(backup_dir: Path | str, tar_path: Path | str, key: bytes | None = None) -> Manifest:
    """Add an exported snapshot to `backup_dir` after checking every checksum; every object is
    also rehashed (decrypted too when the snapshot is encrypted and `key` is given)."""
    where = str(tar_path)
    members = _read_members(Path(tar_path))
    _check_sums(members, where)
    manifests = [m for m in members if m.startswith("snapshots/")]
    if len(manifests) != 1:
        raise BackupCorrupt(f"the export holds {len(manifests)} manifests, not 1", where=where)
    manifest = Manifest.from_json(members[manifests[0]], where=f"{where}:{manifests[0]}")
    repo = Repository(backup_dir, key)
    can_open = not manifest.encrypted or key is not None
    if can_open:
        repo.check_key(manifest)
    objects = {}
    for ref in manifest.objects.values():
        name = ref.sha256
        raw = members.get(f"objects/{name[:2]}/{name[2:]}") if OBJECT_NAME.match(name) else None
        if raw is None:
            raise BackupCorrupt(f"the export lacks object {name}", where=where, name=name)
        unframe(name, raw, where=f"{where}:{name}")  # the exact bytes, even without the key
        if can_open and len(repo.unpack(name, raw, where=f"{where}:{name}")) != ref.size:
            raise BackupCorrupt(f"object {name} has the wrong size", where=where, name=name)
        objects[name] = raw
    return _add_to_repo(repo, manifest, objects, members[manifests[0]])


def _add_to_repo(repo: Repository, manifest: Manifest, objects: dict[str, bytes],
                 raw_manifest: bytes) -> Manifest:
    repo.ensure()
    existing = repo.manifest_path(manifest.id)
    if existing.exists() and existing.read_bytes() != raw_manifest:
        if repo.load_manifest(manifest.id).objects != manifest.objects:
            raise BackupError(f"a different snapshot {manifest.id} is already in the backup folder",
                              where=str(existing), hint="nothing was imported")
    for name, raw in sorted(objects.items()):
        path = repo.object_path(name)
        if not _sound(repo, manifest, name, path):
            repo.write_atomic(path, raw)  # missing, or damaged: the export's checked copy heals it
    if not existing.exists():
        repo.save_manifest(manifest)
    return manifest


def _sound(repo: Repository, manifest: Manifest, name: str, path: Path) -> bool:
    """Whether the object already in the folder is whole (without the key: its exact bytes)."""
    if repo.cipher is not None or not manifest.encrypted:
        return not repo.problem(name, path)
    try:
        unframe(name, path.read_bytes())
    except (OSError, BackupCorrupt):
        return False
    return True
