"""Step 8 of a run: records, history, problems, base rows, marks and the outbox of sheet
patches, all in one SQLite transaction (engine/__init__.py runs the steps; this is the biggest one).

Brand-new clean rows (reconcile.NewRows, most of a first sync) go in column by column: records,
one history row each, and base rows that keep no copy of the values. Every other row has its
RowDecision worked through here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..dedupe import step as dedupe_step
from . import delete_guard, merged_rows, missing_columns
from .. import report as report_mod
from ..model import Patch, Problem, RunResult, SheetData, canonical_text, row_hash, typed_value
from .reconcile import AS_STORED, NewRows, RowDecision
from ..store import BaseRow
from .identify import SheetIndex
from .writeback import VALUE_TYPES, RowPlace, clear_stray, live_marks, plan_row

if TYPE_CHECKING:
    from . import RunContext


def commit(ctx: "RunContext", data: SheetData, sheet: SheetIndex, cols: dict[str, int],
           decisions: dict[str, RowDecision], new: NewRows) -> tuple[list, Any]:
    """Step 8: records, history, problems, base, marks, outbox: one transaction. `new`: brand-new
    clean rows, inserted column-wise with their base (no marks, writes or problems)."""
    layout, store, res = ctx.layout, ctx.store, ctx.result
    notes = ctx.connector.capabilities.notes
    col1 = {f: i + 1 for f, i in cols.items()}
    stored = store.marks(ctx.name) if notes else {}
    existing = live_marks(stored, sheet, col1, data, notes)
    planned, marks, problems, base = [], {}, [], {}
    marked = {i for i, _ in stored}
    types = {f: VALUE_TYPES.get(c.type) for f, c in layout.columns.items()} \
        if ctx.connector.capabilities.typed else {}
    formulas: dict[int, set[int]] = {}
    for r, c in data.formulas:
        formulas.setdefault(r, set()).add(c)
    with store.transaction():
        store.set_meta(ctx.name, "fingerprint", None)  # set again only once the write-back landed
        revs = _write(ctx, sheet, decisions, data.sheet)
        _insert_new(ctx, sheet, new, data.sheet)
        for ident, d in decisions.items():
            rev = revs.get(ident)
            if d.marks or d.writes or ident in marked:
                row = sheet.rows[ident]
                place = RowPlace(row, sheet.field_values(ident), sheet.anchor(ident, col1),
                                 frozenset(formulas.get(row, ())))
                p, m = plan_row(d, place, col1, layout, existing, notes, stored)
                planned.extend(p)
                marks.update(m)
            if d.problems:
                problems.extend(_locate(ident, q, sheet.rows[ident], col1) for q in d.problems)
            _count(res, d)
            extra = {}
            if ident in sheet.new_ids:  # a managed id: written into the id column, no mark
                extra = {ctx.id_col: ident}
                planned.append((Patch(row=sheet.rows[ident], col=ctx.id_col + 1, kind="corrected", write=True,
                                      value=ident, expected=_cell_text(sheet.values[ident], ctx.id_col)),
                                ident, None))
            if ident not in ctx.merged:  # a merged-away row keeps the base it had (see merged_rows)
                missing_columns.keep_base(ctx, sheet.base.get(ident), d)
                base[ident] = _next_base(sheet, ident, d, cols, rev, extra, types)
        for ident in deletable(ctx, sheet.deleted):
            if store.delete_record(layout.table, ident, run_id=res.run_id, layout=ctx.name,
                                   sheet=data.sheet, row=sheet.base[ident].row):
                res.deleted += 1
            marks.update({k: None for k in stored if k[0] == ident})
        planned.extend(merged_rows.removals(ctx, sheet, col1, data.sheet))
        dedupe_step.index_rows(store, layout, [*(i for i, d in decisions.items()
                                                 if not d.held_back and i not in ctx.merged), *new.idents],
                               deleted=sheet.deleted)
        problems.extend(delete_guard.problems(ctx))  # the sheet's own problems, opened or closed here
        problems.extend(missing_columns.problems(ctx))
        store.replace_problems(ctx.name, [*decisions, *new.idents, *sheet.deleted, delete_guard.SHEET],
                               problems, res.run_id)
        store.relocate(ctx.name, sheet.moved)
        store.put_base(ctx.name, base, removed=sheet.deleted, table=layout.table)
        if notes:
            known = {(sheet.rows[i], col1[f]) for (i, f) in existing if i in sheet.rows and f in col1}
            planned.extend(clear_stray(data.marks, known))
        store.put_marks(ctx.name, marks)
        report = report_mod.report_tab(ctx.loaded, store.problems(ctx.name), res, store)
        store.add_outbox(ctx.name, res.run_id, planned)
        store.record_commit(res.run_id, res.to_json())  # if killed from here on, the next run finishes it
    return planned, report


def deletable(ctx: "RunContext", deleted: list[str]) -> list[str]:
    """Rows gone from the sheet whose records this sheet may delete (not read-only, in scope)."""
    access = ctx.layout.access
    if access.read_only:
        return []
    scope = access.row_scope
    if scope is None:
        return deleted
    records = ctx.store.records(ctx.layout.table, deleted)
    return [i for i in deleted if i not in records or scope.allows(records[i].get(scope.field))]


def _write(ctx: "RunContext", sheet: SheetIndex, decisions: dict[str, RowDecision], sheet_name: str) -> dict[str, int]:
    """Records and their history for every decided row; returns each record's new _rev."""
    revs: dict[str, int] = {}
    items = []
    for ident, d in decisions.items():
        old = ctx.records.get(ident)
        if d.held_back:
            ctx.result.held_back += 1
            if old is not None:  # a record whose row is held back keeps its revision in the base
                revs[ident] = old["_rev"]
        elif d.store_values or d.insert:
            items.append((ident, d.store_values, old, sheet.rows[ident]))
            if d.insert:
                ctx.result.inserted += 1
            else:
                ctx.result.updated += 1
        elif old is not None:
            revs[ident] = old["_rev"]
    revs.update(ctx.store.write_many(ctx.layout.table, items, run_id=ctx.result.run_id,
                                     layout=ctx.name, sheet=sheet_name))
    return revs


def _insert_new(ctx: "RunContext", sheet: SheetIndex, new: NewRows, sheet_name: str) -> None:
    """The NewRows batch: its records with their history, and base rows resting on them."""
    if not new.idents:
        return
    rows = list(map(sheet.rows.__getitem__, new.idents))
    after = ctx.store.insert_records(ctx.layout.table, new.idents, new.columns, rows, run_id=ctx.result.run_id,
                                     layout=ctx.name, sheet=sheet_name)
    ctx.store.put_inserted_base(ctx.name, ctx.layout.table, list(map(sheet.hashes.__getitem__, new.idents)), after)
    ctx.result.inserted += len(new.idents)


def _cell_text(values: tuple, index: int) -> str:
    return canonical_text(values[index] if index < len(values) else None)


def _next_base(sheet: SheetIndex, ident: str, d: RowDecision, cols: dict[str, int], rev: int | None,
               extra: dict[int, Any], types: dict[str, str | None]) -> BaseRow:
    """The row as it will read after the write-back, so an untouched row hashes equal next time.
    `extra` holds writes outside the layout's fields (0-based column -> value: a managed id);
    `types` the value type each field's write lands as (a typed sheet reads 10000.00 back as 10000).

    A plain new row's base keeps no copy of its values (None: "the record's own": a first sync
    stores and encodes each value once, not twice); a managed id written beside them changes
    only the hash."""
    own = d.base_sheet is AS_STORED
    sheet_side, store_side = (None, None) if own else (d.base_sheet, d.base_store)
    if not d.writes and not extra:
        return BaseRow(sheet.hashes[ident], sheet.rows[ident], sheet_side, store_side, rev)
    values = list(sheet.values[ident])
    for idx, value in [*((cols[f], typed_value(v, types.get(f))) for f, v in d.writes.items()), *extra.items()]:
        values.extend([None] * (idx + 1 - len(values)))
        values[idx] = value
    return BaseRow(row_hash(values), sheet.rows[ident], sheet_side, store_side, rev)


def _locate(ident: str, p: Problem, row: int, col1: dict[str, int]) -> dict[str, Any]:
    return {"ident": ident, "field": p.field, "code": p.code, "params": {"row": row, **dict(p.params)},
            "row": row, "col": col1.get(p.field or "")}


def _count(res: RunResult, d: RowDecision) -> None:
    res.corrected += d.counts["corrected"]
    res.invalid += d.counts["invalid"]
    res.conflicts += d.counts["conflicts"]
    res.protected += d.counts["protected"]
    res.duplicates += sum(1 for p in d.problems if p.code == "duplicate")
