"""Rows of records merged away (`sheetsync duplicates --merge A B`): a sync never revives B from
its row. An untouched row is removed from the sheet; a row edited since is kept and marked,
since removing it would lose what was typed there, and so is one the sheet cannot remove.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model import Problem, removal
from .reconcile import RowDecision

if TYPE_CHECKING:
    from . import RunContext
    from .identify import SheetIndex


def divert(ctx: "RunContext", sheet: "SheetIndex", todo: list[str]) -> list[str]:
    """Take merged-away rows out of the rows to check; they are remembered in ctx.merged
    (drop -> keep)."""
    merged = ctx.store.merged_into(ctx.layout.table)
    ctx.merged = {drop: keep for drop, keep in merged.items() if drop in sheet.rows}
    if not ctx.merged:
        return todo
    return [ident for ident in todo if ident not in ctx.merged]


def untouched(sheet: "SheetIndex", ident: str) -> bool:
    """The row reads as the last run left it: everything in it is in the store already."""
    base = sheet.base.get(ident)
    return base is not None and base.hash == sheet.hashes.get(ident)


def decisions(ctx: "RunContext", sheet: "SheetIndex") -> dict[str, RowDecision]:
    """One decision per merged-away row: no store change, a note on its key cell saying why."""
    fields = list(ctx.layout.key_fields) or list(ctx.layout.columns)
    field = fields[0]
    out = {}
    for drop, keep in ctx.merged.items():
        code = "merged_away" if untouched(sheet, drop) else "merged_edited"
        params: dict[str, Any] = {"code": code, "key": drop, "other_key": keep, "row": sheet.rows[drop]}
        d = RowDecision(ident=drop)
        d.problems.append(Problem(code, field, params))
        d.mark(field, "duplicate", params)
        out[drop] = d
    return out


def removals(ctx: "RunContext", sheet: "SheetIndex", col1: dict[str, int], sheet_name: str) -> list:
    """Outbox entries removing the untouched merged-away rows, each noted once in the history."""
    planned = []
    for drop, keep in ctx.merged.items():
        if not untouched(sheet, drop):
            continue
        row = sheet.rows[drop]
        planned.append((removal(row, sheet.values[drop], sheet.anchor(drop, col1)), drop, None))
        ctx.store.record_row_removal(ctx.layout.table, drop, why=f"merged into {keep}", run_id=ctx.result.run_id,
                                     layout=ctx.name, sheet=sheet_name, row=row)
    return planned
