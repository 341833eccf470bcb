"""The save of a local file a person may be editing too: temp file, fsync, a rename onto the real
file (through a symlink, keeping its mode), and checks around the rename so a save a person made
meanwhile is never overwritten.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import os
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import SourceBusy, SourceChanged
from ..fileio import fsync_dir

#: SHEETSYNC_TEST_PAUSE_AT="fsync=3": sleep that many seconds at that step of a save (fsync, checked,
#: swapped, renamed; the
#: tests' seam for a slow network share or synced folder, where an fsync takes seconds)
PAUSE_ENV = "SHEETSYNC_TEST_PAUSE_AT"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def real_path(path: Path) -> Path:
    """The file a path names: a symlink's target (followed to the end), else the path itself.

    Writing onto the link would replace it with a regular file, and the shared file it pointed
    at would never again be read."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def test_pause(step: str) -> None:
    """Sleep at `step` when PAUSE_ENV names it (never set outside the tests), saying so on stderr
    so the test knows when to act."""
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    for item in spec.split(","):
        name, _, seconds = item.partition("=")
        if name.strip() == step:
            print(f"sheetsync test pause: {step}", file=sys.stderr, flush=True)
            time.sleep(float(seconds or 1))


def atomic_write(path: Path, write: Callable[[object], None], expected: bytes | None = None) -> str:
    """Write via a temp file beside the real file, fsync, rename onto it, keep its mode.

    Readers never see a half-written file and a crash leaves the original intact. With
    `expected` (the bytes the patches were made from) the file is checked again just before the
    rename and the file displaced by it is checked after, so a person's save made meanwhile
    stays and SourceChanged says nothing was written. Returns the fingerprint of the bytes written.
    """
    path = real_path(path)
    mode = _writable_mode(path)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _not_writable(path, exc) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            test_pause("fsync")
            os.fsync(fh.fileno())
        # the mode is right before anyone can open the new file: the old file's, or (a new file:
        # a report, an archive copy, a restored copy, all meant for people) what the umask gives
        os.chmod(tmp, new_file_mode() if mode is None else mode)
        written = fingerprint(tmp.read_bytes())
        _replace(tmp, path, expected)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _not_writable(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    if expected is not None:
        test_pause("renamed")
        if not _holds(path, written):
            raise _changed(path, "just after sheetsync wrote it; the corrections are written again next run")
    return written


def _replace(tmp: Path, path: Path, expected: bytes | None) -> None:
    """Put tmp in path's place. With `expected`: only over exactly those bytes. Where the system
    can swap two names atomically (Linux), the file displaced is checked after the swap and put
    back if a person saved in between; elsewhere the last check is just before os.replace."""
    if expected is None:
        os.replace(tmp, path)
        return
    if not _holds(path, fingerprint(expected)):
        raise _changed(path, "while sheetsync was writing; nothing was written")
    test_pause("checked")
    if not _exchange(tmp, path):
        os.replace(tmp, path)
        return
    test_pause("swapped")
    if not _holds(tmp, fingerprint(expected)):  # tmp now names the file just displaced
        if not _exchange(tmp, path):  # the person's save back in place; ours goes with tmp
            kept = path.with_name(f"{path.name}.saved-during-sync")  # never seen: keep it, never lose it
            os.replace(tmp, kept)
            raise _changed(path, f"at the moment sheetsync wrote; their save is kept as {kept.name}")
        raise _changed(path, "at the moment sheetsync wrote; their save was kept and nothing was written")
    with contextlib.suppress(OSError):  # the old version's name; the write itself has landed
        tmp.unlink()


def _holds(path: Path, digest: str) -> bool:
    try:
        return fingerprint(path.read_bytes()) == digest
    except OSError:
        return False


def _changed(path: Path, when: str) -> SourceChanged:
    return SourceChanged(f"the file was saved by someone else {when}", where=str(path),
                         hint="their save is kept; the next run reads it and writes what is still needed")


@functools.lru_cache(maxsize=1)
def _renameat2() -> Any:
    """libc's renameat2 (glibc 2.28+), or None (macOS, Windows, musl before 1.2.5)."""
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two names in one step (Linux renameat2 RENAME_EXCHANGE); False where that failed
    (an old kernel, a network share, macOS), and then nothing moved."""
    fn = _renameat2()
    return fn is not None and fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def new_file_mode() -> int:
    """0666 less the process's umask, the mode open() gives a new file (mkstemp's is 0600).
    Read from /proc where it can be (changing the umask to read it is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _writable_mode(path: Path) -> int | None:
    """The file's permission bits (None: no file yet); a read-only file is refused."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        # a rename would replace it anyway (and root may write anything): honour the owner's intent
        raise SourceBusy("the file is read-only", where=str(path),
                         hint="make it writable (chmod u+w) to let sheetsync write corrections; "
                              "nothing was written and the next run tries again")
    return mode


def _not_writable(path: Path, exc: OSError) -> SourceBusy:
    """A read-only folder or a full disk: nothing was written, the outbox waits (exit 3)."""
    why = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
           errno.EACCES: "permission denied", errno.EPERM: "permission denied"}.get(exc.errno, exc.strerror or str(exc))
    return SourceBusy(f"cannot write the file: {why}", where=str(path),
                      hint="make the file and its folder writable (or free some space); nothing was written "
                           "and the next run writes the corrections")
