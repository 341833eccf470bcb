"""Live Excel connector: a workbook open in Excel (Windows/macOS), driven through xlwings.

Uses only a narrow slice of xlwings (App.books, Book.sheets, Sheet.used_range/range, Range
value/color/number_format/note), so a small fake stands in for Excel in tests. It has not
been run against a live Excel here.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import MissingExtra, SourceBusy, SourceError
from ..model import (Applied, CellValue, Patch, ReportTab, SheetData, SheetRow, canonical_text, split_removals,
                     typed_value)
from . import Capabilities, ConnectorBase, is_our_note, merge_note, remove_note, row_unchanged, values_snapshot


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _hex(color: Any) -> str | None:
    if color is None:
        return None
    if isinstance(color, str):
        return color.lstrip("#").upper()
    return "".join(f"{int(c):02X}" for c in color[:3])


def _has_formula(cell: Any) -> bool:
    """Excel's own answer (Range.HasFormula); a text cell showing "=..." is not a formula."""
    try:
        return bool(cell.api.HasFormula)
    except AttributeError:  # macOS' appscript API names it has_formula
        try:
            return bool(cell.api.has_formula.get())
        except AttributeError:
            return False


def _formula_cells(used: Any, grid: list) -> frozenset[tuple[int, int]]:
    """Cells a formula computes, from one read of the used range's formulas: a formula differs
    from the value it shows; text that merely starts with "=" is its own formula text."""
    formulas = used.options(ndim=2).formula if grid else []
    if isinstance(formulas, str):  # a one-cell range: Excel answers with the text itself
        formulas = [[formulas]]
    return frozenset((used.row + i, used.column + j)
                     for i, row in enumerate(formulas or []) for j, text in enumerate(row)
                     if isinstance(text, str) and text.startswith("=") and text != grid[i][j])


class ExcelConnector(ConnectorBase):
    """Reads/patches one worksheet of a workbook open in Excel; `app` injects a fake in tests."""

    capabilities = Capabilities(fills=True, notes=True, report_tab=True, remote=False)

    def __init__(self, path: Path, sheet: str | None = None, header_row: int = 1,
                 save: bool = False, app: Any = None) -> None:
        self.path, self.sheet, self.header_row = Path(path), sheet, header_row
        self.save, self.app = save, app

    @classmethod
    def from_source(cls, source: Any, resolve: Callable) -> "ExcelConnector":
        return cls(resolve(source.path), sheet=source.sheet, header_row=source.header_row, save=source.save)

    # --- attaching -----------------------------------------------------------------------
    def _book(self) -> Any:
        if self.app is None:
            if sys.platform not in ("win32", "darwin"):
                raise SourceError("live Excel needs Windows or macOS; use `kind: xlsx` with the "
                                  f"same path ({self.path})", where=str(self.path),
                                  hint=f"change the layout's source to `kind: xlsx`, path: {self.path}")
            try:
                import xlwings
            except ImportError as exc:
                raise MissingExtra("source kind 'excel' needs xlwings",
                                   hint="pip install 'sheetsync[excel]'") from exc
            try:
                return xlwings.Book(str(self.path))
            except Exception as exc:  # noqa: BLE001 - COM/AppleScript errors vary
                raise SourceBusy(f"cannot attach to {self.path.name} in Excel ({type(exc).__name__})",
                                 where=str(self.path), hint="open the workbook in Excel and retry")
        try:
            return self.app.books[self.path.name]
        except (KeyError, IndexError):
            raise SourceError(f"{self.path.name} is not open in Excel", where=str(self.path),
                              hint="open the workbook in Excel, or use `kind: xlsx`") from None

    def _sheet(self, book: Any) -> Any:
        try:
            return book.sheets[self.sheet] if self.sheet else book.sheets[0]
        except (KeyError, IndexError):
            raise SourceError(f"no sheet named {self.sheet!r}", where=str(self.path),
                              hint="check `sheet:` in the layout") from None

    # --- read ------------------------------------------------------------------------------
    def read(self) -> SheetData:
        sheet = self._sheet(self._book())
        used = sheet.used_range
        top, left = used.row, used.column
        grid = used.options(ndim=2).value or []
        cells: dict[tuple[int, int], CellValue] = {}
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if value is not None and value != "":
                    cells[(top + i, left + j)] = value
        width = max((c for r, c in cells if r == self.header_row), default=0)
        header = [canonical_text(cells.get((self.header_row, c))) for c in range(1, width + 1)]
        while header and not header[-1]:
            header.pop()
        last = max((r for r, _ in cells), default=0)
        rows = []
        for r in range(self.header_row + 1, last + 1):
            values = tuple(cells.get((r, c)) for c in range(1, len(header) + 1))
            if any(canonical_text(v) for v in values):
                rows.append(SheetRow(r, values))
        marks = self._marks(sheet, top, left, len(grid), max((len(r) for r in grid), default=0))
        digest = hashlib.sha1(json.dumps([header, [[r.number, [canonical_text(v) for v in r.values]]
                                                   for r in rows]]).encode()).hexdigest()
        return SheetData(sheet=sheet.name, header=tuple(header), rows=tuple(rows),
                         fingerprint=f"sha1:{digest}", header_row=self.header_row,
                         source=f"excel:{self.path}", marks=marks, formulas=_formula_cells(used, grid))

    @staticmethod
    def _marks(sheet: Any, top: int, left: int, height: int, width: int) -> dict[tuple[int, int], str]:
        marks = {}
        for r in range(top, top + height):
            for c in range(left, left + width):
                note = sheet.range((r, c)).note
                if note is not None and is_our_note(note.text):
                    marks[(r, c)] = note.text
        return marks

    def snapshot(self) -> bytes:
        return values_snapshot(self.read())

    # --- apply -----------------------------------------------------------------------------
    def apply(self, patches: Sequence[Patch], *, report: ReportTab | None = None,
              expected: str | None = None) -> Applied:
        """Checks each cell just before writing it; a changed cell or anchor is deferred."""
        book = self._book()
        sheet = self._sheet(book)
        applied, deferred, prior = [], [], {}
        patches, removals = split_removals(patches)
        for p in patches:
            cell = sheet.range((p.row, p.col))
            anchor_ok = not p.anchor or canonical_text(
                sheet.range((p.row, p.anchor[0])).value) == p.anchor[1]
            if not anchor_ok or (p.expected is not None and canonical_text(cell.value) != p.expected):
                deferred.append(p)
                continue
            note = cell.note.text if cell.note is not None else None
            if p.fill and not p.clear and not is_our_note(note):
                prior[(p.row, p.col)] = _hex(cell.color)
            self._patch(cell, p, note)
            applied.append(p)
        width = self._width(sheet) if removals else 0
        for p in removals:  # after the cells, bottom-up: a removal renumbers the rows below it
            if width and row_unchanged(p, sheet.range((p.row, 1), (p.row, width)).options(ndim=2).value[0]):
                sheet.range(f"{p.row}:{p.row}").delete(shift="up")
                applied.append(p)
            else:
                deferred.append(p)
        if report is not None:
            self._write_report(book, report)
        if self.save:
            book.save()
        return Applied(applied=tuple(applied), deferred=tuple(deferred), prior_fills=prior)

    def _width(self, sheet: Any) -> int:
        """The header's width, as read() counts it: the data columns a row's hash covers."""
        used = sheet.used_range
        last = used.column + max((len(r) for r in used.options(ndim=2).value or []), default=0) - 1
        if last < 1:
            return 0
        header = [canonical_text(v) for v in sheet.range((self.header_row, 1), (self.header_row, last))
                  .options(ndim=2).value[0]]
        while header and not header[-1]:
            header.pop()
        return len(header)

    def _patch(self, cell: Any, p: Patch, note: str | None) -> None:
        if p.write and not _has_formula(cell):  # a formula is never overwritten
            value = typed_value(p.value, p.value_type)
            if isinstance(value, str):
                cell.number_format = "@"  # text format: "=..." stays text, "007" keeps its zeros
            cell.value = value  # xlwings writes a date as a date (Excel keeps the cell's date format)
        if p.clear:
            if p.fill is None or _hex(cell.color) == p.fill.upper():  # a colour a person chose stays
                cell.color = _rgb(p.restore_fill) if p.restore_fill else None
            if note != (left := remove_note(note, p.note)):
                self._set_note(cell, left)
            return
        if p.fill:
            cell.color = _rgb(p.fill)
        if p.note:
            self._set_note(cell, merge_note(note, p.note))

    @staticmethod
    def _set_note(cell: Any, text: str | None) -> None:
        """xlwings can edit or delete an existing note but not create one: use the native API."""
        existing = cell.note
        if existing is not None and not text:
            existing.delete()
        elif existing is not None:
            existing.text = text
        elif text and sys.platform == "darwin" and not hasattr(cell.api, "AddComment"):
            cell.api.add_comment(comment_text=text)
        elif text:
            cell.api.AddComment(text)

    @staticmethod
    def _write_report(book: Any, report: ReportTab) -> None:
        names = [s.name for s in book.sheets]
        tab = book.sheets[report.name] if report.name in names else book.sheets.add(
            report.name, after=book.sheets[len(names) - 1])
        tab.clear_contents()
        if report.rows:
            width = max(len(r) for r in report.rows)
            target = tab.range((1, 1), (len(report.rows), width))
            target.number_format = "@"
            target.value = [list(r) + [""] * (width - len(r)) for r in report.rows]
