"""sync_once(): one run of one layout, the ten steps of DESIGN.md in order, each a call.

Nothing changes anywhere before the commit of step 8; after it, the outbox lets any later run
finish the write-back. Imports no gspread, openpyxl or xlwings: sources come through connectors.
"""
from __future__ import annotations

import time
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from ..dedupe import step as dedupe_step
from . import delete_guard, lease, merged_rows, missing_columns, run_support
from ..layout import store_path  # noqa: F401 (sheetsync.engine.store_path: its old home)
from .. import report as report_mod
from ..connectors import Connector, from_source
from .commit import commit, deletable
from .outbox import apply_outbox as _apply, flush_outbox
from ..errors import SheetsyncError, SourceBusy, SourceChanged, SourceUnavailable
from ..rules.headers import map_headers
from ..logs import run_context
from ..progress import progress
from ..layout import LoadedLayout
from ..layout_load import load_layout
from ..model import MAX_CELL_CHARS, Problem, RunResult, SheetData
from .reconcile import (AS_STORED, NO_LIMIT, NewRows, RowDecision, RowInput, cell_texts, creates_freely,
                        hold_back_taken_key, insert_row, reconcile_row)
from ..rules import compile_rules
from ..rules.checked import Checked
from ..store import Store
from .identify import SheetIndex, check_unique, flag_exact_duplicates, id_column, index_sheet, later_partners

log = logging.getLogger("sheetsync.engine")
_NONE: Mapping = MappingProxyType({})  # an empty default, not built per row
VALIDATE_CHUNK = 10_000  # rows checked between progress updates
STEPS = ("lease", "replay", "read", "detect", "validate", "dedupe", "reconcile", "commit", "apply", "finish")
#: points inside a write-back that removes rows: before the removals, and after the source took
#: them but before the outbox knows (the crash tests' SHEETSYNC_TEST_KILL_AT reaches them too)
REMOVAL_STEPS = ("remove", "removed")


@dataclass
class RunContext:
    loaded: LoadedLayout
    store: Store
    connector: Connector
    result: RunResult
    hook: Callable[[str], None]
    clock: Callable[[], float]
    records: dict[str, dict] = field(default_factory=dict)
    landed: tuple = ()
    id_col: int | None = None
    full: bool = False
    allow_mass_delete: bool = False  # an admin confirmed deletions above the layout's max_delete
    held_deletes: Problem | None = None  # set when this run's deletions were held (delete_guard)
    missing: list = field(default_factory=list)  # layout columns not in the header (missing_columns)
    problems: list | None = None  # the open problems as the run left them (read once, at its end)
    owed_snapshot: bool = False   # this run finished one killed after its commit, before its snapshot
    merged: dict[str, str] = field(default_factory=dict)  # rows of records merged away: drop -> keep

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def layout(self):
        return self.loaded.layout


def open_store(loaded: LoadedLayout) -> Store:
    return Store(store_path(loaded))


def sync_once(layout: LoadedLayout | str | Path, *, store: Store | None = None,
              connector: Connector | None = None, clock: Callable[[], float] = time.time,
              hook: Callable[[str], None] | None = None, full: bool = False,
              allow_mass_delete: bool = False) -> RunResult:
    """Run one sync of one layout and return its RunResult (also recorded in the store).

    `hook(step)` is called before each step: tests use it to stop a run at a named step.
    `full=True` compares every row even when the source is unchanged since the last run.
    `allow_mass_delete=True` lets the run delete more rows than the layout's `max_delete`.
    Transient trouble (busy, changed, unavailable) ends the run `partial` with the outbox kept;
    a layout or source error is raised after recording a `failed` run.
    """
    loaded = layout if isinstance(layout, LoadedLayout) else load_layout(layout)
    own_store = store is None
    try:
        store = store or open_store(loaded)
    except SheetsyncError as exc:
        raise run_support.damaged_store(loaded, exc) or exc from None
    run_id = lease.new_run_id(clock())
    result = RunResult(layout=loaded.name, run_id=run_id)
    started = time.perf_counter()
    try:
        ctx = RunContext(loaded, store, connector or from_source(loaded.layout.source, loaded.path.parent),
                         result, hook or run_support.env_hook(), clock, full=full,
                         allow_mass_delete=allow_mass_delete)
        with run_context(run_id, loaded.name):
            _leased_run(ctx, started)
    except Exception as exc:  # a damaged store met anywhere (the lease too): say how to restore
        damaged = run_support.damaged_store(loaded, exc)
        if damaged is None:
            raise
        raise damaged from None
    finally:
        if own_store:
            store.close()
    return result


def _leased_run(ctx: RunContext, started: float) -> None:
    """Take the lease, run the steps, and record the run however it ends."""
    store, name, result = ctx.store, ctx.name, ctx.result
    ctx.hook("lease")
    ctx.owed_snapshot = lease.break_dead_lease(store, name)  # a run killed after its commit owes one
    holder = lease.take(store, name, result.run_id,
                        hint="wait for it to finish; the lease of a process that died is broken by the next run")
    lease.clean_restore_leftovers(store)
    store.start_run(result.run_id, name)
    log.info("run started")
    resume_collector = run_support.pause_collector()
    calls = ctx.connector.call_counts()
    try:
        _run(ctx)
    except (SourceBusy, SourceChanged, SourceUnavailable) as exc:
        result.outcome, result.message = "partial", str(exc)
    except SheetsyncError as exc:  # a StoreCorrupt gets the newest snapshot in its hint
        result.outcome, result.message = "failed", str(run_support.damaged_store(ctx.loaded, exc) or exc)
        raise
    except Exception as exc:
        damaged = run_support.damaged_store(ctx.loaded, exc)
        result.outcome = "failed"
        result.message = str(damaged) if damaged else f"internal error: {exc!r}"
        if damaged:
            raise damaged from None
        raise
    except BaseException:  # Ctrl-C, SystemExit: the outbox finishes the work next time
        result.outcome, result.message = "partial", "interrupted"
        raise
    finally:
        resume_collector()
        if calls is not None:
            now_calls = ctx.connector.call_counts()
            result.api_calls, result.drive_calls = now_calls[0] - calls[0], now_calls[1] - calls[1]
        result.seconds = time.perf_counter() - started
        _finish(store, name, holder, result, ctx.problems)


def _finish(store: Store, name: str, holder: str, result: RunResult, problems: list | None) -> None:
    """Record the run (with the data-quality numbers the report charts) and release the lease;
    if even that fails (a full disk), the lease expires by itself and the error that ended the
    run is the one reported."""
    try:
        with store.transaction():
            store.finish_run(result.run_id, result.outcome,
                             {**result.to_json(), **report_mod.quality_stats(store, name, problems)}, result.message)
        store.release_lease(name, holder)
    except SheetsyncError as exc:
        log.error("could not record run %s: %s", result.run_id, exc)
    log.info("run finished: %s", result.outcome)


def _run(ctx: RunContext) -> None:
    ctx.hook("replay")
    _replay(ctx)
    if not ctx.full and run_support.source_unchanged(ctx):
        ctx.result.unchanged = ctx.store.base_count(ctx.name)
        ctx.result.message = "source unchanged since the last run; rows not compared"
        ctx.problems = ctx.store.problems(ctx.name)
        if ctx.problems:
            ctx.result.outcome = "problems"
        return
    ctx.hook("read")
    data = ctx.connector.read()
    where = f"{data.source or ctx.loaded.path}[{data.sheet}]"
    cols = map_headers(data.header, ctx.layout, where=where)
    ctx.store.ensure_table(ctx.layout.table, {f: c.type for f, c in ctx.layout.columns.items()})
    missing_columns.leave_out(ctx, cols, where)  # from here on the run's layout has only the header's fields
    exact_fields = {f for ks in ctx.layout.dedupe.exact for f in ks[:1]}
    ctx.store.index_fields(ctx.layout.table, sorted(exact_fields))
    ctx.hook("detect")
    checker = compile_rules(ctx.layout, [r.values for r in data.rows], cols,
                            date1904=bool(data.meta.get("date1904")))
    sheet, todo = _identify(ctx, data, cols, checker, where)
    todo = merged_rows.divert(ctx, sheet, todo)
    checked = _validate(ctx, sheet, todo, checker, cols)
    ctx.hook("dedupe")
    dupes = flag_exact_duplicates(ctx.store, ctx.layout, sheet, checked)
    fuzzy = {}
    if dedupe_step.config(ctx.layout) is not None:  # only then: collecting every row's valid values is not free
        fuzzy = dedupe_step.fuzzy_duplicates(ctx.store, ctx.layout, sheet.rows,
                                             {i: r.valid for i, r in checked.items() if i not in sheet.key_clash})
    dupes = dedupe_step.merge_duplicates(dupes, fuzzy)
    ctx.hook("reconcile")
    decisions, new = _reconcile(ctx, sheet, checked, dupes)
    decisions.update(merged_rows.decisions(ctx, sheet))
    del checked, checker, dupes, fuzzy  # let the commit reuse their memory: they grow with the sheet
    ctx.hook("commit")
    planned, report = commit(ctx, data, sheet, cols, decisions, new)
    ctx.hook("apply")
    landed = _apply(ctx, planned, report, data.fingerprint)
    ctx.hook("finish")
    # held deletions: the next run compares the rows again, so it holds them (or, confirmed, makes them)
    run_support.remember_source_state(ctx, None if ctx.held_deletes else landed)
    run_support.snapshot(ctx, data)
    ctx.problems = ctx.store.problems(ctx.name)
    if ctx.result.outcome == "ok" and ctx.problems:
        ctx.result.outcome = "problems"


def _identify(ctx: RunContext, data: SheetData, cols: dict[str, int], checker: Any,
              where: str) -> tuple[SheetIndex, list[str]]:
    """Step 4: every row's identity and the rows to check."""
    id_col = ctx.id_col = id_column(ctx.layout, data, where)
    sheet = index_sheet(data, cols, ctx.layout, checker, ctx.store.base_index(ctx.name), id_col)
    delete_guard.hold(ctx, sheet, lambda idents: _not_deleted(ctx, deletable(ctx, idents)))
    ctx.result.rows_read = len(data.rows)
    todo = _select(ctx, sheet)
    ctx.hook("validate")
    return sheet, todo


def _validate(ctx: RunContext, sheet: SheetIndex, todo: list[str], checker: Any, cols: dict[str, int]) -> Checked:
    """Step 5: rules for the rows to check, unique columns, and unchanged rows further down that
    share an exact key with a checked one (the later row of a pair is the one flagged)."""
    checked = Checked(checker.fields)
    for start in range(0, len(todo), VALIDATE_CHUNK):
        chunk = todo[start:start + VALIDATE_CHUNK]
        checked.extend(chunk, *checker.check_columns(list(map(sheet.values.__getitem__, chunk)), cols))
        progress("validate", start + len(chunk), len(todo))
    checked = check_unique(ctx.store, ctx.layout, checked)
    partners = later_partners(ctx.store, ctx.layout, sheet, checked)
    for ident, result in zip(partners, checker.check_rows([sheet.values[i] for i in partners], cols)):
        checked[ident] = result
    return checked


def _replay(ctx: RunContext) -> None:
    """Step 2: apply patches an interrupted run committed but did not apply."""
    if not ctx.store.outbox(ctx.name):
        return
    ctx.result.replayed = len(flush_outbox(ctx, None, None).applied)


def _select(ctx: RunContext, sheet: SheetIndex) -> list[str]:
    """Step 4: new and changed rows, plus unchanged rows whose record changed in the store or
    whose open duplicate partner changed. Unchanged rows cost nothing further."""
    revs = ctx.store.revisions(ctx.layout.table) if sheet.unchanged else {}
    touched = set(sheet.changed) | set(sheet.deleted)
    extra = set()  # unchanged rows to look at again
    for ident in sheet.unchanged:
        base, rev = sheet.base[ident], revs.get(ident)
        if rev is not None and base.rev is not None and rev != base.rev:
            extra.add(ident)
    for p in ctx.store.problems(ctx.name):
        if p["code"] == "duplicate" and p["params"].get("other_key") in touched and p["ident"] in sheet.rows:
            extra.add(p["ident"])
    extra -= set(sheet.changed)
    ctx.result.unchanged = len(sheet.unchanged) - len(extra)
    if not extra:
        return list(sheet.changed)  # already in sheet order
    return sorted([*sheet.changed, *extra], key=lambda i: sheet.rows[i])


def _reconcile(ctx: RunContext, sheet: SheetIndex, checked: Checked, dupes: dict) -> tuple[dict[str, RowDecision], NewRows]:
    """Step 7: a decision for each checked row; brand-new clean rows go as one NewRows batch."""
    layout = ctx.layout
    records = ctx.records = ctx.store.records(layout.table, checked)
    bases = ctx.store.base(ctx.name, [i for i in checked if i in sheet.base])
    sheet.base.update({i: b.resolve(records.get(i)) for i, b in bases.items()})
    required = frozenset(f for f, c in layout.columns.items() if c.required)
    protected = frozenset(f for f, c in layout.columns.items() if c.protected)
    keys, policy, access = tuple(layout.key_fields), layout.conflict, layout.access
    max_chars = MAX_CELL_CHARS.get(layout.source.kind, NO_LIMIT)
    plain = bool(keys) and creates_freely(access)  # then clean new rows are plain inserts
    batch = []
    if plain:  # never seen (no base: no marks, no problems to close), nothing to add to them
        batch = [i for i in checked.clean_idents() if i not in records and i not in sheet.base
                 and i not in dupes and i not in sheet.key_clash and i not in sheet.new_ids and not keyless(i)]
    new = NewRows(batch, checked.values_of(batch))
    batched = set(batch)
    decisions = {}
    for ident in checked:
        if ident in batched:
            continue
        if ident in sheet.key_taken:  # the row of a record, with another row's key typed over its own
            typed = sheet.key_taken[ident]
            decisions[ident] = hold_back_taken_key(ident, keys[0], typed, sheet.rows.get(typed), sheet.base[ident])
            continue
        res = checked[ident]
        if plain and res.clean and ident not in records and not keyless(ident):  # most of a first sync
            d = insert_row(ident, res.cells)
        else:
            d = reconcile_row(RowInput(ident, res.cells, sheet.base.get(ident), records.get(ident),
                                       keys, required, protected, policy, access, max_chars))
        if res.problems:  # problems of no single cell's own (cross-field checks) are added here
            extra = [p for p in res.problems if all(p is not q for c in res.cells.values() for q in c.problems)]
            d.problems.extend(extra)
            for p in extra:
                if p.field in res.cells:
                    d.mark(p.field, "invalid", {"code": p.code, **dict(p.params)})
        for fld, (params, problem) in dupes.get(ident, _NONE).items():
            d.problems.append(problem)
            d.mark(fld, "duplicate", params)
        if ident in sheet.key_clash:
            d.held_back = True
            d.store_values = {}
            if d.base_sheet is AS_STORED:  # nothing stored: the base is the sheet's text alone
                d.base_sheet, d.base_store = cell_texts(res.cells), {}
        decisions[ident] = d
    return decisions, new


def _not_deleted(ctx: RunContext, idents: list[str]) -> list[str]:
    """Rows gone whose records are not deleted already: a row sheetsync itself removed (an
    archived or merged-away record, its removal cut short by a crash before the store knew) is
    no person's mass delete."""
    records = ctx.store.records(ctx.layout.table, idents) if idents else {}
    return [i for i in idents if not records.get(i, {}).get("_deleted")]


def keyless(ident: str) -> bool:
    """True for a row whose key cells are empty or invalid (identify.py names it `row:N`): it goes
    through reconcile_row, which holds it back; it never becomes a record of that name."""
    return ident.startswith("row:")
