"""Layout columns missing from the sheet's header (renamed or deleted): never read as empty cells.

The run goes on with those fields left out (the stored values stay as they are) and carries one
sheet-level problem per column, so a rename never empties a field in the store.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import SourceError
from ..model import Problem
from .reconcile import AS_STORED

if TYPE_CHECKING:
    from ..layout import Layout
    from . import RunContext

#: the ident of problems that belong to the whole sheet (as delete_guard's)
SHEET = ""
CODE = "column_missing"


def leave_out(ctx: "RunContext", cols: dict[str, int], where: str) -> None:
    """Narrow the run's layout to the fields the header has, and note a problem for each other one.
    A row scope on a missing field cannot be checked: that stops the run, nothing written."""
    layout = ctx.layout
    missing = [f for f in layout.columns if f not in cols]
    if not missing:
        return
    scope = layout.access.row_scope
    if scope is not None and scope.field in missing:
        raise SourceError(f"column {_header(layout, scope.field)!r} (field {scope.field!r}) of the row scope "
                          "is missing", where=where,
                          hint="rename the header back, or set `header:` for the field in the layout")
    ctx.missing = [Problem(CODE, f, {"field": f, "header": _header(layout, f)}) for f in missing]
    ctx.loaded = ctx.loaded.model_copy(update={"layout": narrowed(layout, set(missing))})
    names = ", ".join(_header(layout, f) for f in missing)
    ctx.result.message = (f"column(s) {names} not found in the sheet: their stored values are kept; "
                          "rename the header back or set header: in the layout")


def narrowed(layout: "Layout", gone: set[str]) -> "Layout":
    """The layout without the fields in `gone`, nor the rules and dedupe keys that read them."""
    columns = {f: (c if c.required_if is None or c.required_if.field not in gone
                   else c.model_copy(update={"required_if": None}))
               for f, c in layout.columns.items() if f not in gone}
    checks = [c for c in layout.checks if not {c.compare.left, c.compare.right} & gone]
    d = layout.dedupe
    dedupe = d.model_copy(update={
        "exact": [ks for ks in d.exact if not set(ks) & gone],
        "block_on": [f for f in d.block_on if f not in gone],
        "fields": {f: v for f, v in d.fields.items() if f not in gone},
        "weights": None if d.weights is None else {f: v for f, v in d.weights.items() if f not in gone}})
    return layout.model_copy(update={"columns": columns, "checks": checks, "dedupe": dedupe})


def problems(ctx: "RunContext") -> list[dict[str, Any]]:
    """The sheet-level problems of missing columns, as the store keeps problems (no cell)."""
    return [{"ident": SHEET, "field": p.field, "code": p.code, "params": dict(p.params), "row": None, "col": None}
            for p in ctx.missing]


def _header(layout: "Layout", field: str) -> str:
    return layout.columns[field].header or field


def keep_base(ctx: "RunContext", old: Any, d: Any) -> None:
    """Carry the last run's base of the missing fields into a row's next base, so when the column
    comes back its cells compare with what they were, not with empty (no false conflicts)."""
    if not ctx.missing or old is None or d.base_sheet is AS_STORED:
        return
    old = old.resolve(ctx.records.get(d.ident))
    for p in ctx.missing:
        if p.field in (old.sheet or {}):
            d.base_sheet.setdefault(p.field, old.sheet[p.field])
        if p.field in (old.store or {}):
            d.base_store.setdefault(p.field, old.store[p.field])
