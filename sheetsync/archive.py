"""Archive stale records: the layout's declarative `archive:` rule moves matching records into an
archive table (soft-deleted live, history action "archive") and an archive tab or workbook.

The sheet side is careful: a record's row is located by the hash recorded at the last sync (an
edited row is skipped), the archive copy is written atomically with the workbook's lock-file and
fingerprint checks, and rows are deleted only where openpyxl cannot break anything (no formulas,
merged cells, tables, validations, conditional formats, names or links); otherwise they are listed.
"""
from __future__ import annotations

import bisect
import csv
import io
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .engine import lease
from .errors import SourceChanged, UsageError
from .layout import ARCHIVE_TIMESTAMPS, LoadedLayout
from .model import SheetData, row_hash
from .engine.run_support import env_hook
from .store import Store


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
            now: Callable[[], float] = time.time) -> ArchiveResult:
    """Move the records matching the archive rule; a dry run changes nothing and lists them."""
    layout = loaded.layout
    tests = condition_tests(loaded, now())
    run_id = time.strftime("archive-%Y%m%dT%H%M%S", time.gmtime(now())) + "-" + uuid.uuid4().hex[:8]
    found = store.archive_candidates(layout.table, tests)
    base = store.base(loaded.name)
    rows = {k: base[k].row for k in found if k in base and base[k].row}
    if dry_run:
        return ArchiveResult(loaded.name, run_id, True, layout.archive_table, list(found), rows,
                             rows_to_delete=sorted(rows.values()))
    with lease.held(store, loaded.name, run_id, hint="run the archive again when that run has finished"):
        env_hook()("archive")  # the crash tests' kill point, with the lease held
        return _move(loaded, store, connector, run_id, found, base)


def _move(loaded: LoadedLayout, store: Store, connector: Any, run_id: str,
          found: dict[str, dict[str, Any]], base: dict) -> ArchiveResult:
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
    with store.transaction():
        revs = store.archive_records(layout.table, layout.archive_table, keys, run_id=run_id,
                                     layout=name, rows=rows, sheet=data.sheet if data else None)
        # the row stays "unchanged" for the next sync, so a row left in the sheet is not revived
        store.put_base(name, {k: base[k]._replace(rev=r) for k, r in revs.items() if k in base}, table=layout.table)
        store.replace_problems(name, list(revs), [], run_id)
        store.put_marks(name, {m: None for m in store.marks(name) if m[0] in revs})
        moved = [{**found[k], "_archived_at": store.clock()} for k in keys if k in revs]
        sheet_rows = sorted(rows[k] for k in keys if k in revs and k in rows)
        if data is not None:  # written inside the transaction: a failed write rolls it back
            result = _sheet_side(loaded, store, connector, data, moved, sheet_rows, result)
        else:
            result = replace(result, rows_to_delete=sheet_rows,
                             why_not_removed="no sheet was given" if sheet_rows else "")
    return replace(result, keys=[k for k in keys if k in revs])


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


def _sheet_side(loaded: LoadedLayout, store: Store, connector: Any, data: SheetData,
                moved: list[dict], sheet_rows: list[int], result: ArchiveResult) -> ArchiveResult:
    rule, kind = loaded.layout.archive, loaded.layout.source.kind
    path = getattr(connector, "path", None)
    header, values = archive_rows(loaded, moved)
    if rule is None or rule.tab is None:
        return replace(result, rows_to_delete=sheet_rows, why_not_removed="archive.tab is null")
    if kind == "xlsx" and path is not None:
        busy = "sheetsync has patches waiting to be written" if store.outbox(loaded.name) else ""
        removed, why = write_xlsx(Path(path), data, rule.tab, header, values, sheet_rows,
                                  loaded.layout.source.allow_feature_loss, refuse=busy)
        copy = f"{path}[{rule.tab}]"
    elif kind == "csv" and path is not None:
        copy = str(write_csv(Path(path), header, values, loaded.layout.source.encoding))
        removed, why = [], "rows are not deleted from a CSV"
    else:
        return replace(result, rows_to_delete=sheet_rows,
                       why_not_removed=f"source kind {kind}: the archive table holds the records")
    left = [r for r in sheet_rows if r not in removed]
    return replace(result, archive_copy=copy, rows_removed=removed, rows_to_delete=left,
                   why_not_removed=why if left else "")


def archive_rows(loaded: LoadedLayout, records: list[dict]) -> tuple[list[str], list[list[Any]]]:
    """Header texts of the layout's columns + archived_at, and each record's stored values."""
    cols = loaded.layout.columns
    header = [c.header or f for f, c in cols.items()] + ["archived_at"]
    at = records[0]["_archived_at"] if records and "_archived_at" in records[0] else time.time()
    stamp = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return header, [[rec.get(f) for f in cols] + [stamp] for rec in records]


def write_csv(path: Path, header: list[str], rows: list[list[Any]], encoding: str | None) -> Path:
    """Append to NAME.archive.csv beside the CSV (header first when new), atomically."""
    from .connectors.xlsx.guard import atomic_write
    target = path.with_name(f"{path.stem}.archive.csv")
    old = target.read_bytes() if target.exists() else b""
    enc = encoding or "utf-8-sig"
    if old:
        enc = "utf-8" if old.startswith(b"\xef\xbb\xbf") else _decodes(old)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if not old:
        writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
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


def write_xlsx(path: Path, data: SheetData, tab: str, header: list[str], rows: list[list[Any]],
               delete: list[int], allow_loss: bool, refuse: str = "") -> tuple[list[int], str]:
    """Append the archive rows to tab `tab` and, when safe, delete the archived rows from the
    synced sheet; one atomic save. Returns (rows deleted, why rows were not deleted)."""
    from .connectors.xlsx import _set_value
    from .connectors.xlsx.guard import (atomic_write, fingerprint, guard_features, open_zip,
                                        read_bytes, refuse_if_open)
    refuse_if_open(path)
    raw = read_bytes(path)
    if fingerprint(raw) != data.fingerprint:
        raise SourceChanged("the workbook changed since it was read", where=str(path),
                            hint="nothing was archived; run `sheetsync archive` again")
    guard_features(open_zip(raw, str(path)), str(path), allow_loss)
    book = _open_book(path, raw)
    ws = book[data.sheet]
    if tab == ws.title:
        raise UsageError("archive.tab is the synced sheet", where=f"{path}[{tab}]")
    out = book[tab] if tab in book.sheetnames else book.create_sheet(tab)
    start = out.max_row + 1 if out.max_row > 1 or out.cell(1, 1).value is not None else 1
    for r, row in enumerate(([header] if start == 1 else []) + rows, start=start):
        for c, value in enumerate(row, start=1):
            if value is not None:
                _set_value(out.cell(row=r, column=c), value)
    why = refuse or unsafe_to_delete(book, ws)
    if not why:
        delete_rows(ws, delete)
    if fingerprint(read_bytes(path)) != data.fingerprint:
        raise SourceChanged("the workbook was saved by someone else while sheetsync wrote",
                            where=str(path), hint="nothing was archived; run again")
    refuse_if_open(path)
    atomic_write(path, book.save)
    return ([] if why else sorted(delete)), why


def delete_rows(ws: Any, rows: list[int]) -> None:
    """Delete many rows in one pass over the cells (what ws.delete_rows does per call, so
    calling it per row costs a pass over the sheet for every deleted row)."""
    gone = sorted(set(rows))
    if not gone:
        return
    drop, moved = set(gone), {}
    for (r, c), cell in sorted(ws._cells.items()):
        if r in drop:
            continue
        shift = bisect.bisect_left(gone, r)
        if shift:
            cell.row = r - shift
        moved[(r - shift, c)] = cell
    ws._cells = moved


def _open_book(path: Path, raw: bytes) -> Any:
    import openpyxl
    from .errors import SourceError
    try:
        return openpyxl.load_workbook(io.BytesIO(raw), rich_text=True,
                                      keep_vba=path.suffix.lower() == ".xlsm")
    except Exception as exc:
        raise SourceError(f"openpyxl cannot open the workbook: {exc}", where=str(path),
                          hint="open it in Excel and save it again as .xlsx") from None


def unsafe_to_delete(book: Any, ws: Any) -> str:
    """Why deleting rows with openpyxl could break the workbook ("" = safe): openpyxl shifts
    cells but not formulas, merged ranges, tables, validations, conditional formats or names."""
    checks = [
        (bool(ws.merged_cells.ranges), "the sheet has merged cells"),
        (bool(ws.tables), "the sheet has Excel tables"),
        (bool(list(ws.conditional_formatting)), "the sheet has conditional formats"),
        (bool(ws.data_validations.dataValidation), "the sheet has data validations"),
        (bool(list(book.defined_names)) or any(bool(list(s.defined_names))
                                               for s in book.worksheets), "the workbook has names"),
    ]
    for present, why in checks:
        if present:
            return why + "; delete the listed rows by hand"
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f" or cell.hyperlink is not None:
                    return "the workbook has formulas or links; delete the listed rows by hand"
    return ""
