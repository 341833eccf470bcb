"""Steps 4 and 6 of a run: identify each sheet row (new, changed, unchanged, deleted) and find
exact-key duplicates against the batch and the store.

Unchanged rows are recognised by their hash alone, so a no-change resync costs little more than
the read itself.
"""
from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter
from typing import Any, Callable, Mapping

from ..errors import LayoutError, SourceError
from ..layout_checks import NO_IDENTITY
from ..text import fold_header as fold
from ..layout import Layout
from ..model import Problem, SheetData, canonical_text, row_hash
from ..rules import column_of
from ..rules.checked import Checked, row_key_values
from ..store import BaseRow, Store


@dataclass
class SheetIndex:
    """The rows of one read, by identity (the record key, or `row:N` while a row has none)."""

    base: dict[str, BaseRow]
    rows: dict[str, int] = field(default_factory=dict)            # ident -> sheet row number
    values: dict[str, tuple] = field(default_factory=dict)        # ident -> the whole row as read
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)  # ident -> field -> cell
    hashes: dict[str, str] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)              # new or edited since the base
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    moved: dict[str, int] = field(default_factory=dict)           # unchanged rows now at another row
    key_clash: dict[str, str] = field(default_factory=dict)       # ident -> ident of the earlier row
    new_ids: dict[str, int] = field(default_factory=dict)         # managed ids to write: ident -> row
    key_taken: dict[str, str] = field(default_factory=dict)       # record -> the key its row now shows

    def anchor(self, ident: str, col1: Mapping[str, int]) -> tuple[int, str] | None:
        """(column, text) of the cell identifying the row: its key cell, or its managed id cell."""
        for f in self._key_fields:
            if f in col1:
                return (col1[f], canonical_text(self.field_values(ident).get(f)))
        if self._id_col is not None:
            values = self.values[ident]
            return (self._id_col + 1, canonical_text(values[self._id_col] if self._id_col < len(values) else None))
        return None

    _key_fields: tuple[str, ...] = ()
    _id_col: int | None = None
    _cols: dict[str, int] = field(default_factory=dict)

    def fields_of(self, values: tuple) -> dict[str, Any]:
        return {f: (values[c] if c < len(values) else None) for f, c in self._cols.items()}

    def field_values(self, ident: str) -> dict[str, Any]:
        """field -> cell of one row, built on first use (unchanged rows never need it)."""
        raw = self.raw.get(ident)
        if raw is None:
            raw = self.raw[ident] = self.fields_of(self.values[ident])
        return raw


def index_sheet(data: SheetData, cols: Mapping[str, int], layout: Layout, checker: Any,
               base: dict[str, BaseRow], id_col: int | None = None,
               new_id: Callable[[], str] = lambda: "R" + uuid.uuid4().hex[:12]) -> SheetIndex:
    """Identify every row. With no key but a managed id column (`id_col`, 0-based), a row's id
    cell is its identity; a row without one (new, or a copy of another row) gets a fresh id."""
    index = SheetIndex(base=base, _key_fields=tuple(layout.key_fields), _id_col=id_col, _cols=dict(cols))
    by_hash: dict[str, str] = {}
    shared: set[str] = set()  # hashes of identical rows: those need their identity worked out
    for ident, b in base.items():
        if b.hash in by_hash:
            shared.add(b.hash)
        by_hash[b.hash] = ident
    claimed: set[str] = set()
    hashes = [row_hash(r.values) for r in data.rows]
    if not base and id_col is None:  # a first sync: every row is new, identified by its key
        idents = _idents(data.rows, cols, layout.key_fields, checker)
        if len(set(idents)) == len(idents):  # and no two rows share one: no per-row walk needed
            index.changed = idents
            index.rows = dict(zip(idents, [r.number for r in data.rows]))
            index.values = dict(zip(idents, [r.values for r in data.rows]))
            index.hashes = dict(zip(idents, hashes))
            return index
    # first the rows exactly as the last run left them (a hash and two dict lookups each: the
    # cheap path of a resync), so a key typed over another row's key never takes its record
    found = _ids_by_hash(hashes, by_hash, shared, base, claimed)
    rest = [n for n, ident in enumerate(found) if ident is None]
    if id_col is not None:
        _ids_by_cell(index, data, rest, id_col, found, claimed, new_id)
    elif rest:
        _ids_by_key(index, data, rest, found, claimed, _idents([data.rows[n] for n in rest], cols,
                                                                  layout.key_fields, checker))
    for sheet_row, ident, h in zip(data.rows, found, hashes):
        b = base.get(ident)
        if b is not None and b.hash == h:
            index.unchanged.append(ident)
            if b.row != sheet_row.number:
                index.moved[ident] = sheet_row.number
        else:
            index.changed.append(ident)
        index.rows[ident], index.values[ident], index.hashes[ident] = sheet_row.number, sheet_row.values, h
    index.deleted = [i for i in base if i not in claimed]
    return index


def _ids_by_hash(hashes: list, by_hash: dict[str, str], shared: set[str], base: Mapping[str, BaseRow],
                 claimed: set[str]) -> list[str | None]:
    """Each row's identity when its hash is one base row's alone (None: work it out otherwise).
    A held-back clash row (`KEY@rowN`) is never found so: it is worked out by its key again."""
    internal = {i for i in base if "@row" in i}
    found: list[str | None] = [None] * len(hashes)
    for n, h in enumerate(hashes):
        ident = by_hash.get(h)
        if ident is not None and h not in shared and ident not in claimed and ident not in internal:
            found[n] = ident
            claimed.add(ident)
    return found


def _ids_by_cell(index: SheetIndex, data: SheetData, rest: list[int], id_col: int, found: list,
                 claimed: set[str], new_id: Callable[[], str]) -> None:
    """Managed ids: a row's id cell is its identity; a row without one, or with a copy of an id
    another row holds, gets a fresh id."""
    for n in rest:
        values = data.rows[n].values
        ident = canonical_text(values[id_col] if id_col < len(values) else None).strip()
        if not ident or ident in claimed:
            ident = new_id()
            index.new_ids[ident] = data.rows[n].number
        found[n] = ident
        claimed.add(ident)


def _ids_by_key(index: SheetIndex, data: SheetData, rest: list[int], found: list, claimed: set[str],
                keys: list[str]) -> None:
    """Rows not known by hash, by their key. Of rows sharing a key, the one standing where that
    record's row stood keeps it; another is a key clash, held back. A clash row, or a row whose
    key was emptied, standing where a record now missing from the sheet stood is that record's
    row (`key_taken`): it keeps that record, held back, so nothing is deleted or overwritten."""
    keyed = dict(zip(rest, keys))
    base = index.base
    home = [n for n in rest if (b := base.get(keyed[n])) is not None and b.row == data.rows[n].number]
    at_home = set(home)
    odd = []  # clashes and rows without a key
    for n in [*home, *(n for n in rest if n not in at_home)]:
        ident = keyed[n]
        if ident in claimed or ident == f"row:{data.rows[n].number}":
            odd.append(n)
            continue
        found[n] = ident
        claimed.add(ident)
    left = {b.row: i for i, b in base.items() if i not in claimed and b.row is not None and _is_key(i)} if odd else {}
    for n in sorted(odd):
        number, first = data.rows[n].number, keyed[n]
        keyless = first == f"row:{number}"
        ident = left.pop(number, None)
        if ident is not None:  # the row of a record, its key typed over or emptied
            index.key_taken[ident] = "" if keyless else first
            index.key_clash[ident] = first
        elif keyless:  # a new row with no key yet: held back until it has one
            ident = first if first not in claimed else f"{first}@row{number}"
        else:
            ident = f"{first}@row{number}"
            index.key_clash[ident] = first
        found[n] = ident
        claimed.add(ident)


def _is_key(ident: str) -> bool:
    """False for sheetsync's own names of rows that hold no record (`row:N`, `KEY@rowN`)."""
    return "@row" not in ident and not ident.startswith("row:")


def _idents(rows: list, cols: Mapping[str, int], keys: list[str], checker: Any) -> list[str]:
    """Each row's identity: its normalised key text, or `row:N` while a key cell is empty or
    invalid. Column by column, so the checker's memo of key cells is filled for validation."""
    if not keys:
        return [f"row:{r.number}" for r in rows]
    values = [r.values for r in rows]
    columns = [checker.column(f, column_of(values, cols.get(f))) for f in keys]
    if len(columns) == 1:  # one key field whose every value is a valid text: it is the identity
        texts = list(map(itemgetter(2), columns[0]))  # CellResult.value (None when invalid)
        if None not in texts and "" not in texts and set(map(type, texts)) == {str}:
            return texts
    out = []
    for r, cells in zip(rows, zip(*columns)):
        parts = []
        for cell in cells:
            if cell.outcome == "invalid" or (v := cell.value) is None or v == "":
                out.append(f"row:{r.number}")
                break
            parts.append(canonical_text(v))
        else:
            out.append("|".join(parts))
    return out


def flag_exact_duplicates(store: Store, layout: Layout, sheet: SheetIndex, checked: Mapping[str, Any]
                    ) -> dict[str, dict[str, tuple[dict[str, Any], Problem]]]:
    """ident -> field -> (mark params, Problem) for rows that share an exact key with another row
    of the batch or a live stored record. Pairs are flagged, never merged."""
    out: dict[str, dict[str, tuple[dict[str, Any], Problem]]] = {}
    for ident, first in sheet.key_clash.items():
        if ident in checked and layout.key_fields and ident not in sheet.key_taken:
            _flag(out, sheet, ident, first, layout.key_fields[0], "same key")
    for fields in layout.dedupe.exact:
        tuples = _key_values(checked, fields, skip=sheet.key_clash)
        stored = store.find_by_values(layout.table, fields, tuples.values()) if tuples else {}
        if tuples:  # archived records still match new rows: a returning customer is no new one
            for vals, keys in store.archived_matches(layout.table, fields, tuples.values()).items():
                stored.setdefault(vals, []).extend(k for k in keys if k not in stored.get(vals, []))
        # the usual row (nobody else holds its key) is left out at C speed: 100k new rows, no loop
        counts = Counter(tuples.values())
        shared = {v for v, n in counts.items() if n > 1}.union(v for v, keys in stored.items() if keys)
        batch: dict[tuple, list[str]] = {}
        for ident in compress(tuples, map(shared.__contains__, tuples.values())) if shared else ():
            batch.setdefault(tuples[ident], []).append(ident)
        reason = "same " + ", ".join(fields)
        for ident in [i for idents in batch.values() for i in idents]:
            vals = tuples[ident]
            # of two rows of this sheet only the later one is flagged, pointing at the earlier one
            # (so editing the earlier row does not flag it too); records not in the sheet count
            row = sheet.rows.get(ident, 0)
            # a stored record this batch gives another value no longer holds this one
            candidates = batch[vals] + [k for k in stored.get(vals, []) if k not in batch[vals] and k not in tuples]
            others = [o for o in candidates if o != ident and sheet.rows.get(o, 0) < row]
            if others:
                other = min(set(others), key=lambda o: (sheet.rows.get(o, 1 << 30), o))
                _flag(out, sheet, ident, other, fields[0], reason)
    return out


def later_partners(store: Store, layout: Layout, sheet: SheetIndex, checked: Mapping[str, Any]) -> list[str]:
    """Unchanged rows further down the sheet that share an exact key with a checked row: they are
    the ones to flag (the later row of a pair is), so the run must check them too."""
    if not sheet.unchanged:  # every row is checked already (a first sync): no lookups needed
        return []
    found: set[str] = set()
    for fields in layout.dedupe.exact:
        tuples = _key_values(checked, fields)
        stored = store.find_by_values(layout.table, fields, tuples.values()) if tuples else {}
        for ident, vals in tuples.items() if stored else ():
            row = sheet.rows.get(ident, 0)
            found.update(k for k in stored.get(vals, []) if k not in checked and sheet.rows.get(k, 0) > row)
    return sorted(found, key=lambda k: sheet.rows[k])


def _key_values(checked: Mapping[str, Any], fields: list[str], skip: Mapping[str, Any] = {}) -> dict[str, tuple]:
    """ident -> the valid, non-empty values of an exact key's fields (rows missing one are left out)."""
    if isinstance(checked, Checked):  # a run's rows: read column by column
        return checked.key_values(fields, skip)
    out = {}
    for ident, res in checked.items():
        if ident not in skip and (values := row_key_values(res, fields)) is not None:
            out[ident] = values
    return out


def _flag(out: dict, sheet: SheetIndex, ident: str, other: str, fld: str, reason: str) -> None:
    params = {"other_row": sheet.rows.get(other, "-"), "other_key": other, "reason": reason}
    out.setdefault(ident, {})[fld] = (params, Problem("duplicate", fld, params))


def check_unique(store: Store, layout: Layout, checked: dict[str, Any]) -> dict[str, Any]:
    """`unique: true` columns: a value another row of the batch or a live record already holds
    makes the cell invalid (so it never reaches the store), naming the holder."""
    from ..rules import CellResult, RowResult, unique_problems
    if not any(column.unique for column in layout.columns.values()):
        return checked
    out = checked.copy() if isinstance(checked, Checked) else dict(checked)
    for fld, column in layout.columns.items():
        if not column.unique:
            continue
        values = {i: v[0] for i, v in _key_values(out, [fld]).items()}
        held = store.find_by_values(layout.table, [fld], [(v,) for v in values.values()]) if values else {}
        existing = {key: vals[0] for vals, keys in held.items() for key in keys}
        for ident, problem in unique_problems(fld, column, layout, values, existing).items():
            res, cell = out[ident], out[ident].cells[fld]
            bad = CellResult(fld, cell.raw, None, "invalid", (problem,), cell.rule)
            cells = {**res.cells, fld: bad}
            out[ident] = RowResult(cells, tuple(p for c in cells.values() for p in c.problems))
    return out


def id_column(layout: Any, data: SheetData, where: str) -> int | None:
    """0-based index of the managed id column of a layout without a key (None: the layout has a key)."""
    if layout.key_fields:
        return None
    if not layout.id_column:  # load_layout refuses this too; a Layout built in code is checked here
        raise LayoutError("the layout has neither a key nor an id column", where=where, hint=NO_IDENTITY)
    hits = [i for i, h in enumerate(data.header) if fold(h) == fold(layout.id_column)]
    if not hits:
        raise SourceError(f"the managed id column {layout.id_column!r} is missing", where=where,
                          hint=f"add an empty column headed {layout.id_column!r} (you may hide it); "
                               "sheetsync fills it with record ids so rows keep their identity when sorted")
    return hits[0]
