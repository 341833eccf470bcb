"""Archive stale records: the layout's declarative `archive:` rule moves matching records into an
archive table (soft-deleted live, history action "archive"), an archive tab (or NAME.archive.csv
beside a CSV) and off the live sheet.

Crash-safe like a sync: one store transaction archives the records and queues the row removals in
the outbox (and notes the archive copy as owed); only then are the copy and the removals written,
through the connector like every other write. A re-run (or a sync, for the removals) finishes an
interrupted one; the copy is idempotent by record and a removed row is never removed twice.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .engine import lease
from .engine.run_support import env_hook
from .errors import SourceBusy, SourceChanged, SourceUnavailable, UsageError
from .layout import ARCHIVE_TIMESTAMPS, LoadedLayout
from .model import Applied, ReportTab, RunResult, SheetData, canonical_text, removal, row_hash
from .rules.headers import map_headers
from .store import Store

#: steps an archive passes, for the crash tests' SHEETSYNC_TEST_KILL_AT
STEPS = ("archive_commit", "archive_copy", "archive_remove", "archive_done")


@dataclass(frozen=True)
class ArchiveResult:
    layout: str
    run_id: str
    dry_run: bool
    archive_table: str
    keys: list[str]                       # records moved (dry run: that would move)
    rows: dict[str, int]                  # key -> sheet row, where known
    skipped: dict[str, str] = field(default_factory=dict)  # key -> why it was not moved
    archive_copy: str | None = None       # "workbook.xlsx[archive]" or the archive csv written
    rows_removed: list[int] = field(default_factory=list)  # sheet rows sheetsync deleted
    rows_to_delete: list[int] = field(default_factory=list)  # rows a person should delete
    why_not_removed: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def condition_tests(loaded: LoadedLayout, now: float) -> list[tuple[str, str, Any]]:
    """The layout's archive conditions as (column, op, value) tests for the store (no eval)."""
    rule = loaded.layout.archive
    if rule is None:
        raise UsageError(f"layout {loaded.name!r} has no archive rule", where=str(loaded.path),
                         hint="add `archive: {when: [{field: status, equals: closed}]}`")
    tests = []
    for cond in rule.when:
        if cond.older_than_days is not None:
            cutoff = now - cond.older_than_days * 86400
            if cond.field in ARCHIVE_TIMESTAMPS:
                tests.append((ARCHIVE_TIMESTAMPS[cond.field], "<", cutoff))
            else:  # dates are stored as ISO text, which sorts by time
                day = (datetime.fromtimestamp(cutoff, timezone.utc)).date().isoformat()
                tests.append((cond.field, "<", day))
        elif cond.one_of is not None:
            tests.append((cond.field, "in", list(cond.one_of)))
        else:
            tests.append((cond.field, "=", cond.equals))
    return tests


def archive(loaded: LoadedLayout, store: Store, connector: Any = None, dry_run: bool = False,
            now: Callable[[], float] = time.time, hook: Callable[[str], None] | None = None) -> ArchiveResult:
    """Move the records matching the archive rule; a dry run changes nothing and lists them.
    An earlier archive's unfinished sheet work (a crash after its commit) is finished first."""
    layout = loaded.layout
    tests = condition_tests(loaded, now())
    run_id = lease.new_run_id(now(), "archive")
    found = store.archive_candidates(layout.table, tests)
    base = store.base(loaded.name)
    rows = {k: base[k].row for k in found if k in base and base[k].row}
    if dry_run:
        return ArchiveResult(loaded.name, run_id, True, layout.archive_table, list(found), rows,
                             rows_to_delete=sorted(rows.values()))
    hook = hook or env_hook()
    with lease.held(store, loaded.name, run_id, hint="run the archive again when that run has finished"):
        hook("archive")  # the crash tests' kill point, with the lease held
        if connector is not None:  # an earlier archive's sheet work a crash left unfinished
            finish_sheet_side(loaded, store, connector, run_id)
        # looked up again under the lease: a sync or that finished work may have moved rows
        found = store.archive_candidates(layout.table, tests)
        return _move(loaded, store, connector, run_id, found, store.base(loaded.name), hook)


def _move(loaded: LoadedLayout, store: Store, connector: Any, run_id: str,
          found: dict[str, dict[str, Any]], base: dict, hook: Callable[[str], None]) -> ArchiveResult:
    layout, name = loaded.layout, loaded.name
    data = connector.read() if connector is not None and found else None
    if data is not None:
        rows, skipped = locate_rows(data, base, found)
    else:
        rows, skipped = {k: base[k].row for k in found if k in base and base[k].row}, {}
    keys = [k for k in found if k not in skipped]
    result = ArchiveResult(name, run_id, False, layout.archive_table, keys, rows, skipped)
    if not keys:
        return result
    hook("archive_commit")
    with store.transaction():  # nothing is written anywhere before this commits
        revs = store.archive_records(layout.table, layout.archive_table, keys, run_id=run_id,
                                     layout=name, rows=rows, sheet=data.sheet if data else None)
        # the row stays "unchanged" for the next sync, so a row left in the sheet is not revived
        store.put_base(name, {k: base[k]._replace(rev=r) for k, r in revs.items() if k in base}, table=layout.table)
        store.replace_problems(name, list(revs), [], run_id)
        store.put_marks(name, {m: None for m in store.marks(name) if m[0] in revs})
        moved = [k for k in keys if k in revs]
        if data is not None:
            store.add_outbox(name, run_id, _removals(loaded, store, data, rows, moved, run_id))
            store.set_meta(name, "archive_copy", run_id)
    result = replace(result, keys=moved)
    if data is None:
        left = sorted(rows[k] for k in moved if k in rows)
        return replace(result, rows_to_delete=left, why_not_removed="no sheet was given" if left else "")
    try:
        done = finish_sheet_side(loaded, store, connector, run_id, hook)
    except (SourceBusy, SourceChanged, SourceUnavailable) as exc:  # the store part is done and kept
        return replace(result, rows_to_delete=sorted(rows[k] for k in moved if k in rows),
                       why_not_removed=f"{exc.message}; the records are archived in the store: run "
                                       "`sheetsync archive` again (or a sync) to finish the sheet")
    return _sheet_result(result, done, rows)


def _removals(loaded: LoadedLayout, store: Store, data: SheetData, rows: dict[str, int], keys: list[str],
              run_id: str) -> list[tuple]:
    """Outbox entries removing the archived records' rows (noted in each record's history)."""
    from .engine.identify import id_column
    where = f"{data.source or loaded.path}[{data.sheet}]"
    cols = map_headers(data.header, loaded.layout, where=where)
    key_col = next((cols[f] for f in loaded.layout.key_fields if f in cols), None)
    if key_col is None:
        key_col = id_column(loaded.layout, data, where)
    by_number = {r.number: r.values for r in data.rows}
    out = []
    for key in keys:
        if key not in rows or rows[key] not in by_number:
            continue
        values = by_number[rows[key]]
        anchor = None
        if key_col is not None:
            anchor = (key_col + 1, canonical_text(values[key_col] if key_col < len(values) else None))
        out.append((removal(rows[key], values, anchor), key, None))
        store.record_row_removal(loaded.layout.table, key, why="archived", run_id=run_id, layout=loaded.name,
                                 sheet=data.sheet, row=rows[key])
    return out


def finish_sheet_side(loaded: LoadedLayout, store: Store, connector: Any, run_id: str,
                      hook: Callable[[str], None] = lambda step: None) -> dict[str, Any]:
    """The archive copy an archive committed but did not write, then the outbox (its row
    removals, and whatever an interrupted sync left). Safe to run any number of times."""
    owed = store.get_meta(loaded.name, "archive_copy")
    copy = None
    hook("archive_copy")
    if owed:
        copy = write_copy(loaded, store, connector, owed)
        with store.transaction():
            store.set_meta(loaded.name, "archive_copy", None)
    hook("archive_remove")
    applied = Applied(applied=())
    if store.outbox(loaded.name):
        from .engine import RunContext
        from .engine.outbox import flush_outbox
        ctx = RunContext(loaded, store, connector, RunResult(loaded.name, run_id), hook, store.clock)
        applied = flush_outbox(ctx, None, None)
    hook("archive_done")
    return {"copy": copy, "applied": applied}


def write_copy(loaded: LoadedLayout, store: Store, connector: Any, run_id: str) -> str | None:
    """The archive copy: NAME.archive.csv beside a CSV gets this run's records (once each); any
    other source's archive tab is rewritten from the archive table (so it is never doubled)."""
    rule, kind = loaded.layout.archive, loaded.layout.source.kind
    if rule is None or rule.tab is None:
        return None
    records = [r for r in store.archived(loaded.layout.archive_table)
               if kind != "csv" or r.get("archive_run") == run_id]
    header, values = archive_rows(loaded, records)
    path = connector.path
    if kind == "csv" and path is not None:
        return str(write_csv(Path(path), header, values, loaded.layout.source.encoding))
    if not connector.capabilities.report_tab:
        return None
    connector.apply([], report=ReportTab(rule.tab, tuple(tuple("" if v is None else canonical_text(v) for v in row)
                                                          for row in [header, *values])))
    return f"{path or loaded.layout.source.kind}[{rule.tab}]"


def _sheet_result(result: ArchiveResult, done: dict[str, Any], rows: dict[str, int]) -> ArchiveResult:
    applied: Applied = done["applied"]
    ours = {rows[k] for k in result.keys if k in rows}
    removed = sorted(p.row for p in applied.applied if p.kind == "remove" and p.row in ours)
    left = sorted(ours - set(removed))
    why = applied.kept_rows or ("the row changed in the sheet since it was read; delete it by hand" if left else "")
    return replace(result, archive_copy=done["copy"], rows_removed=removed, rows_to_delete=left,
                   why_not_removed=why if left else "")


def locate_rows(data: SheetData, base: dict, found: dict) -> tuple[dict[str, int], dict[str, str]]:
    """Sheet row of each record, found by the hash its row had at the last sync; a record whose
    row was edited (or removed) since is skipped: sync first, then archive."""
    by_number = {r.number: r for r in data.rows}
    by_hash: dict[str, list[int]] = {}
    for r in data.rows:
        by_hash.setdefault(row_hash(r.values), []).append(r.number)
    rows, skipped = {}, {}
    for key in found:
        b = base.get(key)
        if b is None:
            continue  # not on this sheet (another layout's record): store only
        at = by_number.get(b.row)
        if at is not None and row_hash(at.values) == b.hash:
            rows[key] = b.row
        elif len(by_hash.get(b.hash, [])) == 1:
            rows[key] = by_hash[b.hash][0]
        else:
            skipped[key] = "its row changed in the sheet since the last sync; sync, then archive"
    return rows, skipped


def archive_rows(loaded: LoadedLayout, records: list[dict]) -> tuple[list[str], list[list[Any]]]:
    """Header texts of the layout's columns + archived_at, and each record's stored values."""
    cols = loaded.layout.columns
    header = [c.header or f for f, c in cols.items()] + ["archived_at"]

    def stamp(at: float) -> str:
        return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return header, [[rec.get(f) for f in cols] + [stamp(rec.get("archived_at") or time.time())] for rec in records]


def write_csv(path: Path, header: list[str], rows: list[list[Any]], encoding: str | None) -> Path:
    """Append to NAME.archive.csv beside the CSV (header first when new), atomically; a record
    the file holds already (a re-run after a crash) is not written again."""
    from .connectors.safe_write import atomic_write, real_path
    real = real_path(path)  # a symlinked CSV: beside the shared file, as its report
    target = real.with_name(f"{real.stem}.archive.csv")
    old = target.read_bytes() if target.exists() else b""
    enc = encoding or "utf-8-sig"
    texts = [["" if v is None else str(v) for v in row] for row in rows]
    if old:
        enc = "utf-8" if old.startswith(b"\xef\xbb\xbf") else _decodes(old)
        have = {tuple(r) for r in csv.reader(io.StringIO(old.decode("utf-8-sig" if enc == "utf-8" else enc),
                                                         newline=""))}
        texts = [t for t in texts if tuple(t) not in have]
        if not texts:
            return target
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if not old:
        writer.writerow(header)
    writer.writerows(texts)
    sep = b"" if not old or old.endswith((b"\n", b"\r")) else b"\r\n"
    body = old + sep + out.getvalue().encode(enc)
    atomic_write(target, lambda fh: fh.write(body))
    return target


def _decodes(data: bytes) -> str:
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"
