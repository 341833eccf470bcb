"""Export a store table to CSV, xlsx, JSON or Parquet, and read it as a pandas DataFrame.

Files people open in a spreadsheet (CSV, xlsx) get the OWASP formula-injection quote prefix on
cells starting with = + - @ tab or CR; JSON and Parquet keep values exactly as stored.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import IO, Any, Iterable

from .errors import MissingExtra, UsageError
from .model import MAX_CELL_CHARS
from .text import UNSEEN

FORMATS = ("csv", "xlsx", "json", "parquet")
#: control characters an xlsx file cannot hold as such (XML 1.0), written as Excel itself writes
#: them (`_x001B_`): Excel and sheetsync read the stored value back, nothing is lost
_EXCEL_ESCAPES = {c: f"_x{c:04X}_" for c, kind in UNSEEN.items() if kind == "control" and c < 0x20}
_XLSX_MAX = MAX_CELL_CHARS["xlsx"]
INTERNAL = ("_key", "_rev", "_deleted", "_created_at", "_updated_at", "_source")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value: Any) -> Any:
    """OWASP CSV-injection defence: text that a spreadsheet would run as a formula gets a `'`."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def default_db(table: str | None = None) -> Path:
    """$SHEETSYNC_DB, else the store of the layout (in ./layouts or $SHEETSYNC_LAYOUTS) that
    owns `table`, else the first layout's store, else ./sheetsync.db."""
    env = os.environ.get("SHEETSYNC_DB")
    if env:
        return Path(env)
    folder = Path(os.environ.get("SHEETSYNC_LAYOUTS") or "layouts")
    if folder.is_dir():
        from .layout import store_path
        from .layout_load import load_layout
        found = [load_layout(p) for p in sorted(folder.iterdir()) if p.suffix in (".yaml", ".yml")]
        owner = [ld for ld in found if ld.layout.table == table] or found
        if owner:
            return store_path(owner[0])
    return Path("sheetsync.db")


def table_rows(table: str, db: str | Path | None = None, *, include_deleted: bool = False,
               internal: bool = False) -> tuple[list[str], list[dict[str, Any]], dict[str, str]]:
    """(column names, rows, field types) of a store table, sheetsync's bookkeeping left out
    except the record key as `key` (or `_key` when a field is already called `key`)."""
    from .store import Store
    path = Path(db) if db else default_db(table)
    if not path.exists():
        raise UsageError(f"no store at {path}", where=str(path), hint="pass --db FILE or run a sync first")
    with Store(path) as store:
        types = store.tables()
        if table not in types:
            known = ", ".join(sorted(types)) or "none yet"
            raise UsageError(f"no table {table!r} in the store", where=str(path), hint=f"tables: {known}")
        records = list(store.records(table, include_deleted=include_deleted).values())
    fields = list(types[table])
    if internal:
        columns = ["_key", *fields, *(c for c in INTERNAL if c != "_key")]
        return columns, records, types[table]
    key_name = "_key" if "key" in fields else "key"
    rows = [{key_name: r["_key"], **{f: r.get(f) for f in fields}} for r in records]
    return [key_name, *fields], rows, types[table]


def export_table(table: str, fmt: str, out: str | Path | IO | None = None, *, db: str | Path | None = None,
                 include_deleted: bool = False, internal: bool = False) -> int:
    """Write `table` in `fmt` to `out` (a path, a text stream for csv/json, None = stdout for
    csv/json); returns the number of rows written."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    columns, rows, types = table_rows(table, db, include_deleted=include_deleted, internal=internal)
    if fmt in ("xlsx", "parquet") and (out is None or not isinstance(out, (str, Path))):
        raise UsageError(f"{fmt} export needs a file", hint="pass --out FILE")
    if fmt == "xlsx":
        cut = write_xlsx(Path(out), table, columns, rows)
        if cut:
            import sys
            print(f"warning: {cut} cell(s) of {table} are longer than an Excel cell holds ({_XLSX_MAX:,} "
                  f"characters) and were cut in {out}; csv, json and parquet keep them whole", file=sys.stderr)
    elif fmt == "parquet":
        df = frame(columns, rows, types)
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise MissingExtra("parquet export needs pyarrow", hint="pip install 'sheetsync[pandas]'") from None
        df.to_parquet(Path(out), index=False)
    else:
        writer = write_csv if fmt == "csv" else write_json
        if isinstance(out, (str, Path)):
            # utf-8-sig: Excel opens a CSV with Chinese text correctly only with the BOM
            with open(out, "w", encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="") as fh:
                writer(fh, columns, rows)
        else:
            import sys
            writer(out or sys.stdout, columns, rows)
    return len(rows)


def write_csv(fh: IO[str], columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    w = csv.writer(fh, lineterminator="\r\n")
    w.writerow([formula_safe(c) for c in columns])
    for r in rows:
        w.writerow(["" if r.get(c) is None else formula_safe(r.get(c)) for c in columns])


def write_json(fh: IO[str], columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    """A JSON array, one record per line (diffable, streamable by line-oriented tools)."""
    fh.write("[")
    for i, r in enumerate(rows):
        fh.write(("," if i else "") + "\n" + json.dumps({c: r.get(c) for c in columns}, ensure_ascii=False))
    fh.write("\n]\n")


def write_xlsx(path: Path, table: str, columns: list[str], rows: Iterable[dict[str, Any]]) -> int:
    """Strings are written with data_type "s" (never a formula) and the quote prefix; returns
    how many cells were longer than Excel holds and were cut."""
    from openpyxl import Workbook
    book = Workbook(write_only=True)
    ws = book.create_sheet(_sheet_title(table))
    cut = [0]

    # once prefixed no text starts with "=", so openpyxl types every str "s" (never a formula);
    # plain values instead of cell objects: openpyxl's append is then about twice as fast
    def cell(value: Any) -> Any:
        value = formula_safe(value)
        if value.__class__ is str and not value.isprintable():
            value = value.translate(_EXCEL_ESCAPES)
        if value.__class__ is str and len(value) > _XLSX_MAX:
            cut[0] += 1
            value = value[:_XLSX_MAX - 1] + "…"
        return value

    ws.append([cell(c) for c in columns])
    for r in rows:
        ws.append([cell(r.get(c)) for c in columns])
    tmp = path.with_name(path.name + ".tmp")
    book.save(tmp)
    os.replace(tmp, path)
    return cut[0]


def _sheet_title(table: str) -> str:
    title = "".join("_" if ch in '[]:*?/\\' else ch for ch in table)[:31]
    return title or "export"


def frame(columns: list[str], rows: list[dict[str, Any]], types: dict[str, str]) -> Any:
    """A DataFrame with nullable dtypes that keep integers integral next to missing values."""
    pd = _pandas()
    df = pd.DataFrame.from_records(rows, columns=columns)
    dtypes = {"integer": "Int64", "number": "Float64", "boolean": "boolean"}
    for name in columns:
        kind = dtypes.get(types.get(name, ""))
        if kind:
            df[name] = df[name].astype(kind)
    return df


def read_table(table: str, db: str | Path | None = None, *, include_deleted: bool = False,
               internal: bool = False) -> Any:
    """The clean data of a store table as a pandas DataFrame (needs `sheetsync[pandas]`)."""
    _pandas()
    columns, rows, types = table_rows(table, db, include_deleted=include_deleted, internal=internal)
    return frame(columns, rows, types)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise MissingExtra("pandas is not installed", hint="pip install 'sheetsync[pandas]'") from None
    return pandas

