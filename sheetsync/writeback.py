"""Turn row decisions into patches: corrected values, sheetsync's marks, and clearing stale marks.

A mark is remembered in the store per (record, field), not per cell, so it follows the row when
people sort or insert rows; a cell sheetsync never marked is never touched.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from . import messages
from .connectors import NOTE_PREFIX
from .layout import Layout
from .model import Patch, SheetData, WriteValue, canonical_text
from .reconcile import RowDecision
from .store import Mark

if TYPE_CHECKING:
    from .sync_rows import SheetIndex

Planned = tuple[Patch, str | None, str | None]  # patch, ident, field


@dataclass(frozen=True)
class RowPlace:
    """Where a record's row is in the sheet read now, and what its cells hold."""

    row: int
    raw: Mapping[str, Any]          # field -> cell value as read
    anchor: tuple[int, str] | None  # (col, text) of the key cell


def note_text(kind: str, params: Mapping[str, Any], field: str, lang: str) -> str:
    code = params.get("code", kind)
    return NOTE_PREFIX + messages.render(code, {"field": field, **params}, lang)


def plan_row(decision: RowDecision, place: RowPlace, cols: Mapping[str, int], layout: Layout,
             existing: Mapping[tuple[str, str], Mark], notes_supported: bool) -> tuple[list[Planned], dict]:
    """Patches for one processed row and the marks the store should remember afterwards."""
    colours = layout.colours.model_dump()
    planned: list[Planned] = []
    new_marks: dict[tuple[str, str], Mark | None] = {}
    # the key (anchor) cell goes last: the row's other patches check the anchor before it changes
    anchor_col = place.anchor[0] if place.anchor else None
    for field, col in sorted(cols.items(), key=lambda fc: fc[1] == anchor_col):
        ident = decision.ident
        want = decision.marks.get(field)
        have = existing.get((ident, field))
        writes = field in decision.writes
        value: WriteValue = decision.writes.get(field)
        base = dict(row=place.row, col=col, expected=canonical_text(place.raw.get(field)), anchor=place.anchor)
        if want is not None and notes_supported:
            kind, params = want
            note = note_text(kind, params, field, layout.language)
            fill = colours[kind if kind in colours else "invalid"]
            if have is None or have.note != note or have.fill != fill or writes:
                planned.append((Patch(kind=kind, write=writes, value=value, fill=fill, note=note, **base),
                                ident, field))
            new_marks[(ident, field)] = Mark(kind, fill, note, have.prior_fill if have else None)
        elif writes:
            clear = have is not None and notes_supported
            planned.append((Patch(kind=want[0] if want else "corrected", write=True, value=value, clear=clear,
                                  restore_fill=have.prior_fill if clear else None, **base), ident, field))
            if clear:
                new_marks[(ident, field)] = None
        elif have is not None:
            planned.append((Patch(kind="clear", clear=True, restore_fill=have.prior_fill, **base), ident, field))
            new_marks[(ident, field)] = None
    return planned, new_marks


def clear_stray(sheet_marks: Mapping[tuple[int, int], str], known: set[tuple[int, int]]) -> list[Planned]:
    """Clear sheetsync notes the store does not know of (e.g. left by a crash or a restored copy)."""
    return [(Patch(kind="clear", clear=True, row=r, col=c), None, None)
            for (r, c) in sorted(sheet_marks) if (r, c) not in known]


def live_marks(marks: dict, sheet: "SheetIndex", col1: dict[str, int], data: SheetData, notes: bool) -> dict:
    """Store marks that are really on the sheet (a crash can leave the store believing otherwise)."""
    if not notes:
        return {}
    live = {}
    for (ident, fld), m in marks.items():
        row = sheet.rows.get(ident)
        if row is None or fld not in col1 or (row, col1[fld]) in data.marks:
            live[(ident, fld)] = m
    return live
