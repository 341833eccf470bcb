"""Store methods for fuzzy dedupe (issue 4): block-key index, fitted model, admin pair decisions.

A mixin of Store, kept beside it so store.py stays readable; like store.py, the only place these
tables are touched.
"""
from __future__ import annotations


class DedupeStoreMixin:
    """Mixed into Store; uses self.db (sqlite3 connection) and self.transaction()."""
