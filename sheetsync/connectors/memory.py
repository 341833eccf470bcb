"""An in-memory sheet with failure injection (busy, changed, unavailable, crash after N patches,
a person's edit between read and write), so engine tests can break every step on purpose.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

from ..errors import SourceBusy, SourceChanged, SourceError, SourceUnavailable
from ..model import Applied, CellValue, Patch, ReportTab, SheetData, canonical_text, split_removals, typed_value
from . import Capabilities, ConnectorBase, default_mark_colours, is_our_note, merge_note, remove_note, row_unchanged, still_applies
from .grid import rows_from_grid

Cell = tuple[int, int]


@dataclass(eq=False)
class MemoryBook:
    """One worksheet held in Python. `rows[i]` is sheet row `header_row + 1 + i`; cells are 1-based.

    Knobs: `busy` and `changed` hold until reset; `unavailable_reads`/`unavailable_applies` count
    down; `crash_after` and `edit_before_apply` fire on the next apply, then reset themselves.
    """

    header: list[str]
    rows: list[list[CellValue]] = field(default_factory=list)
    name: str | None = None
    sheet: str = "Sheet1"
    header_row: int = 1
    fills: dict[Cell, str] = field(default_factory=dict)
    notes: dict[Cell, str] = field(default_factory=dict)
    reports: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    version: int = 1
    busy: bool = False
    changed: bool = False
    unavailable_reads: int = 0
    unavailable_applies: int = 0
    crash_after: int | None = None
    edit_before_apply: dict[Cell, CellValue] | None = None
    reads: int = 0
    applies: int = 0
    our_fills: dict[Cell, str] = field(default_factory=dict)
    formulas: set[Cell] = field(default_factory=set)  # cells a formula computes (their value is its result)

    _registry: ClassVar[dict[str, "MemoryBook"]] = {}

    def register(self, name: str | None = None) -> "MemoryBook":
        """Make this book findable by a layout's `source: {kind: memory, name: ...}`."""
        self.name = name or self.name
        if not self.name:
            raise ValueError("a MemoryBook needs a name to be registered")
        MemoryBook._registry[self.name] = self
        return self

    @classmethod
    def lookup(cls, name: str) -> "MemoryBook":
        try:
            return cls._registry[name]
        except KeyError:
            raise SourceError(f"no in-memory sheet named {name!r}", where=f"memory:{name}",
                              hint="create it with MemoryBook(header=[...]).register(name)") from None

    @classmethod
    def unregister(cls, name: str) -> None:
        cls._registry.pop(name, None)

    def get(self, row: int, col: int) -> CellValue:
        if row == self.header_row:
            return self.header[col - 1] if 0 < col <= len(self.header) else None
        index = row - self.header_row - 1
        if not 0 <= index < len(self.rows):
            return None
        values = self.rows[index]
        return values[col - 1] if 0 < col <= len(values) else None

    def text(self, row: int, col: int) -> str:
        return canonical_text(self.get(row, col))

    def set(self, row: int, col: int, value: CellValue) -> None:
        """Set a data cell (as a person would), growing the sheet as needed; bumps the version."""
        index = row - self.header_row - 1
        if index < 0:
            raise ValueError(f"row {row} is not a data row (header is row {self.header_row})")
        while len(self.rows) <= index:
            self.rows.append([])
        values = self.rows[index]
        values.extend([None] * (col - len(values)))
        values[col - 1] = value
        self.version += 1

    def remove_row(self, row: int) -> None:
        """Delete a data row as a spreadsheet does: the rows below move up, with their marks."""
        del self.rows[row - self.header_row - 1]
        for cells in (self.fills, self.notes, self.our_fills):
            moved = {(r - 1 if r > row else r, c): v for (r, c), v in cells.items() if r != row}
            cells.clear()
            cells.update(moved)
        self.formulas = {(r - 1 if r > row else r, c) for r, c in self.formulas if r != row}
        self.version += 1

    def grid(self) -> list[list[CellValue]]:
        """The sheet as rows from row 1: empty title rows, the header, the data rows."""
        return [[] for _ in range(self.header_row - 1)] + [list(self.header)] + [list(r) for r in self.rows]


class MemoryConnector(ConnectorBase):
    """Connector over a MemoryBook, counting reads and applies and obeying its failure knobs."""

    #: a remote sheet's by default; a test hands in others (a CSV-like source without fills)
    capabilities = Capabilities(fills=True, notes=True, report_tab=True, remote=True)

    def __init__(self, book: MemoryBook | None = None, *, name: str | None = None,
                 capabilities: Capabilities | None = None, **_ignored: Any) -> None:
        if book is None:
            if not name:
                raise SourceError("a memory source needs `name`", where="source.name",
                                  hint="set source.name to a registered MemoryBook")
            book = MemoryBook.lookup(name)
        self.book = book
        self.capabilities = capabilities or type(self).capabilities

    @classmethod
    def from_source(cls, source: Any, resolve: Callable) -> "MemoryConnector":
        return cls(name=source.name)

    @property
    def _where(self) -> str:
        return f"memory:{self.book.name or self.book.sheet}"

    def read(self) -> SheetData:
        book = self.book
        book.reads += 1
        if book.busy:
            raise SourceBusy("the in-memory sheet is busy", where=self._where, hint="try again later")
        if book.unavailable_reads > 0:
            book.unavailable_reads -= 1
            raise SourceUnavailable("injected: read unavailable", where=self._where, hint="try again later")
        header, rows = rows_from_grid(book.grid(), book.header_row, False, self._where)
        return SheetData(sheet=book.sheet, header=header, rows=rows, fingerprint=f"v{book.version}",
                         header_row=book.header_row, source=self._where,
                         marks={k: v for k, v in book.notes.items() if is_our_note(v)},
                         meta={"kind": "memory"}, formulas=frozenset(book.formulas))

    def apply(self, patches: Sequence[Patch], *, report: ReportTab | None = None,
              expected: str | None = None) -> Applied:
        """Per-cell checks only (like a remote sheet): `expected` is not enforced here."""
        book = self.book
        book.applies += 1
        self._raise_injected()
        if book.edit_before_apply:
            for (row, col), value in book.edit_before_apply.items():
                book.set(row, col, value)
            book.edit_before_apply = None
        applied: list[Patch] = []
        deferred: list[Patch] = []
        prior: dict[Cell, str | None] = {}
        cells, removals = split_removals(patches)
        for patch in [*cells, *removals]:  # removals last, bottom-up
            self._maybe_crash(applied)
            if not self._matches(patch):
                deferred.append(patch)
                continue
            if patch.kind == "remove":
                book.remove_row(patch.row)
            else:
                self._apply_one(patch, prior)
            applied.append(patch)
        self._maybe_crash(applied, final=True)
        if report is not None:
            book.reports[report.name] = tuple(tuple(r) for r in report.rows)
        if applied or report is not None:
            book.version += 1
        return Applied(applied=tuple(applied), deferred=tuple(deferred), prior_fills=prior,
                       api_calls=1 if applied or report is not None else 0)

    def _raise_injected(self) -> None:
        book = self.book
        if book.busy:
            raise SourceBusy("the in-memory sheet is busy", where=self._where, hint="try again later")
        if book.changed:
            raise SourceChanged("injected: the sheet changed since it was read", where=self._where,
                                hint="the next run reads it again")
        if book.unavailable_applies > 0:
            book.unavailable_applies -= 1
            raise SourceUnavailable("injected: write unavailable", where=self._where, hint="try again later")

    def _maybe_crash(self, applied: list[Patch], final: bool = False) -> None:
        """Fire `crash_after` once: after that many patches, or at the end if there were fewer."""
        limit = self.book.crash_after
        if limit is not None and (len(applied) >= limit or final):
            self.book.crash_after = None
            if applied:
                self.book.version += 1
            raise SourceUnavailable(f"injected: crashed after {len(applied)} patches", where=self._where,
                                    hint="try again later", applied=tuple(applied))

    def _matches(self, patch: Patch) -> bool:
        book = self.book
        if patch.kind == "remove":
            index = patch.row - book.header_row - 1
            return 0 <= index < len(book.rows) and row_unchanged(patch, book.rows[index])
        return patch.row > book.header_row and still_applies(patch, book.text)

    def _apply_one(self, patch: Patch, prior: dict[Cell, str | None]) -> None:
        book, cell = self.book, (patch.row, patch.col)
        if patch.write and cell not in book.formulas:  # a formula is never overwritten
            book.set(patch.row, patch.col, typed_value(patch.value, patch.value_type))
        old_note = book.notes.get(cell)
        if patch.clear:
            if _fill_is_ours(book, cell, patch):
                _put(book.fills, cell, patch.restore_fill)
            book.our_fills.pop(cell, None)
            if old_note != (left := remove_note(old_note, patch.note)):
                _put(book.notes, cell, left)
            return
        if patch.fill:
            if not is_our_note(old_note):
                prior[cell] = book.fills.get(cell)
            book.fills[cell] = patch.fill
            book.our_fills[cell] = patch.fill
        if patch.note:
            book.notes[cell] = merge_note(old_note, patch.note)

    def snapshot(self) -> bytes:
        """Canonical JSON of values, fills and notes: equal content gives equal bytes."""
        book = self.book
        doc = {
            "sheet": book.sheet, "header_row": book.header_row, "header": list(book.header),
            "rows": [[canonical_text(v) for v in row] for row in book.rows],
            "fills": {f"{r},{c}": v for (r, c), v in sorted(book.fills.items())},
            "notes": {f"{r},{c}": v for (r, c), v in sorted(book.notes.items())},
        }
        return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _fill_is_ours(book: MemoryBook, cell: Cell, patch: Patch) -> bool:
    """Is the cell's fill still the one sheetsync set (not a colour a person chose since)?"""
    current = book.fills.get(cell)
    if current is None:
        return False
    if cell in book.our_fills:
        ours = {book.our_fills[cell]}
    else:
        ours = {patch.fill} if patch.fill else set(default_mark_colours())
    return current.upper() in {c.upper() for c in ours}


def _put(store: dict[Cell, str], cell: Cell, value: str | None) -> None:
    if value is None:
        store.pop(cell, None)
    else:
        store[cell] = value
