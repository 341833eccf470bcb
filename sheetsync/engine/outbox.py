"""Steps 2 and 9 of a run: write the outbox back through the connector (cell patches, then row
removals, then the report tab) and keep the store in step with what landed.

Also used by `sheetsync archive`, whose row removals go through the same outbox.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import report as report_mod
from ..errors import SourceUnavailable
from ..model import Applied

if TYPE_CHECKING:
    from . import RunContext


def apply_outbox(ctx: "RunContext", planned: list, report: Any, fingerprint: str) -> str | None:
    """Step 9: write the outbox back; what lands leaves the outbox, the rest waits for a later run.

    Returns the source's fingerprint after the write when it is exactly known (None otherwise).
    """
    if not planned and report is None:
        return fingerprint
    applied = flush_outbox(ctx, report, fingerprint)
    ctx.landed = applied.applied
    return applied.fingerprint if not applied.deferred else None


def flush_outbox(ctx: "RunContext", report: Any, fingerprint: str | None) -> Applied:
    """Apply every outbox patch (steps 2 and 9): applied and deferred ones leave the outbox (a
    deferred cell was edited by a person, and the next read sees that), with prior fills kept.

    Row removals go in an apply of their own once the cell patches have left the outbox: a
    crash between the two replays only removals, whose row-hash check refuses a row that moved
    up into a removed row's place, and no cell patch is replayed onto renumbered rows. The
    report tab then goes last, rebuilt without the problems of the rows that left."""
    pending = ctx.store.outbox(ctx.name)
    gone = [e for e in pending if e[1].kind == "remove"]
    if not gone:
        return _flush(ctx, pending, report, fingerprint)
    cells = [e for e in pending if e[1].kind != "remove"]
    steps = [_flush(ctx, cells, None, fingerprint)] if cells else []
    ctx.hook("remove")
    steps.append(_flush(ctx, gone, None, _after(steps, fingerprint)))
    if report is not None and steps[-1].applied:
        report = report_mod.report_tab(ctx.loaded, ctx.store.problems(ctx.name), ctx.result, ctx.store)
    if report is not None:
        steps.append(_flush(ctx, [], report, _after(steps, fingerprint)))
    return Applied(applied=tuple(p for a in steps for p in a.applied),
                   deferred=tuple(p for a in steps for p in a.deferred),
                   prior_fills=steps[0].prior_fills, api_calls=sum(a.api_calls for a in steps),
                   fingerprint=_after(steps, None), kept_rows=next((a.kept_rows for a in steps if a.kept_rows), ""))


def _after(steps: list[Applied], fingerprint: str | None) -> str | None:
    """The source's fingerprint after the applies so far (the last one that wrote knows it)."""
    for applied in reversed(steps):
        if applied.applied or applied.fingerprint:
            return applied.fingerprint
    return fingerprint


def _flush(ctx: "RunContext", pending: list, report: Any, fingerprint: str | None) -> Applied:
    applied = _apply_patches(ctx, [p for _, p, _, _ in pending], report, fingerprint)
    if any(p.kind == "remove" for p in applied.applied):
        ctx.hook("removed")
    done = set(applied.applied) | set(applied.deferred)
    with ctx.store.transaction():
        ctx.store.drop_outbox([i for i, p, _, _ in pending if p in done])
        ctx.store.rows_removed(ctx.name, [(i, p.row) for _, p, i, _ in pending
                                          if p.kind == "remove" and p in applied.applied])
        _remember_prior_fills(ctx, [(p, i, f) for _, p, i, f in pending], applied)
        if report is not None:
            ctx.store.set_meta(ctx.name, "report_hash", report_mod.report_hash(report))
    return applied


def _apply_patches(ctx: "RunContext", patches: list, report: Any, fingerprint: str | None) -> Applied:
    try:
        applied = ctx.connector.apply(patches, report=report, expected=fingerprint)
    except SourceUnavailable as exc:
        landed = set(exc.applied)
        ctx.result.patches_applied += len(landed)
        with ctx.store.transaction():
            ctx.store.drop_outbox([i for i, p, _, _ in ctx.store.outbox(ctx.name) if p in landed])
        raise
    ctx.result.patches_applied += len(applied.applied)
    ctx.result.patches_deferred += len(applied.deferred)
    ctx.result.api_calls += applied.api_calls
    return applied


def _remember_prior_fills(ctx: "RunContext", triples: list, applied: Applied) -> None:
    if not applied.prior_fills:
        return
    marks = ctx.store.marks(ctx.name)
    ours = set(ctx.layout.colours.model_dump().values())
    updates = {}
    for patch, ident, fld in triples:
        key = (ident, fld)
        prior = applied.prior_fills.get((patch.row, patch.col), "missing")
        if patch.fill and key in marks and prior != "missing" and marks[key].prior_fill is None:
            m = marks[key]
            if prior != m.fill and prior not in ours:
                updates[key] = type(m)(m.kind, m.fill, m.note, prior)
    ctx.store.put_marks(ctx.name, updates)
