"""The SQL helpers every part of the store uses: quoting an identifier or a text taken from a
layout, and cutting long key lists into IN (...) chunks SQLite accepts."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from ..errors import UsageError


def quote(identifier: str) -> str:
    """Quote an SQL identifier taken from a layout (field or table names are untrusted text)."""
    if "\x00" in identifier:
        raise UsageError(f"identifier {identifier!r} contains a NUL character")
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """Quote a text taken from a layout as an SQL string literal (a field name as a JSON key)."""
    if "\x00" in text:
        raise UsageError(f"name {text!r} contains a NUL character")
    return "'" + text.replace("'", "''") + "'"


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """`items` in slices of at most `size` (one IN (...) list of bound values each)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
