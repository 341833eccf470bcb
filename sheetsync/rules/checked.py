"""The rows one run checked, kept column by column (what RowChecker.check_columns gives).

A first sync checks 100k rows that are nearly all clean, and a dict of cells and a RowResult per
row cost more than looking their cells up did. Here a clean row is a position in the columns,
and its RowResult is made only when someone asks for that row; the bulk readers (exact dedupe
keys, the batch of brand-new rows) read the columns instead.
"""
from __future__ import annotations

from itertools import chain, compress
from operator import itemgetter
from typing import Iterator, Mapping, Sequence

from . import CellResult, RowResult

_VALUE = itemgetter(2)  # CellResult.value


class Checked(Mapping[str, RowResult]):
    """ident -> RowResult of every row a run checked.

    `columns`: field -> the CellResult of each row in `idents` order; `clean[i]`: row `idents[i]`
    is read from the columns (every cell "ok", no problem of its own). Every other row is kept
    whole in `rows`: those not clean when checked, those set since (a unique value another row
    holds), and rows added by identity alone (later duplicate partners)."""

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        self.idents: list[str] = []
        self.columns: dict[str, list[CellResult]] = {f: [] for f in self.fields}
        self.clean: list[bool] = []
        self.rows: dict[str, RowResult] = {}
        self._position: dict[str, int] = {}  # ident -> index into the columns: see _where
        self._extra: list[str] = []  # idents in `rows` with no position in the columns

    def extend(self, idents: Sequence[str], columns: Sequence[Sequence[CellResult]],
               odd: Mapping[int, RowResult]) -> None:
        """Add checked rows: `columns` in field order, `odd` the RowResult of each row (by index
        into `idents`) that is not clean."""
        self.idents.extend(idents)
        for f, column in zip(self.fields, columns):
            self.columns[f].extend(column)
        clean = [True] * len(idents)
        for i, result in odd.items():
            clean[i] = False
            self.rows[idents[i]] = result
        self.clean.extend(clean)

    @property
    def _where(self) -> dict[str, int]:
        """ident -> index into the columns, made when first asked for (a first sync's batch of
        new rows never asks: 100k entries it would not use)."""
        known = len(self._position)
        if known < len(self.idents):
            self._position.update(zip(self.idents[known:], range(known, len(self.idents))))
            if len(self._position) != len(self.idents) or not self._position.keys().isdisjoint(self._extra):
                raise ValueError("a row is checked once a run")
        return self._position

    def __getitem__(self, ident: str) -> RowResult:
        result = self.rows.get(ident)
        if result is not None:
            return result
        i = self._where[ident]
        return RowResult(dict(zip(self.fields, [column[i] for column in self.columns.values()])), (), True)

    def __setitem__(self, ident: str, result: RowResult) -> None:
        i = self._where.get(ident)
        if i is not None:
            self.clean[i] = False
        elif ident not in self.rows:
            self._extra.append(ident)
        self.rows[ident] = result

    def __contains__(self, ident: object) -> bool:
        return ident in self.rows or ident in self._where

    def __iter__(self) -> Iterator[str]:
        return chain(self.idents, self._extra)

    def __len__(self) -> int:
        return len(self.idents) + len(self._extra)

    def copy(self) -> "Checked":
        """A copy to change: the columns are shared (never changed once added)."""
        out = Checked(self.fields)
        out.idents, out.clean, out.rows = list(self.idents), list(self.clean), dict(self.rows)
        out.columns = {f: list(column) for f, column in self.columns.items()}
        out._position, out._extra = dict(self._where), list(self._extra)
        return out

    def clean_idents(self) -> list[str]:
        """Rows read from the columns, in the order they were checked."""
        return list(compress(self.idents, self.clean))

    def values_of(self, idents: Sequence[str]) -> dict[str, list]:
        """field -> the value of each of `idents` (clean rows, in the order they were checked: a
        part of clean_idents())."""
        if idents == self.clean_idents():  # every clean row (a first sync's batch, mostly)
            mask = self.clean
        else:
            wanted = set(idents)
            mask = list(map(bool.__and__, map(wanted.__contains__, self.idents), self.clean))
        if sum(mask) != len(idents):
            raise ValueError("values_of takes clean rows, each once")
        return {f: list(compress(map(_VALUE, column), mask)) for f, column in self.columns.items()}

    def key_values(self, fields: Sequence[str], skip: Mapping[str, object] = {}) -> dict[str, tuple]:
        """ident -> the valid, non-empty values of `fields` (a row missing one is left out).
        A clean row's cells are all valid, so only its values need looking at."""
        if not fields or any(f not in self.columns for f in fields):  # no column to read: row by row
            return {i: v for i in self if i not in skip and (v := row_key_values(self[i], fields)) is not None}
        tuples = list(zip(*[map(_VALUE, self.columns[f]) for f in fields]))
        usable = [None not in t and "" not in t for t in tuples]
        for ident, result in self.rows.items():  # a row kept whole: its own cells decide
            i = self._where.get(ident)
            if i is not None:
                values = row_key_values(result, fields)
                usable[i] = values is not None
                tuples[i] = values or ()
        out = dict(compress(zip(self.idents, tuples), usable))  # in the order checked
        for ident in self._extra:
            values = row_key_values(self.rows[ident], fields)
            if values is not None:
                out[ident] = values
        for ident in skip:
            out.pop(ident, None)
        return out


def row_key_values(result: RowResult, fields: Sequence[str]) -> tuple | None:
    """The valid, non-empty values of `fields` in one checked row (None when one is missing)."""
    cells, values = result.cells, []
    for f in fields:
        cell = cells.get(f)
        if cell is None or cell.outcome == "invalid" or (v := cell.value) is None or v == "":
            return None
        values.append(v)
    return tuple(values)
