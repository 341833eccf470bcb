"""Turn row decisions into patches: corrected values, sheetsync's marks, and clearing stale marks.

A mark is remembered in the store per (record, field), not per cell, so it follows the row when
people sort or insert rows; a cell sheetsync never marked is never touched. A formula cell gets
a mark and a note, never a value.
"""
from __future__ import annotations

from dataclasses import dataclass, field as _field
from typing import TYPE_CHECKING, Any, Mapping

from .. import messages
from ..connectors import NOTE_PREFIX
from ..layout import Layout
from ..model import Patch, Problem, SheetData, WriteValue, canonical_text
from .reconcile import RowDecision
from ..store import Mark

if TYPE_CHECKING:
    from .identify import SheetIndex

Planned = tuple[Patch, str | None, str | None]  # patch, ident, field


@dataclass(frozen=True)
class RowPlace:
    """Where a record's row is in the sheet read now, and what its cells hold."""

    row: int
    raw: Mapping[str, Any]          # field -> cell value as read
    anchor: tuple[int, str] | None  # (col, text) of the key cell
    formulas: frozenset[int] = _field(default_factory=frozenset)  # columns computed by a formula


#: column type -> how its cells hold values (model.typed_value); the rest are text
VALUE_TYPES = {"integer": "number", "number": "number", "decimal": "number", "date": "date",
               "datetime": "datetime", "boolean": "boolean"}


def note_text(kind: str, params: Mapping[str, Any], field: str, lang: str) -> str:
    if kind == "formula":  # the problem's own words inside "computed cell: fix its inputs"
        inner_kind, inner = params["problem"], params["params"]
        detail = messages.render(inner.get("code", inner_kind), {"field": field, **inner}, lang)
        if inner.get("code") == "formula_uncalculated":  # its inputs are fine: it only needs Excel to save it
            return NOTE_PREFIX + detail
        return NOTE_PREFIX + messages.render("formula_cell", {"field": field}, lang) + "\n" + detail
    code = params.get("code", kind)
    return NOTE_PREFIX + messages.render(code, {"field": field, **params}, lang)


def plan_row(decision: RowDecision, place: RowPlace, cols: Mapping[str, int], layout: Layout,
             existing: Mapping[tuple[str, str], Mark], notes_supported: bool,
             stored: Mapping[tuple[str, str], Mark] | None = None) -> tuple[list[Planned], dict]:
    """Patches for one processed row and the marks the store should remember afterwards.

    `existing`: the store's marks that are on the sheet now; `stored`: all the store's marks
    (default: `existing`). A mark whose note a person edited no longer reads as sheetsync's,
    yet its fill is still sheetsync's: it is cleared all the same once its problem is gone."""
    stored = existing if stored is None else stored
    colours = layout.colours.model_dump()
    planned: list[Planned] = []
    new_marks: dict[tuple[str, str], Mark | None] = {}
    # the key (anchor) cell goes last: the row's other patches check the anchor before it changes
    anchor_col = place.anchor[0] if place.anchor else None
    for field, col in sorted(cols.items(), key=lambda fc: fc[1] == anchor_col):
        key = (decision.ident, field)
        patch, mark = _plan_cell(decision, field, col, place, layout, colours, existing.get(key),
                                 stored.get(key), notes_supported)
        if patch is not None:
            planned.append((patch, decision.ident, field))
        if mark is not _UNCHANGED:
            new_marks[key] = mark
    return planned, new_marks


_UNCHANGED: Any = object()


def _plan_cell(decision: RowDecision, field: str, col: int, place: RowPlace, layout: Layout,
               colours: Mapping[str, str], have: Mark | None, had: Mark | None,
               notes_supported: bool) -> tuple[Patch | None, Any]:
    """One cell's patch (or None) and its mark from now on (None: gone; _UNCHANGED: as it was)."""
    want = decision.marks.get(field)
    writes = field in decision.writes
    if col in place.formulas and (writes or (want is not None and want[0] == "invalid")):
        # a computed cell: mark it, never write over the person's formula
        decision.writes.pop(field, None)  # so the next base is the sheet as it stays
        if want is None or want[0] not in ("invalid", "conflict"):  # those are listed already
            decision.problems.append(Problem("formula_cell", field, {"field": field}))
        writes, want = False, _computed(want)
    value: WriteValue = decision.writes.get(field)
    base = dict(row=place.row, col=col, expected=canonical_text(place.raw.get(field)), anchor=place.anchor)
    vtype = VALUE_TYPES.get(layout.columns[field].type, "text") if field in layout.columns else None
    if want is not None and notes_supported:
        kind, params = want
        note = note_text(kind, params, field, layout.language)
        fill = colours[kind if kind in colours else "invalid"]
        patch = None
        if have is None or have.note != note or have.fill != fill or writes:
            patch = Patch(kind=_kind(kind), write=writes, value=value, fill=fill, note=note,
                          value_type=vtype if writes else None, **base)
        return patch, Mark(kind, fill, note, had.prior_fill if had else None)
    if writes:
        clear = had is not None and notes_supported
        return (Patch(kind=want[0] if want else "corrected", write=True, value=value, clear=clear,
                      restore_fill=had.prior_fill if clear else None, value_type=vtype,
                      **_removing(had if clear else None), **base), None if clear else _UNCHANGED)
    if had is not None:
        return Patch(kind="clear", clear=True, restore_fill=had.prior_fill, **_removing(had), **base), None
    return None, _UNCHANGED


def _computed(want: tuple[str, dict] | None) -> tuple[str, dict]:
    """The mark of a formula cell sheetsync would have changed: what it would have done, and
    that a person must fix the cells the formula reads (the note says so)."""
    kind, params = want or ("corrected", {})
    return "formula", {"problem": kind, "params": params}


def _kind(kind: str) -> Any:
    return "invalid" if kind == "formula" else kind


def _removing(mark: Mark | None) -> dict[str, Any]:
    """A clear names the mark it removes: its fill counts as sheetsync's (a layout's own colours
    too), its note text is cut out of the cell's note, whatever a person added around it."""
    return {"fill": mark.fill, "note": mark.note} if mark is not None else {}


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
