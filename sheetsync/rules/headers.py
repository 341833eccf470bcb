"""Map a sheet's header cells to layout fields, tolerant of case, spaces, full-width text and aliases.

People rename and reorder columns; a missing required column stops the run before anything is
written, and an ambiguous header (two columns that fold to the same name) is refused.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SourceError
from ..model import column_letter
from ..text import fold_header

if TYPE_CHECKING:  # rules sit below layout: the layout is handed in, never imported
    from ..layout import Column, Layout


def header_names(field: str, column: Column) -> list[str]:
    """The texts a field's column may carry: its `header:` (else its name) and its aliases. When
    `header:` is set the field's name is not one of them, so a field `c2` never grabs column "C2"."""
    return [column.header or field, *column.aliases]


def map_headers(header: tuple[str, ...], layout: Layout, *, where: str) -> dict[str, int]:
    """field -> 0-based column index. Raises SourceError naming the sheet and the column."""
    positions: dict[str, list[int]] = {}
    for index, text in enumerate(header):
        folded = fold_header(text)
        if folded:
            positions.setdefault(folded, []).append(index)
    mapping: dict[str, int] = {}
    missing: list[str] = []
    for field, column in layout.columns.items():
        hits = sorted({i for n in header_names(field, column) for i in positions.get(fold_header(n), [])})
        if len(hits) > 1:
            cols = ", ".join(f"{_letter(i)} ({header[i]!r})" for i in hits)
            raise SourceError(f"field {field!r} matches several columns: {cols}", where=where,
                              hint="rename one of the columns, or change the field's `header:`/`aliases:` in the layout")
        if hits:
            mapping[field] = hits[0]
        elif column.required or field in layout.key_fields:
            missing.append(f"{field!r} (header {column.header or field!r})")
    _refuse_shared_columns(mapping, header, where)
    if missing:
        shown = ", ".join(repr(h) for h in header if str(h).strip()) or "none"
        raise SourceError(f"required column(s) missing: {', '.join(missing)}", where=where,
                          hint=f"the header row has: {shown}; fix the sheet or the layout's `header:`/`aliases:`")
    return mapping


def _refuse_shared_columns(mapping: dict[str, int], header: tuple[str, ...], where: str) -> None:
    """Two fields on one column would store the same value twice, under two names."""
    owners: dict[int, list[str]] = {}
    for field, index in mapping.items():
        owners.setdefault(index, []).append(field)
    for index, fields in owners.items():
        if len(fields) > 1:
            raise SourceError(f"fields {', '.join(map(repr, fields))} all match column {_letter(index)} "
                              f"({header[index]!r})", where=where,
                              hint="headers match ignoring case, spaces, `_` and `-`: give each field "
                                   "its own `header:` text in the layout")


def _letter(index: int) -> str:
    return column_letter(index + 1)
