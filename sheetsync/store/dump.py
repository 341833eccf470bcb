"""SQLite store <-> per-table canonical objects: a consistent copy, a deterministic dump, a rebuild.

Each table becomes one object (a JSON header line with its CREATE statement and columns, then
one JSON array per row in rowid or primary-key order), plus one schema object (indexes, views,
triggers, virtual tables, PRAGMAs). Same content gives the same bytes, so an unchanged table is
the same object as last time and costs nothing.
"""
from __future__ import annotations

import base64
import json
import os
import sqlite3
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import BackupCorrupt, BackupError

SCHEMA = "store/schema"
TABLE_PREFIX = "store/table/"   # + table name: a table's first part (header line + rows)
PART_PREFIX = "store/part/"     # + "<n>/<table name>": its further parts, n = 1, 2, ...
PART_MASK = 0x7FF               # a row ends a part when crc32(row) & PART_MASK == 0: ~2048 rows
_PRAGMAS = ("encoding", "page_size", "auto_vacuum", "user_version", "application_id")
_ROWID_ALIASES = ("rowid", "_rowid_", "oid")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)


def consistent_copy(store_path: Path, target: Path) -> str:
    """VACUUM INTO `target` (a consistent copy even while another process writes), fsync it and
    run integrity_check on the copy. Returns the live store's journal mode."""
    if not Path(store_path).is_file():
        raise BackupError("the store file does not exist", where=str(store_path),
                          hint="check the layout's `store:` or SHEETSYNC_DB")
    src = _connect_ro(store_path)
    try:
        mode = src.execute("PRAGMA journal_mode").fetchone()[0]
        src.execute("VACUUM INTO ?", (str(target),))
    except sqlite3.Error as exc:
        full = "full" in str(exc) or "I/O" in str(exc)
        raise BackupError(f"cannot copy the store: {exc}", where=str(store_path if not full else target),
                          hint=f"free space on the disk of {Path(target).parent} (or set backup.dir to "
                               "another disk)" if full else
                          "is it a SQLite file? run `PRAGMA integrity_check` on it") from None
    finally:
        src.close()
    with open(target, "rb+") as fh:
        os.fsync(fh.fileno())
    check_integrity(target, what="the store copy")
    return mode


def check_integrity(path: Path, *, what: str) -> None:
    con = _connect_ro(path)
    try:
        result = [r[0] for r in con.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        result = [str(exc)]
    finally:
        con.close()
    if result != ["ok"]:
        raise BackupCorrupt(f"{what} fails integrity_check: {'; '.join(result[:5])}",
                            where=str(path))


def _tables(con: sqlite3.Connection) -> list[tuple[str, str, bool]]:
    """(name, type, without_rowid) of every table whose rows belong in a backup."""
    out = []
    for _schema, name, kind, _n, wr, _strict in con.execute("PRAGMA main.table_list"):
        if kind in ("table", "shadow") and (not name.startswith("sqlite_")
                                            or name == "sqlite_sequence"):
            out.append((name, kind, bool(wr)))
    return sorted(out)


def _schema_bytes(con: sqlite3.Connection, tables: list[tuple[str, str, bool]],
                  journal_mode: str | None) -> bytes:
    pragmas: dict[str, Any] = {p: con.execute(f"PRAGMA {p}").fetchone()[0] for p in _PRAGMAS}
    pragmas["journal_mode"] = journal_mode or con.execute("PRAGMA journal_mode").fetchone()[0]
    rows = con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                       "ORDER BY rowid").fetchall()
    virtual = [sql for kind, _n, _t, sql in rows
               if kind == "table" and sql.upper().startswith("CREATE VIRTUAL")]
    other = [[kind, n, t, sql] for kind, n, t, sql in rows if kind in ("index", "trigger", "view")]
    doc = {"pragmas": pragmas, "tables": [t[0] for t in tables], "virtual": virtual, "other": other}
    return (json.dumps(doc, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _blob(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"cannot back up a value of type {type(value).__name__}")


def _row_encoder() -> Callable[[Any], str]:
    """Compact JSON, non-ASCII kept. CPython's C encoder made once, because json.dumps builds
    a new one on every call (one per row); same output either way."""
    c_make = getattr(json.encoder, "c_make_encoder", None)
    if c_make is None:  # pragma: no cover - other Pythons
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_blob).encode
    encode = c_make(None, _blob, json.encoder.encode_basestring, None, ":", ",", False, False,
                    True)
    return lambda row: "".join(encode(row, 0))


def _table_bytes(con: sqlite3.Connection, name: str, kind: str, without_rowid: bool) -> bytes:
    info = list(con.execute(f"PRAGMA table_xinfo({quote(name)})"))
    cols = [r[1] for r in info if r[6] == 0]  # hidden=0: generated columns are recomputed
    pks = sorted((r[5], r[1]) for r in info if r[5])
    types = {r[1]: str(r[2]).upper() for r in info}
    ipk = pks[0][1] if len(pks) == 1 and not without_rowid and types[pks[0][1]] == "INTEGER" else None
    sql = con.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name=?",
                      (name,)).fetchone()[0]
    select, alias = ", ".join(quote(c) for c in cols), None
    if without_rowid:
        order = ", ".join(quote(c) for _, c in pks)
    else:
        names = {r[1].lower() for r in info}
        alias = next((a for a in _ROWID_ALIASES if a not in names), None)
        if alias is None:
            raise BackupError(f"table {name} hides its rowid behind columns rowid, _rowid_ and oid",
                              hint="rename one of those columns")
        select, order = f"{alias}, {select}", alias
    header = {"table": name, "sql": sql, "columns": cols, "rowid": not without_rowid,
              "shadow": kind == "shadow", "ipk": ipk, "pk": [c for _, c in pks],
              "alias": alias}
    parts = [json.dumps(header, sort_keys=True, ensure_ascii=False)]
    dumps = _row_encoder()
    for row in con.execute(f"SELECT {select} FROM {quote(name)} ORDER BY {order}"):
        parts.append(dumps(row))
    parts.append("")
    return "\n".join(parts).encode("utf-8")


def iter_dump(path: Path, journal_mode: str | None = None) -> Iterator[tuple[str, str, bytes]]:
    """(object name, kind, canonical bytes) for one SQLite file nobody writes to, one table at a
    time so that memory holds one table's dump, not the store's."""
    con = _connect_ro(path)
    try:
        tables = _tables(con)
        yield SCHEMA, "store", _schema_bytes(con, tables, journal_mode)
        for name, kind, wr in tables:
            yield TABLE_PREFIX + name, "store-table", _table_bytes(con, name, kind, wr)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read the store copy: {exc}", where=str(path)) from None
    finally:
        con.close()


def split_parts(data: bytes) -> list[bytes]:
    """Cut a table dump after rows whose own hash says so (content-defined), so appended rows
    or a local edit change only the part they fall in; the parts concatenate to the dump."""
    parts, start = [], 0
    pos = data.index(b"\n") + 1  # the header line always opens part 0
    while pos < len(data):
        end = data.index(b"\n", pos) + 1
        if zlib.crc32(data[pos:end]) & PART_MASK == 0:
            parts.append(data[start:end])
            start = end
        pos = end
    if start < len(data) or not parts:
        parts.append(data[start:])
    return parts


def part_names(name: str, count: int) -> list[str]:
    """Object names of a table dump's parts: TABLE_PREFIX + t, then PART_PREFIX + "n/" + t."""
    table = name[len(TABLE_PREFIX):]
    return [name] + [f"{PART_PREFIX}{i}/{table}" for i in range(1, count)]


def _unblob(d: dict) -> bytes:
    return base64.b64decode(d["b"])


def parse_table(data: bytes) -> tuple[dict, Iterator[list]]:
    """(header, rows) of one table object."""
    head, _, body = data.partition(b"\n")
    lines = [line for line in body.split(b"\n") if line]
    rows = json.loads(b"[" + b",".join(lines) + b"]", object_hook=_unblob)  # one C-level parse
    return json.loads(head), iter(rows)


def row_keys(data: bytes) -> dict[Any, bytes]:
    """{rowid or primary key: the row's canonical line}: what diff compares."""
    head, _, body = data.partition(b"\n")
    header = json.loads(head)
    lines = [line for line in body.split(b"\n") if line]
    if header["rowid"]:  # each line starts with "[<rowid>,"
        return {int(line[1:line.index(b",")]): line for line in lines}
    pk_idx = [header["columns"].index(c) for c in header["pk"]]
    return {json.dumps([row[i] for i in pk_idx]): line
            for line in lines for row in [json.loads(line)]}


def rebuild_store(load: Callable[[str], bytes], target: Path) -> None:
    """Write a new SQLite file at `target` from the objects `load(name)` returns, one table at a
    time (tables in any order: foreign keys are not enforced while restoring)."""
    schema = json.loads(load(SCHEMA))
    pragmas = schema["pragmas"]
    con = sqlite3.connect(target, isolation_level=None)
    try:
        con.execute(f"PRAGMA encoding = {quote(pragmas['encoding'])}")
        con.execute(f"PRAGMA page_size = {int(pragmas['page_size'])}")
        con.execute(f"PRAGMA auto_vacuum = {int(pragmas['auto_vacuum'])}")
        con.execute("BEGIN")
        for sql in schema["virtual"]:
            con.execute(sql)  # creates its shadow tables, refilled below
        for table in sorted(schema["tables"], key=lambda t: t == "sqlite_sequence"):
            header, rows = parse_table(load(TABLE_PREFIX + table))  # AUTOINCREMENT state last
            if not header["shadow"] and table != "sqlite_sequence":
                con.execute(header["sql"])
            _insert_rows(con, header, rows)
        for _kind, _name, _tbl, sql in schema["other"]:
            con.execute(sql)  # indexes, views, triggers: after the rows, so no trigger fires
        con.execute(f"PRAGMA user_version = {int(pragmas['user_version'])}")
        con.execute(f"PRAGMA application_id = {int(pragmas['application_id'])}")
        con.execute("COMMIT")
        con.execute(f"PRAGMA journal_mode = {quote(pragmas['journal_mode'])}")
    except (sqlite3.Error, KeyError, ValueError) as exc:
        raise BackupCorrupt(f"cannot rebuild the store from the snapshot: {exc}",
                            where=str(target)) from None
    finally:
        con.close()


def _insert_rows(con: sqlite3.Connection, header: dict, rows: Iterator[list]) -> None:
    table, cols = quote(header["table"]), [quote(c) for c in header["columns"]]
    if header["shadow"] or header["table"] == "sqlite_sequence":
        con.execute(f"DELETE FROM {table}")
    if header["rowid"]:
        if header["ipk"]:  # the INTEGER PRIMARY KEY column is the rowid: give it once
            rows = (row[1:] for row in rows)
        else:
            cols = [header["alias"], *cols]
    marks = ", ".join("?" * len(cols))
    con.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows)
