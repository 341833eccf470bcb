"""Backup encryption: one urlsafe-base64 32-byte key, AES-GCM per object, keyed object names.

Object names under a key are HMAC-SHA256 of the plaintext (not plain sha256), so an encrypted
backup folder does not reveal whether it holds some known content. Sub-keys come from HKDF.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path
from typing import Mapping

from sheetsync.errors import MissingExtra, UsageError

ENV_KEY = "SHEETSYNC_BACKUP_KEY"
ENV_KEY_FILE = "SHEETSYNC_BACKUP_KEY_FILE"
NONCE_BYTES = 12
_KEY_HINT = ("give a urlsafe-base64 32-byte key (44 characters); make one with "
             "`sheetsync snapshots keygen --out FILE`")


def generate_key() -> str:
    """A new random key as text for SHEETSYNC_BACKUP_KEY or a key file (same shape as Fernet's)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def write_key_file(path: Path | str) -> Path:
    """A new key in a new file (mode 0600, fsynced). An existing file is never replaced: the
    key in it may be all that opens older encrypted backups."""
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError("the key file already exists; it was not changed", where=str(target),
                         hint="snapshots sealed with it need it: pick another file name") from None
    except OSError as exc:
        raise UsageError(f"cannot create the key file: {exc.strerror}", where=str(target),
                         hint="check the folder exists and is writable") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(generate_key() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return target


def decode_key(text: str, *, where: str = "") -> bytes:
    """The raw 32 bytes of a urlsafe-base64 key; a clear UsageError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != 32:
        raise UsageError("the backup key is not a urlsafe-base64 32-byte key", hint=_KEY_HINT,
                         where=where)
    return raw


def load_key(env: Mapping[str, str] = os.environ, key_file: Path | str | None = None) -> bytes | None:
    """The backup key from `key_file`, else SHEETSYNC_BACKUP_KEY, else SHEETSYNC_BACKUP_KEY_FILE.

    None means no key is configured (backups are not encrypted).
    """
    path = key_file or env.get(ENV_KEY_FILE)
    if not key_file and env.get(ENV_KEY):
        return decode_key(env[ENV_KEY], where=ENV_KEY)
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the backup key file: {exc}", hint=_KEY_HINT,
                         where=str(path)) from None
    return decode_key(text, where=str(path))


def check_key(key: bytes) -> bytes:
    """Accept only raw 32-byte keys, so a base64 text passed by mistake fails loudly."""
    if not isinstance(key, bytes) or len(key) != 32:
        raise UsageError("a backup key must be 32 raw bytes (use load_key to decode the text form)",
                         hint=_KEY_HINT)
    return key


def _hkdf(key: bytes, info: bytes) -> bytes:
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    except ImportError:  # pragma: no cover - cryptography is a declared dependency of backups
        raise MissingExtra("encrypted backups need the cryptography package",
                           hint="pip install cryptography") from None
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


class ObjectCipher:
    """Names, seals and opens objects under one backup key (sub-keys: name, encryption, key id)."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        master = check_key(key)
        self._name_key = _hkdf(master, b"sheetsync backup v1 object-name")
        self._aead = AESGCM(_hkdf(master, b"sheetsync backup v1 object-encryption"))
        id_key = _hkdf(master, b"sheetsync backup v1 key-id")
        #: Stored in each manifest so that a wrong key is told apart from a corrupt object.
        self.key_id = hmac.new(id_key, b"key-id", hashlib.sha256).hexdigest()[:16]

    def name_for(self, data: bytes) -> str:
        return hmac.new(self._name_key, data, hashlib.sha256).hexdigest()

    def seal(self, name: str, data: bytes) -> bytes:
        """nonce || AES-GCM(data) with the object name as associated data (no swapping files)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, name.encode("ascii"))

    def open(self, name: str, blob: bytes) -> bytes:
        """The plaintext; raises cryptography's InvalidTag when the blob or its name was altered."""
        from cryptography.exceptions import InvalidTag

        if len(blob) < NONCE_BYTES + 16:
            raise InvalidTag()
        return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], name.encode("ascii"))
