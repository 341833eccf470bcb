"""The backup folder: content-addressed objects and one JSON manifest per snapshot.

Layout: objects/ab/cdef... (zlib, optionally AES-GCM), snapshots/<id>.json, tmp/. Every file is
written to tmp/, fsynced and renamed into place, mode 0600 in 0700 folders, so a crash leaves
either the old state or the new one, and another user on the machine cannot read a backup.
An object file carries its own length and sha256 (see `frame`): bytes appended, cut or flipped
are found without the key, and `put` rewrites a damaged object instead of reusing it.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sheetsync.backup.crypto import ObjectCipher
from sheetsync.errors import BackupCorrupt, BackupError, BackupKeyError  # noqa: F401 (in errors.py now)
from sheetsync.fileio import fsync_dir

log = logging.getLogger("sheetsync.backup")
SNAPSHOT_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
OBJECT_NAME = re.compile(r"^[0-9a-f]{64}$")
MAGIC = b"SSO1"    # format 1: MAGIC, kind, body (read only; nothing checks its exact bytes)
MAGIC2 = b"SSO2"   # format 2: MAGIC2, kind, body length (8 bytes), sha256 of all that + name, body
PLAIN, SEALED = b"P", b"E"
_HEAD2 = 4 + 1 + 8 + 32
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class ObjectRef:
    """One object in a manifest. `sha256` is the object's name: sha256 of the plaintext, or its
    HMAC-SHA256 under the backup key when the snapshot is encrypted. `size` is plaintext bytes."""

    sha256: str
    size: int
    kind: str  # "store" (schema and settings), "store-table", "sheet"


@dataclass(frozen=True)
class Manifest:
    id: str
    created: str  # ISO 8601 UTC, seconds, e.g. 2026-11-23T10:30:00Z
    run_id: str | None
    layouts: list[str]
    label: str | None
    objects: dict[str, ObjectRef]  # "store/schema", "store/table/<t>", "sheet/<layout>"
    encrypted: bool
    key_id: str | None = None  # which key sealed it, so a wrong key is named as such
    store_bytes: int = field(default=0)  # size of the consistent store copy taken

    @property
    def created_at(self) -> datetime:
        return datetime.strptime(self.created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)

    def to_json(self) -> bytes:
        data = {"format": MANIFEST_FORMAT, **asdict(self)}
        return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str = "") -> "Manifest":
        try:
            data = json.loads(raw)
            if data.pop("format") != MANIFEST_FORMAT:
                raise ValueError("unknown manifest format")
            data["objects"] = {k: ObjectRef(**v) for k, v in data["objects"].items()}
            manifest = cls(**data)
            manifest.created_at  # noqa: B018 - validates the timestamp
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupCorrupt(f"unreadable snapshot manifest: {exc}", where=where) from None
        if not SNAPSHOT_ID.match(manifest.id):
            raise BackupCorrupt(f"bad snapshot id {manifest.id!r}", where=where)
        return manifest


class Repository:
    """One backup folder. With a key, objects are sealed and named by HMAC (see crypto.py)."""

    def __init__(self, root: Path | str, key: bytes | None = None) -> None:
        self.root = Path(root)
        self.cipher = ObjectCipher(key) if key is not None else None
        self.objects_dir = self.root / "objects"
        self.snapshots_dir = self.root / "snapshots"
        self.tmp_dir = self.root / "tmp"

    # -- files -------------------------------------------------------------------------------
    def ensure(self) -> None:
        for d in (self.root, self.objects_dir, self.snapshots_dir, self.tmp_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write_atomic(self, path: Path, data: bytes) -> None:
        """temp file in tmp/, fsync, os.replace, fsync the folder: all or nothing."""
        tmp = self.tmp_dir / f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise _write_error(exc, path) from None
        fsync_dir(path.parent)

    # -- objects -----------------------------------------------------------------------------
    def name_for(self, data: bytes, sealed: bool | None = None) -> str:
        """sha256 of plaintext objects; keyed HMAC of sealed ones (default: sealed iff keyed)."""
        if sealed is None:
            sealed = self.cipher is not None
        if not sealed:
            return hashlib.sha256(data).hexdigest()
        if self.cipher is None:
            raise BackupKeyError("this snapshot is encrypted and no backup key was given",
                                 hint="set SHEETSYNC_BACKUP_KEY or pass the key file")
        return self.cipher.name_for(data)

    def object_path(self, name: str) -> Path:
        if not OBJECT_NAME.match(name):
            raise BackupCorrupt(f"bad object name {name!r}", name=name)
        return self.objects_dir / name[:2] / name[2:]

    def put(self, data: bytes) -> str:
        """Store `data` once. An object already present is reused (and touched, see prune's grace)
        only after it is read back whole: a damaged one is written again, or the snapshot fails
        here, so a new snapshot never leans on a broken object."""
        name = self.name_for(data)
        path = self.object_path(name)
        problem = self.problem(name, path)
        if not problem:
            try:
                os.utime(path)
            except OSError as exc:
                raise _write_error(exc, path) from None
            return name
        if problem != "missing":
            log.warning("backup object %s is damaged (%s); writing it again", name, problem)
        packed = zlib.compress(data, 6)
        body = self.cipher.seal(name, packed) if self.cipher else packed
        try:
            self.write_atomic(path, frame(name, SEALED if self.cipher else PLAIN, body))
        except BackupError as exc:
            if problem == "missing":
                raise
            raise BackupCorrupt(f"object {name} is damaged ({problem}) and could not be written "
                                f"again: {exc.message}", where=str(path), name=name,
                                hint=exc.hint) from None
        return name

    def problem(self, name: str, path: Path) -> str:
        """"" when the object file at `path` reads back as exactly `name`; else what is wrong."""
        try:
            self.unpack(name, path.read_bytes(), where=str(path))
        except FileNotFoundError:
            return "missing"
        except (OSError, BackupError) as exc:  # a sealed file under a plain name is damage too
            return getattr(exc, "message", None) or str(exc)
        return ""

    def get(self, name: str) -> bytes:
        """The plaintext of object `name`, checked against its name; BackupCorrupt otherwise."""
        path = self.object_path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise BackupCorrupt(f"object {name} is missing", where=str(path), name=name) from None
        except OSError as exc:
            raise BackupCorrupt(f"object {name} cannot be read: {exc.strerror or exc}",
                                where=str(path), name=name) from None
        return self.unpack(name, raw, where=str(path))

    def unpack(self, name: str, raw: bytes, where: str = "") -> bytes:
        """Check the exact stored bytes, then decrypt, decompress and rehash one object file."""
        sealed, body = unframe(name, raw, where)
        if sealed:
            if self.cipher is None:
                raise BackupKeyError(f"object {name} is encrypted and no backup key was given",
                                     hint="set SHEETSYNC_BACKUP_KEY or pass the key file",
                                     where=where)
            body = self._open(name, body, where)
        data = _inflate(name, body, where)
        if self.name_for(data, sealed) != name:
            raise BackupCorrupt(f"object {name} does not match its checksum", where=where,
                                name=name)
        return data

    def _open(self, name: str, body: bytes, where: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self.cipher.open(name, body)  # type: ignore[union-attr]
        except InvalidTag:
            raise BackupCorrupt(f"object {name} fails authentication (damaged, or sealed with "
                                "another key)", where=where, name=name) from None

    def object_names(self) -> Iterator[str]:
        if not self.objects_dir.is_dir():
            return
        for sub in sorted(self.objects_dir.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    if OBJECT_NAME.match(sub.name + f.name):
                        yield sub.name + f.name

    # -- manifests ---------------------------------------------------------------------------
    def manifest_path(self, snap_id: str) -> Path:
        if not SNAPSHOT_ID.match(snap_id):
            raise BackupError(f"{snap_id!r} is not a snapshot id",
                              hint="ids look like 20261123T103000Z-1a2b3c4d; see `snapshots list`")
        return self.snapshots_dir / f"{snap_id}.json"

    def save_manifest(self, manifest: Manifest) -> None:
        self.write_atomic(self.manifest_path(manifest.id), manifest.to_json())

    def load_manifest(self, snap_id: str) -> Manifest:
        path = self.manifest_path(snap_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise BackupError(f"no snapshot {snap_id}", where=str(self.root),
                              hint="see `sheetsync snapshots list`") from None
        return Manifest.from_json(raw, where=str(path))

    def manifests(self) -> list[Manifest]:
        """Every snapshot, oldest first. An unreadable manifest raises: prune must not guess."""
        if not self.snapshots_dir.is_dir():
            return []
        found = [Manifest.from_json(p.read_bytes(), where=str(p))
                 for p in self.snapshots_dir.glob("*.json") if SNAPSHOT_ID.match(p.stem)]
        return sorted(found, key=lambda m: (m.created, m.id))

    def check_key(self, manifest: Manifest) -> None:
        """A clear error before any object is read: no key, or not the key it was sealed with."""
        if not manifest.encrypted:
            return
        if self.cipher is None:
            raise BackupKeyError(f"snapshot {manifest.id} is encrypted and no backup key was given",
                                 hint="set SHEETSYNC_BACKUP_KEY or pass the key file")
        if manifest.key_id != self.cipher.key_id:
            raise BackupKeyError(f"snapshot {manifest.id} was encrypted with a different key",
                                 hint="use the key that was set when the snapshot was taken "
                                      f"(its key id is {manifest.key_id})")


def frame(name: str, kind: bytes, body: bytes) -> bytes:
    """Format 2: the body's length and a sha256 over the header, the object's name and the body,
    so bytes appended, cut or flipped (or a file moved under another name) show without a key."""
    head = MAGIC2 + kind + len(body).to_bytes(8, "big")
    return head + _digest(name, head, body) + body


def _digest(name: str, head: bytes, body: bytes) -> bytes:
    h = hashlib.sha256(head)
    h.update(name.encode("ascii"))
    h.update(body)
    return h.digest()


def unframe(name: str, raw: bytes, where: str = "") -> tuple[bool, bytes]:
    """(sealed, body) of an object file, its exact bytes checked (format 2) or its header (1)."""
    kind = raw[4:5]
    if raw[:4] not in (MAGIC, MAGIC2) or kind not in (PLAIN, SEALED):
        raise BackupCorrupt(f"object {name} has no valid header", where=where, name=name)
    if raw[:4] == MAGIC:
        return kind == SEALED, raw[5:]
    body = raw[_HEAD2:]
    length = int.from_bytes(raw[5:13], "big")
    if len(body) != length:
        raise BackupCorrupt(f"object {name} is {len(raw)} bytes, not the {_HEAD2 + length} it was "
                            "written with (cut short, or bytes added)", where=where, name=name)
    if _digest(name, raw[:13], body) != raw[13:_HEAD2]:
        raise BackupCorrupt(f"object {name}'s stored bytes do not match their checksum",
                            where=where, name=name)
    return kind == SEALED, body


def _inflate(name: str, body: bytes, where: str) -> bytes:
    """zlib, strictly: a stream cut short or followed by other bytes is damage, not data."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(body)
    except zlib.error as exc:
        raise BackupCorrupt(f"object {name} is damaged ({exc})", where=where, name=name) from None
    if not inflater.eof or inflater.unused_data:
        what = "cut short" if not inflater.eof else \
            f"followed by {len(inflater.unused_data)} unexpected byte(s)"
        raise BackupCorrupt(f"object {name} is damaged (its data is {what})", where=where,
                            name=name)
    return data


def _write_error(exc: OSError, path: Path) -> BackupError:
    """A clear BackupError for a file the backup could not write (full disk, read-only, rights)."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    hint = (f"free space on the disk of {path.parent} (or set backup.dir to another disk)" if full
            else "check that the backup folder is on a writable disk and belongs to this user")
    return BackupError(f"cannot write the backup file: {exc.strerror or exc}", where=str(path),
                       hint=hint)
