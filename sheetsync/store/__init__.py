"""The canonical SQLite store: records, field history, problems, base state, marks, outbox, runs, leases.

Every SQL statement of sheetsync lives here (identifiers quoted, values bound), so another store
(PostgreSQL for several workers) can be added as one module. Layout tables are plain tables with
readable column names; sheetsync's own bookkeeping lives in tables prefixed `_sheetsync_`.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from itertools import repeat
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from ..errors import StoreError, UsageError
from ..model import WriteValue
from .archive import ArchiveStoreMixin
from .dedupe import DedupeStoreMixin
from .damage import damage
from .sql import chunks, literal, quote  # noqa: F401 (quote: re-exported)
from .state import BaseRow, Mark, SyncStateMixin, encode_texts  # noqa: F401 (BaseRow, Mark: re-exported)

SCHEMA_VERSION = 2
_SQL_TYPES = {"integer": "INTEGER", "number": "REAL", "boolean": "INTEGER"}
_RESERVED = {"_key", "_rev", "_deleted", "_created_at", "_updated_at", "_source"}
_ROWID_NAMES = {"rowid", "oid", "_rowid_"}  # a column of one of these names would hide the rowid

_MIGRATIONS: list[str] = [
    # 1: the bookkeeping tables
    """
    CREATE TABLE _sheetsync_runs (
        run_id TEXT PRIMARY KEY, layout TEXT NOT NULL, started REAL NOT NULL, finished REAL,
        outcome TEXT, result TEXT, message TEXT);
    CREATE INDEX _sheetsync_runs_layout ON _sheetsync_runs(layout, started);
    CREATE TABLE _sheetsync_history (
        id INTEGER PRIMARY KEY, tbl TEXT NOT NULL, record_key TEXT NOT NULL, field TEXT,
        old TEXT, new TEXT, action TEXT NOT NULL, run_id TEXT, at REAL NOT NULL,
        layout TEXT, sheet TEXT, row INTEGER, actor TEXT);
    CREATE INDEX _sheetsync_history_key ON _sheetsync_history(tbl, record_key, id);
    CREATE TABLE _sheetsync_problems (
        layout TEXT NOT NULL, ident TEXT NOT NULL, field TEXT NOT NULL, code TEXT NOT NULL,
        params TEXT NOT NULL, row INTEGER, col INTEGER, run_id TEXT, opened REAL NOT NULL,
        PRIMARY KEY (layout, ident, field, code));
    CREATE TABLE _sheetsync_base (
        layout TEXT NOT NULL, ident TEXT NOT NULL, hash TEXT NOT NULL, row INTEGER,
        sheet_vals TEXT NOT NULL, store_vals TEXT NOT NULL, rev INTEGER,
        PRIMARY KEY (layout, ident));
    CREATE TABLE _sheetsync_marks (
        layout TEXT NOT NULL, ident TEXT NOT NULL, field TEXT NOT NULL, kind TEXT NOT NULL,
        fill TEXT, note TEXT, prior_fill TEXT, PRIMARY KEY (layout, ident, field));
    CREATE TABLE _sheetsync_outbox (
        id INTEGER PRIMARY KEY, layout TEXT NOT NULL, run_id TEXT NOT NULL, patch TEXT NOT NULL,
        ident TEXT, field TEXT);
    CREATE TABLE _sheetsync_leases (layout TEXT PRIMARY KEY, holder TEXT NOT NULL, expires REAL NOT NULL);
    CREATE TABLE _sheetsync_meta (scope TEXT NOT NULL, name TEXT NOT NULL, value TEXT,
        PRIMARY KEY (scope, name));
    CREATE TABLE _sheetsync_tables (tbl TEXT PRIMARY KEY, columns TEXT NOT NULL);
    """,
    # 2: the newest history row of a table in O(log n), to tell "the store changed since" cheaply
    "CREATE INDEX _sheetsync_history_tbl ON _sheetsync_history(tbl, id);",
]


class Store(SyncStateMixin, DedupeStoreMixin, ArchiveStoreMixin):
    """One SQLite file (or :memory:). Methods that write must run inside `transaction()`."""

    def __init__(self, path: str | Path = ":memory:", *, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self.clock = clock
        if self.path != ":memory:":
            p = Path(self.path)
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.exists():
                p.touch(mode=0o600)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._enter_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA cache_size=-65536")  # 64 MiB: index inserts of big first syncs
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise damage(exc, self.path) or StoreError(
                f"cannot open the store: {exc}", where=self.path,
                hint="check that the file is a sheetsync SQLite store and is writable") from exc
        self._columns: dict[str, list[str]] = {}
        self._booleans: dict[str, tuple[str, ...]] = {}  # table -> its boolean fields

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _enter_wal(self, wait: float = 30.0) -> None:
        """Switch to WAL, retrying while another opener holds the file.

        Changing the journal mode takes an exclusive lock without calling SQLite's busy
        handler, so two processes opening a brand-new store at once would otherwise see
        "database is locked" at once instead of waiting their turn.
        """
        deadline = time.monotonic() + wait
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"store schema {version} is newer than this sheetsync ({SCHEMA_VERSION})",
                             hint="upgrade sheetsync")
        if version == SCHEMA_VERSION:
            return
        # one transaction, with the version read again under the write lock: two processes
        # opening a new store at once must not both run a migration
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, SCHEMA_VERSION):
                for statement in filter(str.strip, _MIGRATIONS[number].split(";")):
                    self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self._rollback()
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT: the whole of a run's results land together or not at all."""
        if self.db.in_transaction:
            yield
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._rollback()
                raise
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._rollback()
            raise StoreError(f"the store could not be written: {exc}", where=self.path,
                             hint="check free disk space and that the file and its folder are writable; "
                                  "nothing of this run was saved") from exc
        except sqlite3.DatabaseError as exc:
            self._rollback()
            raise damage(exc, self.path) or exc

    def _rollback(self) -> None:
        """Roll back if a transaction is still open: SQLite may have rolled back by itself (a full
        disk), and a failing ROLLBACK must not hide the error that caused it."""
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    # -- layout tables -------------------------------------------------------------------------

    def ensure_table(self, table: str, fields: Mapping[str, str]) -> None:
        """Create the table (or add new columns). `fields` maps field name -> layout type."""
        bad = _RESERVED.intersection(fields) | {f for f in fields if f.lower() in _ROWID_NAMES}
        if bad or table.startswith("_sheetsync"):
            raise UsageError(f"names reserved by sheetsync: {sorted(bad) or table}",
                             hint="rename the column or table in the layout")
        cols = [f"{quote(f)} {_SQL_TYPES.get(t, 'TEXT')}" for f, t in fields.items()]
        with self.transaction():
            self.db.execute(
                f"CREATE TABLE IF NOT EXISTS {quote(table)} (\"_key\" TEXT PRIMARY KEY, "
                + "".join(c + ", " for c in cols)
                + "\"_rev\" INTEGER NOT NULL DEFAULT 1, \"_deleted\" INTEGER NOT NULL DEFAULT 0, "
                "\"_created_at\" REAL, \"_updated_at\" REAL, \"_source\" TEXT)")
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({quote(table)})")}
            for f, t in fields.items():
                if f not in have:
                    self.db.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(f)} {_SQL_TYPES.get(t, 'TEXT')}")
            self.db.execute("INSERT OR REPLACE INTO _sheetsync_tables(tbl, columns) VALUES (?, ?)",
                            (table, json.dumps(dict(fields))))
        self._booleans.pop(table, None)
        self._columns[table] = [r[1] for r in self.db.execute(f"PRAGMA table_info({quote(table)})")]

    def index_fields(self, table: str, fields: Iterable[str]) -> None:
        """Index the fields used as exact dedupe keys so a lookup stays cheap on big tables."""
        with self.transaction():
            for f in fields:
                name = quote(f"_sheetsync_ix_{table}_{f}")
                self.db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {quote(table)}({quote(f)})")

    def tables(self) -> dict[str, dict[str, str]]:
        return {t: json.loads(c) for t, c in self.db.execute("SELECT tbl, columns FROM _sheetsync_tables")}

    def records(self, table: str, keys: Iterable[str] | None = None, *,
                include_deleted: bool = True) -> dict[str, dict[str, Any]]:
        """Records by key; each a dict of its columns including _rev and _deleted."""
        sql = f"SELECT * FROM {quote(table)}"
        where = [] if include_deleted else ['"_deleted" = 0']
        if keys is None:
            return self._typed(table, self._fetch(sql + (" WHERE " + where[0] if where else ""), ()))
        out: dict[str, dict[str, Any]] = {}
        key_list = list(keys)
        if len(key_list) > 500 and self.db.execute(f"SELECT 1 FROM {quote(table)} LIMIT 1").fetchone() is None:
            return out  # an empty table (a first sync): 100k keys would be 200 queries finding nothing
        for chunk in chunks(key_list, 500):
            clause = " AND ".join(where + [f'"_key" IN ({",".join("?" * len(chunk))})'])
            out.update(self._fetch(f"{sql} WHERE {clause}", chunk))
        return self._typed(table, out)

    def _typed(self, table: str, records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Boolean fields back as bool: SQLite keeps them as 0/1, and a 1 compared with the
        sheet's TRUE would look like a change made in the store."""
        flags = self._booleans.get(table)
        if flags is None:
            types = self.tables().get(table, {})
            flags = self._booleans[table] = tuple(f for f, t in types.items() if t == "boolean")
        for record in records.values() if flags else ():
            for f in flags:
                if record.get(f) is not None:
                    record[f] = bool(record[f])
        return records

    def _fetch(self, sql: str, params: Sequence[Any]) -> dict[str, dict[str, Any]]:
        cur = self.db.execute(sql, params)
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row)) for row in cur}

    def find_by_values(self, table: str, fields: Sequence[str], values: Iterable[tuple]) -> dict[tuple, list[str]]:
        """Live record keys whose `fields` equal each value tuple (exact dedupe against the store)."""
        if self.db.execute(f'SELECT 1 FROM {quote(table)} WHERE "_deleted" = 0 LIMIT 1').fetchone() is None:
            return {}  # an empty table (a first sync): nothing to look up, however many values
        wanted = {v for v in values if all(x not in (None, "") for x in v)}
        found: dict[tuple, list[str]] = {}
        cols = ", ".join(quote(f) for f in fields)
        for chunk in chunks(sorted({v[0] for v in wanted}, key=str), 500):
            sql = (f'SELECT "_key", {cols} FROM {quote(table)} WHERE "_deleted" = 0 AND '
                   f'{quote(fields[0])} IN ({",".join("?" * len(chunk))})')
            for key, *vals in self.db.execute(sql, chunk):
                if tuple(vals) in wanted:
                    found.setdefault(tuple(vals), []).append(key)
        return found

    def write_record(self, table: str, key: str, values: Mapping[str, WriteValue], *, action: str,
                     run_id: str | None, layout: str | None = None, sheet: str | None = None,
                     row: int | None = None, actor: str | None = None) -> int:
        """Insert or update one record and write one history row per changed field. Returns _rev."""
        now = self.clock()
        old = self.records(table, [key]).get(key)
        changed = {f: v for f, v in values.items() if old is None or old.get(f) != v}
        if old is not None and not changed and not old["_deleted"]:
            return old["_rev"]
        if old is not None and changed:
            self.materialise_base(table, key, old)
        if old is None:
            names = ["_key", *values, "_created_at", "_updated_at", "_source"]
            sql = (f"INSERT INTO {quote(table)} ({', '.join(quote(n) for n in names)}) "
                   f"VALUES ({', '.join('?' * len(names))})")
            self.db.execute(sql, [key, *values.values(), now, now, layout])
            rev = 1
        else:
            sets = [f"{quote(f)} = ?" for f in changed]
            sql = (f"UPDATE {quote(table)} SET {', '.join(sets + ['_rev = _rev + 1', '_deleted = 0', '_updated_at = ?', '_source = ?'])} "
                   f'WHERE "_key" = ?')
            self.db.execute(sql, [*changed.values(), now, layout, key])
            rev = old["_rev"] + 1
            if old["_deleted"]:
                self._history(table, key, None, "1", "0", "undelete", run_id, now, layout, sheet, row, actor)
        if old is None:
            self._history(table, key, None, None, encode_texts(values), action, run_id, now, layout, sheet, row, actor)
            return rev
        for f, v in changed.items():
            self._history(table, key, f, old.get(f), v, action, run_id, now, layout, sheet, row, actor)
        return rev

    def write_many(self, table: str, items: Sequence[tuple[str, Mapping[str, WriteValue], Mapping[str, Any] | None, int | None]],
                   *, run_id: str | None, layout: str | None = None, sheet: str | None = None,
                   actor: str | None = None) -> dict[str, int]:
        """write_record for many records at once: (key, values, old record or None, sheet row).

        The caller passes the old records it already read; new ones go in column-wise through
        `insert_records`, grouped by the fields they have.
        """
        revs: dict[str, int] = {}
        inserts: dict[tuple[str, ...], tuple[list[str], list[int | None], list[tuple]]] = {}
        for key, values, old, row in items:
            if old is None:
                keys, rows, vals = inserts.setdefault(tuple(values), ([], [], []))
                keys.append(key)
                rows.append(row)
                vals.append(tuple(values.values()))
                revs[key] = 1
            else:
                revs[key] = self.write_record(table, key, values, action="update", run_id=run_id, layout=layout,
                                              sheet=sheet, row=row, actor=actor)
        for fields, (keys, rows, vals) in inserts.items():
            columns = dict(zip(fields, map(list, zip(*vals)))) if fields else {}
            self.insert_records(table, keys, columns, rows, run_id=run_id, layout=layout, sheet=sheet, actor=actor)
        return revs

    def insert_records(self, table: str, keys: Sequence[str], columns: Mapping[str, Sequence[WriteValue]],
                       rows: Sequence[int | None], *, run_id: str | None, layout: str | None = None,
                       sheet: str | None = None, actor: str | None = None) -> int:
        """New records given column by column (field -> values in `keys` order; `rows`: each one's
        sheet row), each with one "insert" history row holding all its values as texts (expanded
        by `history`). Returns the id before the first of those history rows (put_inserted_base).

        The records go in at explicit rowids, so one INSERT ... SELECT can read them back and
        have SQLite build each history row and its JSON: a first sync's rows cost one
        executemany, not two, and no dict or JSON encoding each."""
        n = len(keys)
        now, table_sql = self.clock(), quote(table)
        first = self.db.execute(f"SELECT coalesce(max(rowid), 0) FROM {table_sql}").fetchone()[0]
        after = self.db.execute("SELECT coalesce(max(id), 0) FROM _sheetsync_history").fetchone()[0]
        names = ["_key", *columns, "_created_at", "_updated_at", "_source"]
        self.db.executemany(f"INSERT INTO {table_sql} (rowid, {', '.join(quote(c) for c in names)}) "
                            f"VALUES (?, {', '.join('?' * len(names))})",
                            zip(range(first + 1, first + n + 1), keys, *columns.values(), repeat(now, n),
                                repeat(now, n), repeat(layout, n)))
        affinity = {f: _SQL_TYPES.get(t, "TEXT") for f, t in self.tables().get(table, {}).items()}
        texts, passed = _history_texts(columns, affinity)
        per_row = json.dumps(list(zip(rows, *passed)) if passed else list(rows))
        self.db.execute(
            "INSERT INTO _sheetsync_history(id, tbl, record_key, field, old, new, action, run_id, at, "
            f"layout, sheet, row, actor) SELECT ? + j.key + 1, ?, r.\"_key\", NULL, NULL, {texts}, 'insert', "
            f"?, ?, ?, ?, {'j.value ->> 0' if passed else 'j.value'}, ? "
            f"FROM json_each(?) AS j CROSS JOIN {table_sql} AS r ON r.rowid = ? + j.key + 1",
            (after, table, run_id, now, layout, sheet, actor, per_row, first))
        return after

    def delete_record(self, table: str, key: str, *, run_id: str | None, layout: str | None = None,
                      sheet: str | None = None, row: int | None = None) -> int | None:
        """Soft delete: the record stays readable (and restorable) with _deleted = 1."""
        old = self.records(table, [key]).get(key)
        if old is None or old["_deleted"]:
            return None
        now = self.clock()
        self.db.execute(f'UPDATE {quote(table)} SET "_deleted" = 1, "_rev" = "_rev" + 1, '
                        f'"_updated_at" = ? WHERE "_key" = ?', (now, key))
        self._history(table, key, None, "0", "1", "delete", run_id, now, layout, sheet, row, None)
        return old["_rev"] + 1

    def _history(self, table: str, key: str, field: str | None, old: Any, new: Any, action: str,
                 run_id: str | None, at: float, layout: str | None, sheet: str | None,
                 row: int | None, actor: str | None) -> None:
        self.db.execute(
            "INSERT INTO _sheetsync_history(tbl, record_key, field, old, new, action, run_id, at, "
            "layout, sheet, row, actor) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (table, key, field, _text(old), _text(new), action, run_id, at, layout, sheet, row, actor))

    def history_mark(self, table: str) -> int:
        """Id of the newest history row of `table`: it moves whenever any record of it changes."""
        return self.db.execute("SELECT coalesce(max(id), 0) FROM _sheetsync_history WHERE tbl = ?",
                               (table,)).fetchone()[0]

    def history(self, table: str, key: str) -> list[dict[str, Any]]:
        """Every change of one record, one entry per field (an insert is kept as one row holding
        all its values, to keep first syncs of big sheets fast, and expanded here)."""
        cur = self.db.execute(
            "SELECT id, field, old, new, action, run_id, at, layout, sheet, row, actor "
            "FROM _sheetsync_history WHERE tbl = ? AND record_key = ? ORDER BY id", (table, key))
        names = [d[0] for d in cur.description]
        out: list[dict[str, Any]] = []
        for r in cur:
            entry = dict(zip(names, r))
            if entry["field"] is None and entry["action"] == "insert" and (entry["new"] or "").startswith("{"):
                out += [{**entry, "field": f, "new": v} for f, v in json.loads(entry["new"]).items()
                        if v is not None]  # an empty field is kept as null, or left out
            else:
                out.append(entry)
        return out

    def revisions(self, table: str) -> dict[str, int]:
        """_rev of every live record: a store-side change shows as a rev the base does not know."""
        return dict(self.db.execute(f'SELECT "_key", "_rev" FROM {quote(table)} WHERE "_deleted" = 0'))

    # -- runs, leases, meta ----------------------------------------------------------------------

    def start_run(self, run_id: str, layout: str) -> None:
        with self.transaction():
            self.db.execute("INSERT INTO _sheetsync_runs(run_id, layout, started) VALUES (?,?,?)",
                            (run_id, layout, self.clock()))

    def finish_run(self, run_id: str, outcome: str, result: Mapping[str, Any], message: str = "") -> None:
        self.db.execute("UPDATE _sheetsync_runs SET finished = ?, outcome = ?, result = ?, message = ? "
                        "WHERE run_id = ?", (self.clock(), outcome, json.dumps(result, ensure_ascii=False),
                                             message, run_id))

    def record_commit(self, run_id: str, result: Mapping[str, Any]) -> None:
        """The run's counts, saved by its commit: a run killed after it is finished, not failed."""
        self.db.execute("UPDATE _sheetsync_runs SET result = ? WHERE run_id = ?",
                        (json.dumps(result, ensure_ascii=False), run_id))

    def run(self, run_id: str) -> dict[str, Any] | None:
        return next(iter(self._runs(" WHERE run_id = ?", (run_id,))), None)

    def abandon_run(self, run_id: str, message: str) -> None:
        """Close a run its process never finished (killed): failed, unless it was finished."""
        self.db.execute("UPDATE _sheetsync_runs SET finished = ?, outcome = 'failed', message = ? "
                        "WHERE run_id = ? AND finished IS NULL", (self.clock(), message, run_id))

    def runs(self, layout: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where, params = (" WHERE layout = ?", (layout,)) if layout else ("", ())
        return self._runs(where + " ORDER BY started DESC, rowid DESC LIMIT ?", (*params, limit))

    def _runs(self, tail: str, params: tuple) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT run_id, layout, started, finished, outcome, result, message "
                              "FROM _sheetsync_runs" + tail, params)
        return [{"run_id": r, "layout": lay, "started": s, "finished": f, "outcome": o,
                 "result": json.loads(res) if res else None, "message": m}
                for r, lay, s, f, o, res, m in cur]

    def acquire_lease(self, layout: str, holder: str, ttl: float) -> bool:
        """Take the layout's lease unless a live holder has it; an expired lease is taken over."""
        now = self.clock()
        with self.transaction():
            row = self.db.execute("SELECT holder, expires FROM _sheetsync_leases WHERE layout = ?",
                                  (layout,)).fetchone()
            if row and row[0] != holder and row[1] > now:
                return False
            self.db.execute("INSERT OR REPLACE INTO _sheetsync_leases(layout, holder, expires) VALUES (?,?,?)",
                            (layout, holder, now + ttl))
        return True

    def release_lease(self, layout: str, holder: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM _sheetsync_leases WHERE layout = ? AND holder = ?", (layout, holder))

    def lease_holder(self, layout: str) -> tuple[str, float] | None:
        row = self.db.execute("SELECT holder, expires FROM _sheetsync_leases WHERE layout = ?", (layout,)).fetchone()
        return (row[0], row[1]) if row else None

    def get_meta(self, scope: str, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM _sheetsync_meta WHERE scope = ? AND name = ?",
                              (scope, name)).fetchone()
        return row[0] if row else None

    def set_meta(self, scope: str, name: str, value: str | None) -> None:
        self.db.execute("INSERT OR REPLACE INTO _sheetsync_meta(scope, name, value) VALUES (?,?,?)",
                        (scope, name, value))


def _history_texts(columns: Mapping[str, Sequence[WriteValue]],
                   sql_types: Mapping[str, str]) -> tuple[str, list[Sequence[str | None]]]:
    """The SQL of an insert history row's JSON (`r`: its record, `j`: its json_each row), and the
    columns whose texts must be passed in. A record holds texts, ints and bools so that SQLite
    gives back exactly what `_text` writes; not a float (Python's shortest text is its own,
    SQLite prints 15 digits), nor a text that INTEGER affinity made a number ("05")."""
    parts, passed = [], []
    for f, values in columns.items():
        kinds = set(map(type, values)) - {type(None)}
        col, affinity = "r." + quote(f), sql_types.get(f)
        if kinds <= ({str, int} if affinity == "TEXT" else {int}) and affinity in ("TEXT", "INTEGER"):
            expr = f"CAST({col} AS TEXT)"
        elif kinds == {bool} and affinity in ("TEXT", "INTEGER"):
            expr = f"CASE WHEN {col} IS NULL THEN NULL WHEN {col} THEN 'True' ELSE 'False' END"
        else:
            passed.append(values if kinds <= {str} else [_text(v) for v in values])
            expr = f"j.value ->> {len(passed)}"
        parts.append(f"{literal(f)}, {expr}")
    return (f"json_object({', '.join(parts)})" if parts else "'{}'"), passed


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
