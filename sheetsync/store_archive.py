"""Store methods for archiving stale records (issue 5): archive tables and moves, with history.

A mixin of Store, kept beside it so store.py stays readable.
"""
from __future__ import annotations


class ArchiveStoreMixin:
    """Mixed into Store; uses self.db (sqlite3 connection) and self.transaction()."""
