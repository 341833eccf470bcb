"""Map a sheet's header cells to layout fields, tolerant of case, spaces, full-width text and aliases.

People rename and reorder columns; a missing required column stops the run before anything is
written, and an ambiguous header (two columns that fold to the same name) is refused.
"""
from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from ..errors import SourceError
from ..model import column_letter

if TYPE_CHECKING:  # rules sit below layout: the layout is handed in, never imported
    from ..layout import Layout

_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff\u00ad\u202a-\u202e\u2066-\u2069]")


def fold(text: object) -> str:
    """The comparable form of a header: NFKC, no invisible characters, lower case, no spaces/_/-."""
    s = unicodedata.normalize("NFKC", str(text or ""))
    s = _INVISIBLE.sub("", s).casefold()
    return re.sub(r"[\s_\-]+", "", s)


def map_headers(header: tuple[str, ...], layout: Layout, *, where: str) -> dict[str, int]:
    """field -> 0-based column index. Raises SourceError naming the sheet and the column."""
    positions: dict[str, list[int]] = {}
    for index, text in enumerate(header):
        folded = fold(text)
        if folded:
            positions.setdefault(folded, []).append(index)
    mapping: dict[str, int] = {}
    missing: list[str] = []
    for field, column in layout.columns.items():
        names = [column.header or field, field, *column.aliases]
        hits = sorted({i for n in names for i in positions.get(fold(n), [])})
        if len(hits) > 1:
            cols = ", ".join(f"{_letter(i)} ({header[i]!r})" for i in hits)
            raise SourceError(f"field {field!r} matches several columns: {cols}", where=where,
                              hint="rename one of the columns, or set `header:` for the field in the layout")
        if hits:
            mapping[field] = hits[0]
        elif column.required or field in layout.key_fields:
            missing.append(f"{field!r} (header {column.header or field!r})")
    if missing:
        shown = ", ".join(repr(h) for h in header if str(h).strip()) or "none"
        raise SourceError(f"required column(s) missing: {', '.join(missing)}", where=where,
                          hint=f"the header row has: {shown}; fix the sheet or the layout's `header:`/`aliases:`")
    return mapping


def _letter(index: int) -> str:
    return column_letter(index + 1)
