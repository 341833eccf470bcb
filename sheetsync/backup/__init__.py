"""Backups of the store file and sheet values: snapshot, verify, diff, restore, retention, export.

A library working on a SQLite file and plain sheet values, independent of the engine: the engine
calls `snapshot()` then `forget()` and `prune()` after each run that changed something.
"""
from __future__ import annotations

from sheetsync.backup.archive_tar import export, import_
from sheetsync.backup.crypto import generate_key, load_key
from sheetsync.backup.objects import (BackupCorrupt, BackupError, BackupKeyError, Manifest,
                                      ObjectRef)
from sheetsync.backup.retention import PruneReport, RetentionPolicy, forget, prune, select_kept
from sheetsync.backup.snapshot import (SheetCopy, label, list_snapshots, restore_sheet,
                                       restore_store, show, snapshot, unlabel)
from sheetsync.backup.verify import BrokenObject, VerifyReport, diff, verify

__all__ = [
    "BackupCorrupt", "BackupError", "BackupKeyError", "BrokenObject", "Manifest", "ObjectRef",
    "PruneReport", "RetentionPolicy", "SheetCopy", "VerifyReport", "diff", "export",
    "forget", "generate_key", "import_", "label", "list_snapshots", "load_key", "prune",
    "restore_sheet", "restore_store", "select_kept", "show", "snapshot", "unlabel", "verify",
]
