"""Durable file writes shared by the connectors and the backup: fsync a folder after a rename.

A rename is only durable once the folder entry is on disk; a crash right after os.replace could
otherwise bring the old file back.
"""
from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """fsync a folder so a rename in it survives a crash (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its renames are durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
