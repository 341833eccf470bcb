"""Store methods for fuzzy dedupe (issue 4): block-key index, fitted model, admin pair decisions.

A mixin of Store, kept beside it so store/__init__.py stays readable; like it, the only place
these tables are touched. Tables are created lazily, so stores made before issue 4 need no migration.
"""
from __future__ import annotations

import sqlite3
from typing import Any, Callable, ContextManager, Iterable, Mapping

from .sql import chunks, quote

_TABLES = """
CREATE TABLE IF NOT EXISTS _sheetsync_blocks (
    tbl TEXT NOT NULL, record_key TEXT NOT NULL, block TEXT NOT NULL,
    PRIMARY KEY (tbl, record_key, block)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS _sheetsync_blocks_block ON _sheetsync_blocks(tbl, block);
CREATE TABLE IF NOT EXISTS _sheetsync_dedupe_models (
    tbl TEXT PRIMARY KEY, model TEXT NOT NULL, records INTEGER, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS _sheetsync_pairs (
    tbl TEXT NOT NULL, a TEXT NOT NULL, b TEXT NOT NULL, decision TEXT NOT NULL
        CHECK (decision IN ('distinct', 'merged')),
    at REAL NOT NULL, actor TEXT, PRIMARY KEY (tbl, a, b));
"""


def _ordered(a: str, b: str) -> tuple[str, str]:
    """A pair decision is about two records, not a direction: store it once, smaller key first."""
    return (a, b) if a <= b else (b, a)


class DedupeStoreMixin:
    """Mixed into Store; uses self.db (sqlite3 connection) and self.transaction()."""

    db: sqlite3.Connection
    clock: Callable[[], float]
    transaction: Callable[[], ContextManager[None]]
    _dedupe_ready: bool = False

    def ensure_dedupe_tables(self) -> None:
        """CREATE TABLE IF NOT EXISTS once per connection (cheap, and no schema migration)."""
        if self._dedupe_ready:
            return
        for statement in filter(str.strip, _TABLES.split(";")):
            self.db.execute(statement)
        self._dedupe_ready = True

    # -- block-key index ---------------------------------------------------------------------

    def put_block_keys(self, table: str, key: str, blocks: Iterable[str]) -> None:
        """Replace one record's block keys."""
        self.put_many_block_keys(table, {key: list(blocks)})

    def put_many_block_keys(self, table: str, items: Mapping[str, Iterable[str]]) -> None:
        """Replace the block keys of many records (one executemany per statement)."""
        self.ensure_dedupe_tables()
        with self.transaction():
            self.drop_block_keys(table, list(items))
            self.db.executemany(
                "INSERT OR IGNORE INTO _sheetsync_blocks(tbl, record_key, block) VALUES (?,?,?)",
                [(table, k, b) for k, blocks in items.items() for b in blocks])

    def drop_block_keys(self, table: str, keys: Iterable[str]) -> None:
        self.ensure_dedupe_tables()
        self.db.executemany("DELETE FROM _sheetsync_blocks WHERE tbl = ? AND record_key = ?",
                            [(table, k) for k in keys])

    def clear_block_keys(self, table: str) -> None:
        """Forget a table's whole index (before a rebuild with other rules)."""
        self.ensure_dedupe_tables()
        self.db.execute("DELETE FROM _sheetsync_blocks WHERE tbl = ?", (table,))

    def candidates(self, table: str, blocks: Iterable[str], exclude: Iterable[str] = (), *,
                   max_block: int | None = None) -> set[str]:
        """Keys of live records sharing any of `blocks`. Blocks holding more than `max_block`
        records are skipped, as a full re-scan skips them (a bad key must not cost the table)."""
        self.ensure_dedupe_tables()
        wanted = sorted(set(blocks))
        if max_block is not None and wanted:
            wanted = [b for b in wanted if self._block_count(table, b) <= max_block]
        found: set[str] = set()
        for chunk in chunks(wanted):
            cur = self.db.execute(
                f"SELECT DISTINCT b.record_key FROM _sheetsync_blocks b JOIN {quote(table)} t "
                f'ON t."_key" = b.record_key WHERE b.tbl = ? AND t."_deleted" = 0 AND '
                f"b.block IN ({','.join('?' * len(chunk))})", (table, *chunk))
            found.update(k for (k,) in cur)
        return found - set(exclude)

    def _block_count(self, table: str, block: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM _sheetsync_blocks WHERE tbl = ? AND block = ?",
                               (table, block)).fetchone()[0]

    def block_sizes(self, table: str, top: int = 10) -> list[tuple[str, int]]:
        """The largest blocks (live records), so an admin sees a block key that lumps too much."""
        self.ensure_dedupe_tables()
        cur = self.db.execute(
            f"SELECT b.block, COUNT(*) AS n FROM _sheetsync_blocks b JOIN {quote(table)} t "
            f'ON t."_key" = b.record_key WHERE b.tbl = ? AND t."_deleted" = 0 '
            "GROUP BY b.block ORDER BY n DESC, b.block LIMIT ?", (table, top))
        return [(b, n) for b, n in cur]

    def count_live(self, table: str) -> int:
        return self.db.execute(f'SELECT COUNT(*) FROM {quote(table)} WHERE "_deleted" = 0').fetchone()[0]

    def sample_live(self, table: str, limit: int) -> dict[str, dict[str, Any]]:
        """Up to `limit` live records (oldest first), to fit the model on a huge table."""
        cur = self.db.execute(f'SELECT * FROM {quote(table)} WHERE "_deleted" = 0 ORDER BY rowid LIMIT ?',
                              (limit,))
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row)) for row in cur}

    # -- fitted model ------------------------------------------------------------------------

    def get_dedupe_model(self, table: str) -> str | None:
        self.ensure_dedupe_tables()
        row = self.db.execute("SELECT model FROM _sheetsync_dedupe_models WHERE tbl = ?", (table,)).fetchone()
        return row[0] if row else None

    def dedupe_model_records(self, table: str) -> int | None:
        """How many live records the stored model was fitted on (to refit when the table grows)."""
        self.ensure_dedupe_tables()
        row = self.db.execute("SELECT records FROM _sheetsync_dedupe_models WHERE tbl = ?", (table,)).fetchone()
        return row[0] if row else None

    def put_dedupe_model(self, table: str, model_json: str, records: int | None = None) -> None:
        self.ensure_dedupe_tables()
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO _sheetsync_dedupe_models(tbl, model, records, at) "
                            "VALUES (?,?,?,?)", (table, model_json, records, self.clock()))

    # -- admin decisions ---------------------------------------------------------------------

    def _decide(self, table: str, a: str, b: str, decision: str, actor: str | None) -> None:
        self.ensure_dedupe_tables()
        self.db.execute("INSERT OR REPLACE INTO _sheetsync_pairs(tbl, a, b, decision, at, actor) "
                        "VALUES (?,?,?,?,?,?)", (table, *_ordered(a, b), decision, self.clock(), actor))

    def mark_distinct(self, table: str, a: str, b: str, actor: str | None = None) -> None:
        """An admin said a and b are two entities: never flag the pair again."""
        with self.transaction():
            self._decide(table, a, b, "distinct", actor)

    def is_distinct(self, table: str, a: str, b: str) -> bool:
        self.ensure_dedupe_tables()
        row = self.db.execute("SELECT 1 FROM _sheetsync_pairs WHERE tbl = ? AND a = ? AND b = ? "
                              "AND decision = 'distinct'", (table, *_ordered(a, b))).fetchone()
        return row is not None

    def distinct_pairs(self, table: str) -> set[frozenset[str]]:
        self.ensure_dedupe_tables()
        cur = self.db.execute("SELECT a, b FROM _sheetsync_pairs WHERE tbl = ? AND decision = 'distinct'",
                              (table,))
        return {frozenset(r) for r in cur}

    def resolved_pairs(self, table: str) -> set[frozenset[str]]:
        """Pairs an admin decided (distinct or merged): neither is flagged again."""
        self.ensure_dedupe_tables()
        return {frozenset(r) for r in self.db.execute("SELECT a, b FROM _sheetsync_pairs WHERE tbl = ?", (table,))}

    def pair_decisions(self, table: str) -> list[dict[str, Any]]:
        self.ensure_dedupe_tables()
        cur = self.db.execute("SELECT a, b, decision, at, actor FROM _sheetsync_pairs WHERE tbl = ? "
                              "ORDER BY at, a, b", (table,))
        return [{"a": a, "b": b, "decision": d, "at": at, "actor": who} for a, b, d, at, who in cur]

    def merge_records(self, table: str, keep: str, drop: str, values: Mapping[str, Any], run_id: str | None,
                      actor: str | None = None, layout: str | None = None) -> int:
        """Write the merged `values` onto `keep`, soft-delete `drop` (history says into which
        record) and record the decision, all in one transaction. Returns keep's new _rev."""
        with self.transaction():
            rev = self.write_record(table, keep, values, action="merge",  # type: ignore[attr-defined]
                                    run_id=run_id, layout=layout, actor=actor)
            self.delete_record(table, drop, run_id=run_id, layout=layout)  # type: ignore[attr-defined]
            self._history(table, drop, None, None, keep, "merged_into",  # type: ignore[attr-defined]
                          run_id, self.clock(), layout, None, None, actor)
            self.drop_block_keys(table, [drop])
            self._decide(table, keep, drop, "merged", actor)
        return rev

    def merged_into(self, table: str) -> dict[str, str]:
        """drop -> keep for every record of `table` merged away and still deleted, so a sync never
        revives its row (it removes the row, or marks it where it must stay)."""
        from .sql import quote
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = '_sheetsync_pairs'").fetchone() is None:
            return {}
        # from the few merged pairs, not a scan of the table's whole history (every sync asks)
        cur = self.db.execute(
            f"SELECT h.record_key, h.new FROM _sheetsync_pairs AS p JOIN _sheetsync_history AS h "
            f"ON h.tbl = p.tbl AND h.record_key IN (p.a, p.b) AND h.action = 'merged_into' "
            f'JOIN {quote(table)} AS t ON t."_key" = h.record_key AND t."_deleted" = 1 '
            f"WHERE p.tbl = ? AND p.decision = 'merged' ORDER BY h.id", (table,))
        return dict(cur.fetchall())

    def close_duplicate_problems(self, layout: str, a: str, b: str) -> int:
        """Close the open `duplicate` problems of the pair (either direction) once an admin
        resolved it, and forget their cell marks, so the next sync clears the orange note
        (its stray-note sweep) even when the row itself is unchanged. Returns problems closed."""
        where = ("layout = ? AND code = 'duplicate' AND "
                 "((ident = ? AND json_extract(params, '$.other_key') = ?) OR "
                 " (ident = ? AND json_extract(params, '$.other_key') = ?))")
        args = (layout, a, b, b, a)
        with self.transaction():
            cells = self.db.execute(f"SELECT ident, field FROM _sheetsync_problems WHERE {where}", args).fetchall()
            self.db.execute(f"DELETE FROM _sheetsync_problems WHERE {where}", args)
            self.db.executemany("DELETE FROM _sheetsync_marks WHERE layout = ? AND ident = ? AND field = ? "
                                "AND kind = 'duplicate'", [(layout, i, f) for i, f in cells])
        return len(cells)
