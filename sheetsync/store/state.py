"""Store methods for the state a sync carries between runs: base rows, open problems, sheetsync's
marks on cells, and the outbox of patches not yet applied.

A mixin of Store (store/__init__.py), kept apart so each file stays one concept; like it, the
only place these tables are touched.
"""
from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from ..model import Patch, canonical_text
from .sql import chunks


def encode_texts(texts: Mapping[str, Any]) -> str:
    """JSON of a flat dict of text as history and base rows keep it: values that are not str go
    through str(), None values are left out, non-ASCII stays readable in the file."""
    return json.dumps({f: v if v.__class__ is str else str(v) for f, v in texts.items() if v is not None},
                      ensure_ascii=False)


_PUT_BASE = ("INSERT OR REPLACE INTO _sheetsync_base(layout, ident, hash, row, sheet_vals, store_vals, rev) "
             "VALUES (?,?,?,?,?,?,?)")


class BaseRow(NamedTuple):
    """What sheet and store agreed on for one row at the end of the last run (a NamedTuple: a
    resync builds one per row, and tuples are several times cheaper than frozen dataclasses).

    `sheet` and `store` None: both are the texts of the record's values as they are now (the
    usual case, stored without a copy of the values; see `put_base`). `resolve` fills them in.
    """

    hash: str
    row: int | None
    sheet: dict[str, str] | None
    store: dict[str, str] | None
    rev: int | None

    def resolve(self, record: Mapping[str, Any] | None) -> "BaseRow":
        """This base with record-derived values made explicit (`record`: the store's record now)."""
        if self.sheet is not None:
            return self
        texts = record_texts(record) if record is not None else {}
        return self._replace(sheet=texts, store=texts)


#: sheet_vals of a base row whose values are the record's own (no copy of them is kept)
DERIVED = "@"


def record_texts(record: Mapping[str, Any]) -> dict[str, str]:
    """field -> text of a stored record, as reconcile compares it (sheetsync's columns left out)."""
    return {f: canonical_text(v) for f, v in record.items() if not f.startswith("_")}


@dataclass(frozen=True)
class Mark:
    kind: str
    fill: str | None
    note: str | None
    prior_fill: str | None


class SyncStateMixin:
    """Mixed into Store; uses self.db (sqlite3 connection) and self.clock."""

    db: Any
    clock: Any

    def base(self, layout: str, idents: Iterable[str] | None = None) -> dict[str, BaseRow]:
        """Base rows with their values (all, or of `idents`)."""
        sql = "SELECT ident, hash, row, sheet_vals, store_vals, rev FROM _sheetsync_base WHERE layout = ?"
        if idents is None:
            rows = self.db.execute(sql, (layout,)).fetchall()
        else:
            rows = []
            for chunk in chunks(list(idents), 500):
                rows += self.db.execute(sql + f" AND ident IN ({','.join('?' * len(chunk))})",
                                        (layout, *chunk)).fetchall()
        out = {}
        for i, h, r, s, st, rev in rows:
            if s == DERIVED:
                out[i] = BaseRow(h, r, None, None, rev)
                continue
            sheet_vals = json.loads(s)
            out[i] = BaseRow(h, r, sheet_vals, sheet_vals if st == "=" else json.loads(st), rev)
        return out

    def base_count(self, layout: str) -> int:
        return self.db.execute("SELECT count(*) FROM _sheetsync_base WHERE layout = ?", (layout,)).fetchone()[0]

    def base_index(self, layout: str) -> dict[str, BaseRow]:
        """Base rows without their values: enough to tell unchanged rows by hash, cheaply."""
        cur = self.db.execute("SELECT ident, hash, row, rev FROM _sheetsync_base WHERE layout = ?", (layout,))
        empty: dict[str, str] = {}  # shared: these rows are only compared by hash
        return {i: BaseRow(h, r, empty, empty, rev) for i, h, r, rev in cur}

    def put_base(self, layout: str, rows: Mapping[str, BaseRow], removed: Iterable[str] = (),
                 table: str | None = None) -> None:
        """Keep the base rows of `layout` (whose records live in `table`). A row whose values are
        the record's own (sheet and store None) is kept as DERIVED, without a copy of them; any
        later change of that record's values writes them out first (`materialise_base`)."""
        self.db.executemany("DELETE FROM _sheetsync_base WHERE layout = ? AND ident = ?",
                            [(layout, i) for i in removed])
        params = []
        derived = False
        for i, b in rows.items():
            if b.sheet is None:
                derived = True
                params.append((layout, i, b.hash, b.row, DERIVED, "=", b.rev))
            else:  # "=": store values equal the sheet's
                params.append((layout, i, b.hash, b.row, encode_texts(b.sheet),
                               "=" if b.store == b.sheet else encode_texts(b.store), b.rev))
        if derived:
            if table is None:
                raise ValueError("put_base: derived base rows need their table")
            self._rest_base_on(layout, table)
        self.db.executemany(_PUT_BASE, params)

    def put_inserted_base(self, layout: str, table: str, hashes: Sequence[str], after: int) -> None:
        """Base rows of the records `insert_records` just wrote exactly as the sheet has them:
        DERIVED (the record's own values), rev 1; `hashes` in the order of their insert history
        rows, which follow history id `after` (what insert_records returned) and give each its
        key and sheet row."""
        if not hashes:
            return
        self._rest_base_on(layout, table)
        self.db.execute("INSERT OR REPLACE INTO _sheetsync_base(layout, ident, hash, row, sheet_vals, store_vals, rev) "
                        "SELECT ?, h.record_key, j.value, h.row, ?, '=', 1 "
                        "FROM json_each(?) AS j CROSS JOIN _sheetsync_history AS h ON h.id = ? + j.key + 1",
                        (layout, DERIVED, json.dumps(list(hashes)), after))

    def _rest_base_on(self, layout: str, table: str) -> None:
        """Note that DERIVED base rows of `layout` rest on records of `table` (materialise_base)."""
        self.db.execute("INSERT OR REPLACE INTO _sheetsync_meta(scope, name, value) VALUES (?,?,?)",
                        ("base_table", layout, table))

    def materialise_base(self, table: str, key: str, record: Mapping[str, Any]) -> None:
        """Before a record's values change: every DERIVED base row resting on it gets the values
        it rests on written out, so three-way reconcile still sees what sheet and store agreed."""
        layouts = [r[0] for r in self.db.execute(
            "SELECT name FROM _sheetsync_meta WHERE scope = 'base_table' AND value = ?", (table,))]
        if not layouts:
            return
        texts = encode_texts(record_texts(record))
        self.db.executemany(
            "UPDATE _sheetsync_base SET sheet_vals = ?, store_vals = '=' "
            "WHERE layout = ? AND ident = ? AND sheet_vals = ?",
            [(texts, name, key, DERIVED) for name in layouts])

    def relocate(self, layout: str, moved: Mapping[str, int]) -> None:
        """Rows people moved (sorted, inserted above): keep problem cells and base rows right."""
        self.db.executemany("UPDATE _sheetsync_problems SET row = ? WHERE layout = ? AND ident = ?",
                            [(r, layout, i) for i, r in moved.items()])
        self.db.executemany("UPDATE _sheetsync_base SET row = ? WHERE layout = ? AND ident = ?",
                            [(r, layout, i) for i, r in moved.items()])

    def rows_removed(self, layout: str, removed: Sequence[tuple[str | None, int]]) -> None:
        """Rows sheetsync removed from the sheet, (ident, row as numbered before the removals):
        their base row, problems and marks go, and every row below moves up past them."""
        if not removed:
            return
        idents = [(layout, i) for i, _ in removed if i is not None]
        for table in ("_sheetsync_base", "_sheetsync_problems", "_sheetsync_marks"):
            self.db.executemany(f"DELETE FROM {table} WHERE layout = ? AND ident = ?", idents)
        gone = sorted(r for _, r in removed)
        for table in ("_sheetsync_base", "_sheetsync_problems"):
            below = self.db.execute(f"SELECT rowid, row FROM {table} WHERE layout = ? AND row > ?",
                                    (layout, gone[0])).fetchall()
            self.db.executemany(f"UPDATE {table} SET row = ? WHERE rowid = ?",
                                [(row - bisect.bisect_left(gone, row), rid) for rid, row in below])

    def problems(self, layout: str) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT ident, field, code, params, row, col, run_id, opened "
                              "FROM _sheetsync_problems WHERE layout = ? ORDER BY row, col, code", (layout,))
        return [{"ident": i, "field": f, "code": c, "params": json.loads(p), "row": r, "col": col,
                 "run_id": run, "opened": o} for i, f, c, p, r, col, run, o in cur]

    def replace_problems(self, layout: str, idents: Iterable[str], problems: Iterable[dict[str, Any]],
                         run_id: str) -> None:
        """Close every open problem of `idents`, then open `problems` (kept `opened` if still open)."""
        opened = {(p["ident"], p["field"], p["code"]): p["opened"] for p in self.problems(layout)}
        with_open = {i for i, _, _ in opened}
        idents = [i for i in idents if i in with_open]  # a first sync of 100k rows deletes nothing
        for chunk in chunks(idents, 500):
            self.db.execute(f"DELETE FROM _sheetsync_problems WHERE layout = ? AND ident IN "
                            f"({','.join('?' * len(chunk))})", (layout, *chunk))
        now = self.clock()
        self.db.executemany(
            "INSERT OR REPLACE INTO _sheetsync_problems(layout, ident, field, code, params, row, col, run_id, opened) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            [(layout, p["ident"], p["field"] or "", p["code"], json.dumps(p["params"], ensure_ascii=False, default=str),
              p.get("row"), p.get("col"), run_id, opened.get((p["ident"], p["field"] or "", p["code"]), now))
             for p in problems])

    def marks(self, layout: str) -> dict[tuple[str, str], Mark]:
        cur = self.db.execute("SELECT ident, field, kind, fill, note, prior_fill FROM _sheetsync_marks "
                              "WHERE layout = ?", (layout,))
        return {(i, f): Mark(k, fill, note, prior) for i, f, k, fill, note, prior in cur}

    def put_marks(self, layout: str, marks: Mapping[tuple[str, str], Mark | None]) -> None:
        """Set or (value None) remove marks."""
        self.db.executemany("DELETE FROM _sheetsync_marks WHERE layout = ? AND ident = ? AND field = ?",
                            [(layout, i, f) for (i, f), m in marks.items() if m is None])
        self.db.executemany(
            "INSERT OR REPLACE INTO _sheetsync_marks(layout, ident, field, kind, fill, note, prior_fill) "
            "VALUES (?,?,?,?,?,?,?)",
            [(layout, i, f, m.kind, m.fill, m.note, m.prior_fill) for (i, f), m in marks.items() if m])

    # -- outbox ----------------------------------------------------------------------------------

    def add_outbox(self, layout: str, run_id: str, patches: Sequence[tuple[Patch, str | None, str | None]]) -> None:
        """Queue (patch, ident, field) triples; committed with the run so a crash can replay them."""
        self.db.executemany(
            "INSERT INTO _sheetsync_outbox(layout, run_id, patch, ident, field) VALUES (?,?,?,?,?)",
            [(layout, run_id, json.dumps(p.to_json(), ensure_ascii=False), i, f) for p, i, f in patches])

    def outbox(self, layout: str) -> list[tuple[int, Patch, str | None, str | None]]:
        cur = self.db.execute("SELECT id, patch, ident, field FROM _sheetsync_outbox WHERE layout = ? "
                              "ORDER BY id", (layout,))
        return [(i, Patch.from_json(json.loads(p)), ident, f) for i, p, ident, f in cur]

    def drop_outbox(self, ids: Iterable[int]) -> None:
        self.db.executemany("DELETE FROM _sheetsync_outbox WHERE id = ?", [(i,) for i in ids])

