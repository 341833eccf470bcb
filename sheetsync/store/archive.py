"""Store methods for archiving stale records (issue 5): archive tables and moves, with history.

A mixin of Store, kept beside it so store/__init__.py stays readable. Archive tables are created
lazily (CREATE TABLE IF NOT EXISTS) with the live table's columns plus archived_at and archive_run, and
listed in `_sheetsync_archives` so exact dedupe can still find archived records.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from .sql import chunks, quote

#: a test on one column: (column, op, value) with op "=" (value), "in" (list), "<" (cutoff)
Test = tuple[str, str, Any]
_ARCHIVE_COLUMNS = (("archived_at", "REAL"), ("archive_run", "TEXT"))


class ArchiveStoreMixin:
    """Mixed into Store; uses self.db (sqlite3 connection) and self.transaction()."""

    db: Any

    def archive_candidates(self, table: str, tests: Sequence[Test]) -> dict[str, dict[str, Any]]:
        """Live records of `table` passing every test, by key. A "<" test skips empty values."""
        where, params = ['"_deleted" = 0'], []
        for column, op, value in tests:
            col = quote(column)
            if op == "=":
                where.append(f"{col} IS ?")
                params.append(value)
            elif op == "in":
                where.append(f"{col} IN ({', '.join('?' * len(value))})" if value else "0")
                params.extend(value)
            elif op == "<":
                where.append(f"{col} IS NOT NULL AND {col} <> '' AND {col} < ?")
                params.append(value)
            else:
                raise ValueError(f"unknown archive test {op!r}")
        if not self._has_table(table):
            return {}
        cur = self.db.execute(f"SELECT * FROM {quote(table)} WHERE {' AND '.join(where)} "
                              'ORDER BY "_key"', params)
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row)) for row in cur}

    def _has_table(self, table: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (table,)).fetchone() is not None

    def ensure_archive_table(self, table: str, archive_table: str) -> None:
        """The archive table: the live table's columns (any added since too) + archived_at, run."""
        live = [(r[1], r[2]) for r in self.db.execute(f"PRAGMA table_info({quote(table)})")]
        cols = [*live, *_ARCHIVE_COLUMNS]
        with self.transaction():  # type: ignore[attr-defined]
            self.db.execute("CREATE TABLE IF NOT EXISTS _sheetsync_archives (tbl TEXT NOT NULL, "
                            "archive TEXT NOT NULL, PRIMARY KEY (tbl, archive))")
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {quote(archive_table)} ("
                            + ", ".join(f"{quote(n)} {t}" for n, t in cols) + ")")
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({quote(archive_table)})")}
            for name, kind in cols:
                if name not in have:
                    self.db.execute(f"ALTER TABLE {quote(archive_table)} ADD COLUMN "
                                    f"{quote(name)} {kind}")
            self.db.execute(f"CREATE INDEX IF NOT EXISTS {quote('_sheetsync_ix_' + archive_table)}"
                            f" ON {quote(archive_table)}(\"_key\")")
            self.db.execute("INSERT OR IGNORE INTO _sheetsync_archives(tbl, archive) VALUES (?, ?)",
                            (table, archive_table))

    def archive_records(self, table: str, archive_table: str, keys: Iterable[str], *,
                        run_id: str, layout: str | None, rows: dict[str, int] | None = None,
                        sheet: str | None = None) -> dict[str, int]:
        """Copy live records into the archive table, then soft-delete them with history action
        "archive". Returns key -> the live record's new _rev. One transaction with the caller's."""
        now = self.clock()  # type: ignore[attr-defined]
        keys = list(keys)
        self.ensure_archive_table(table, archive_table)
        live = [r[1] for r in self.db.execute(f"PRAGMA table_info({quote(table)})")]
        names = ", ".join(quote(n) for n in live)
        revs: dict[str, int] = {}
        with self.transaction():  # type: ignore[attr-defined]
            for key in keys:
                cur = self.db.execute(
                    f"INSERT INTO {quote(archive_table)} ({names}, \"archived_at\", \"archive_run\") "
                    f"SELECT {names}, ?, ? FROM {quote(table)} WHERE \"_key\" = ? AND \"_deleted\" = 0",
                    (now, run_id, key))
                if cur.rowcount != 1:
                    continue  # deleted or archived meanwhile: nothing to move
                self.db.execute(f'UPDATE {quote(table)} SET "_deleted" = 1, "_rev" = "_rev" + 1, '
                                '"_updated_at" = ? WHERE "_key" = ?', (now, key))
                revs[key] = self.db.execute(f'SELECT "_rev" FROM {quote(table)} WHERE "_key" = ?',
                                            (key,)).fetchone()[0]
                self._history(table, key, None, "0", "1", "archive", run_id, now,  # type: ignore[attr-defined]
                              layout, sheet, (rows or {}).get(key), None)
        return revs

    def record_row_removal(self, table: str, key: str, *, why: str, run_id: str, layout: str,
                           sheet: str | None, row: int | None) -> bool:
        """History action "remove_row": sheetsync committed to removing the record's row from a
        sheet (`why`: "merged into K", "archived"). Once per removal: a replanned removal (the
        first was deferred) adds nothing. Returns whether a history row was added."""
        last = self.db.execute("SELECT action, layout FROM _sheetsync_history WHERE tbl = ? AND record_key = ? "
                               "ORDER BY id DESC LIMIT 1", (table, key)).fetchone()
        if last is not None and tuple(last) == ("remove_row", layout):
            return False
        self._history(table, key, None, None, why, "remove_row", run_id, self.clock(),  # type: ignore[attr-defined]
                      layout, sheet, row, None)
        return True

    def archived(self, archive_table: str) -> list[dict[str, Any]]:
        """Every row of an archive table, oldest archive first (empty if it does not exist)."""
        if not self._has_table(archive_table):
            return []
        cur = self.db.execute(f'SELECT * FROM {quote(archive_table)} ORDER BY "archived_at", rowid')
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur]

    def archive_tables(self, table: str) -> list[str]:
        if not self._has_table("_sheetsync_archives"):
            return []
        return [r[0] for r in self.db.execute(
            "SELECT archive FROM _sheetsync_archives WHERE tbl = ? ORDER BY archive", (table,))]

    def archived_matches(self, table: str, fields: Sequence[str],
                         values: Iterable[tuple]) -> dict[tuple, list[str]]:
        """Keys of archived copies of `table`'s records whose `fields` equal each value tuple,
        so exact dedupe still flags a new row that repeats an archived record."""
        archives = self.archive_tables(table)
        if not archives:
            return {}
        wanted = {v for v in values if all(x not in (None, "") for x in v)}
        found: dict[tuple, list[str]] = {}
        cols = ", ".join(quote(f) for f in fields)
        firsts = sorted({v[0] for v in wanted}, key=str)
        for archive_table in archives:
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({quote(archive_table)})")}
            if not set(fields) <= have:
                continue
            for chunk in chunks(firsts, 500):
                sql = (f'SELECT DISTINCT "_key", {cols} FROM {quote(archive_table)} WHERE '
                       f'{quote(fields[0])} IN ({",".join("?" * len(chunk))})')
                for key, *vals in self.db.execute(sql, chunk):
                    if tuple(vals) in wanted and key not in found.get(tuple(vals), []):
                        found.setdefault(tuple(vals), []).append(key)
        return found
