"""The .xlsx/.xlsm connector: python-calamine reads (fast); patches go straight into the zip's XML
(patch.py), or through openpyxl where that cannot, refusing what openpyxl would drop (guard.py).

Writes refuse while the file is open in Excel/LibreOffice or when it changed since the read; the
save is atomic.
"""
from __future__ import annotations

import io
import logging
import re
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from ...errors import FeatureLossError, SourceError
from ...model import (Applied, CellError, CellValue, Patch, ReportTab, SheetData, canonical_text,
                     column_letter, split_removals, typed_value)
from .. import Capabilities, default_mark_colours, is_our_note, merge_note, remove_note, row_unchanged, still_applies
from ...text import XML_ILLEGAL
from ..grid import rows_from_grid
from .patch import Unsupported, direct_patch_blocker, patch_xlsx
from ..safe_write import atomic_write, fingerprint
from .guard import (LocalFile, date1904, guard_features, open_zip, read_bytes, read_comments, refuse_if_open,
                    refuse_unwritable, sheet_comments_part, sheet_part, special_cells)
from .rows import delete_rows, unsafe_to_delete

log = logging.getLogger(__name__)

_REF = re.compile(r"^\$?([A-Z]{1,3})\$?(\d+)$")


def _special_cells(zf: Any, sheet: str, where: str) -> tuple[str | None, dict[str, CellError], frozenset]:
    """The sheet's part in the zip (None when it has none; the notes read it too), its error
    cells (#REF!, #N/A) and uncalculated formulas by reference, which calamine reads as empty,
    and its formula cells."""
    try:
        part = sheet_part(zf, sheet)
        return (part, *special_cells(zf, part)) if part else (None, {}, frozenset())
    except Exception as exc:
        raise SourceError(f"the sheet cannot be read safely ({type(exc).__name__})", where=where,
                          hint="open it in Excel and save it again as .xlsx") from None


def _put_errors(grid: list[list[CellValue]], errors: dict[str, CellError]) -> None:
    """Error cells and uncalculated formulas into the grid, where calamine left them empty."""
    for ref, error in errors.items():
        cell = ref_to_cell(ref)
        if cell is None:
            continue
        row, col = cell
        while len(grid) < row:
            grid.append([])
        line = grid[row - 1]
        line.extend([None] * (col - len(line)))
        line[col - 1] = error


def ref_to_cell(ref: str) -> tuple[int, int] | None:
    """"B6" -> (6, 2); None for anything else."""
    m = _REF.match(ref.upper())
    if not m:
        return None
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)), col


def fill_code(fill: Any) -> str | None:
    """A cell's fill as text: "RRGGBB" for a plain solid colour, else "pattern|kind:value[:tint]"."""
    if fill is None or not fill.fill_type:
        return None
    colour = fill.fgColor
    if fill.fill_type == "solid" and colour.type == "rgb" and isinstance(colour.rgb, str):
        return colour.rgb[-6:].upper()
    if colour.type == "theme":
        return f"{fill.fill_type}|theme:{colour.theme}:{colour.tint}"
    if colour.type == "indexed":
        return f"{fill.fill_type}|indexed:{colour.indexed}"
    return f"{fill.fill_type}|rgb:{colour.rgb if isinstance(colour.rgb, str) else '00000000'}"


def make_fill(code: str | None) -> Any:
    """The openpyxl PatternFill for a fill_code (None = no fill)."""
    from openpyxl.styles import Color, PatternFill
    if not code:
        return PatternFill(fill_type=None)
    if "|" not in code:
        return PatternFill(fill_type="solid", fgColor=code, bgColor=code)
    pattern, _, spec = code.partition("|")
    kind, _, value = spec.partition(":")
    if kind == "theme":
        theme, _, tint = value.partition(":")
        colour = Color(theme=int(theme), tint=float(tint or 0))
    elif kind == "indexed":
        colour = Color(indexed=int(value))
    else:
        colour = Color(rgb=value)
    return PatternFill(fill_type=pattern, fgColor=colour)


class XlsxConnector(LocalFile):
    """One worksheet of a local .xlsx/.xlsm file."""

    capabilities = Capabilities(fills=True, notes=True, report_tab=True)

    def __init__(self, path: Path | str, sheet: str | None = None, header_row: int = 1,
                 allow_feature_loss: bool = False, totals_row: bool = False) -> None:
        self.path = Path(path)
        self.sheet = sheet
        self.header_row = header_row
        self.allow_feature_loss = allow_feature_loss
        self.totals_row = totals_row

    @classmethod
    def from_source(cls, source: Any, resolve: Callable) -> "XlsxConnector":
        return cls(resolve(source.path), sheet=source.sheet, header_row=source.header_row,
                   allow_feature_loss=source.allow_feature_loss, totals_row=source.totals_row)

    def _where(self, sheet: str | None = None) -> str:
        return f"{self.path}[{sheet}]" if sheet else str(self.path)

    def read(self) -> SheetData:
        data = read_bytes(self.path)
        zf = open_zip(data, self._where())
        refuse_unwritable(zf, self._where())  # before any row is read, so before any commit
        book, name = self._calamine_book(data)
        # the error scan and the direct-patch probe inflate the sheet's XML while calamine parses
        # it: all let go of the GIL, so with a second core they add no wall time
        with ThreadPoolExecutor(1) as pool:
            scan = pool.submit(_special_cells, zf, name, self._where(name))
            blocked = pool.submit(direct_patch_blocker, data, name)
            grid = self._calamine_sheet(book, name)
            part, errors, formulas = scan.result()
        if blocked.result():  # openpyxl will write: what it would drop is refused now, not after the commit
            guard_features(zf, self._where(name), self.allow_feature_loss)
        _put_errors(grid, errors)
        header, rows = rows_from_grid(grid, self.header_row, self.totals_row, self._where(name))
        return SheetData(sheet=name, header=header, rows=rows, fingerprint=fingerprint(data),
                         header_row=self.header_row, source=str(self.path),
                         marks=self._marks(zf, name, part), formulas=formulas,
                         meta={"kind": "xlsx", "date1904": date1904(zf)})

    def _calamine_grid(self, data: bytes) -> tuple[str, list[list[CellValue]]]:
        """The grid as read() sees it, error cells and uncalculated formulas included (else a
        patch that marks one finds the cell "changed" and waits forever)."""
        book, name = self._calamine_book(data)
        grid = self._calamine_sheet(book, name)
        _put_errors(grid, _special_cells(open_zip(data, self._where()), name, self._where(name))[1])
        return name, grid

    def _calamine_book(self, data: bytes) -> tuple[Any, str]:
        """The workbook opened by calamine, and the name of the sheet to read."""
        import python_calamine as pc
        try:
            book = pc.CalamineWorkbook.from_filelike(io.BytesIO(data))
            names = list(book.sheet_names)
        except Exception as exc:  # calamine raises its own zoo (XmlError, ZipError, ...)
            raise self._unreadable(exc) from None
        name = self.sheet or (names[0] if names else None)
        if name not in names:
            raise SourceError(f"no sheet named {name!r}", where=self._where(name),
                              hint="sheets in this workbook: " + ", ".join(names))
        return book, name

    def _calamine_sheet(self, book: Any, name: str) -> list[list[CellValue]]:
        try:
            return book.get_sheet_by_name(name).to_python(skip_empty_area=False)
        except Exception as exc:
            raise self._unreadable(exc) from None

    def _unreadable(self, exc: Exception) -> SourceError:
        return SourceError(f"cannot read the workbook: {exc}", where=self._where(self.sheet),
                           hint="open it in Excel and save it again as .xlsx")

    def _marks(self, zf: Any, sheet: str, sheet_xml: str | None) -> dict[tuple[int, int], str]:
        try:
            part = sheet_comments_part(zf, sheet_xml)
            comments = read_comments(zf, part) if part else {}
        except Exception as exc:  # defusedxml's refusals, ParseError: an untrusted part
            raise SourceError(f"the workbook's notes cannot be read safely ({type(exc).__name__})",
                              where=self._where(sheet),
                              hint="open it in Excel and save it again as .xlsx") from None
        marks = {}
        for ref, text in comments.items():
            cell = ref_to_cell(ref)
            if cell and is_our_note(text):
                marks[cell] = text
        return marks

    def apply(self, patches: Sequence[Patch], *, report: ReportTab | None = None,
              expected: str | None = None) -> Applied:
        if not patches and report is None:
            return Applied(applied=())
        data = self.bytes_to_patch(expected, self._where(self.sheet), "workbook")
        # zip-bomb limits before anything inflates a part; an outbox queued for a workbook that
        # turns out unwritable (xlsb, Strict) fails with the reason, not a parse error
        refuse_unwritable(open_zip(data, self._where()), self._where())
        # Checked on calamine's view of these same bytes: the view `expected` texts came from,
        # and it lets an apply whose patches are all stale skip writing entirely.
        texts = _CellTexts(lambda: self._calamine_grid(data)[1])
        cells, removals = split_removals(patches)
        ready: list[Patch] = []
        deferred: list[Patch] = []
        for patch in cells:
            (ready if texts.matches(patch) else deferred).append(patch)
        gone = [p for p in removals if texts.row_matches(p)]
        deferred += [p for p in removals if p not in gone]
        kept = self._why_rows_stay(data) if gone else ""
        if gone and not kept:  # rows go through openpyxl, which shifts every cell below them
            return self._apply_openpyxl(data, ready, deferred, report, gone)
        deferred += gone
        if not ready and report is None:
            return Applied(applied=(), deferred=tuple(deferred), kept_rows=kept)
        try:
            fast = patch_xlsx(data, self.sheet, ready, report, where=self._where(self.sheet))
        except Unsupported as exc:
            log.info("%s: direct patch not possible (%s); writing with openpyxl", self._where(self.sheet), exc)
            return replace(self._apply_openpyxl(data, ready, deferred, report), kept_rows=kept)
        written = self._save(lambda fh: fh.write(fast.data), data) if fast.applied or report is not None else None
        return Applied(applied=fast.applied, deferred=tuple(deferred) + fast.deferred,
                       prior_fills=fast.prior_fills, fingerprint=written, kept_rows=kept)

    def _why_rows_stay(self, data: bytes) -> str:
        """Why rows may not be removed from this workbook ("" = they may): openpyxl would drop a
        feature, or cannot shift what refers to rows (formulas, merged cells, tables, names)."""
        try:
            guard_features(open_zip(data, self._where()), self._where(self.sheet), self.allow_feature_loss)
        except FeatureLossError as exc:
            return exc.message
        book, ws = self._load(data)
        return unsafe_to_delete(book, ws)

    def _apply_openpyxl(self, data: bytes, ready: list[Patch], deferred: list[Patch],
                        report: ReportTab | None, removals: Sequence[Patch] = ()) -> Applied:
        """The slow path: a full openpyxl load and save, guarded against what openpyxl drops.
        `removals` (checked, and safe to make) go after the cell patches, in one pass."""
        guard_features(open_zip(data, self._where()), self._where(self.sheet), self.allow_feature_loss)
        book, ws = self._load(data)
        applied, prior = [], {}
        for patch in ready:
            if not _writable(ws, patch):
                deferred.append(patch)
                continue
            before = _apply_patch(ws, patch)
            if before is not _NOT_MARKED:
                prior[(patch.row, patch.col)] = before
            applied.append(patch)
        delete_rows(ws, [p.row for p in removals])
        applied += removals
        if report is not None:
            _write_report(book, ws, report, self._where(report.name))
        written = self._save(book.save, data) if applied or report is not None else None
        return Applied(applied=tuple(applied), deferred=tuple(deferred), prior_fills=prior, fingerprint=written)

    def _load(self, data: bytes) -> tuple[Any, Any]:
        import openpyxl
        try:
            book = openpyxl.load_workbook(io.BytesIO(data), rich_text=True,
                                          keep_vba=self.path.suffix.lower() == ".xlsm")
        except Exception as exc:
            raise SourceError(f"openpyxl cannot open the workbook: {exc}", where=str(self.path),
                              hint="open it in Excel and save it again as .xlsx") from None
        name = self.sheet or book.sheetnames[0]
        if name not in book.sheetnames:
            raise SourceError(f"no sheet named {name!r}", where=self._where(name),
                              hint="sheets in this workbook: " + ", ".join(book.sheetnames))
        return book, book[name]

    def _save(self, write: Callable[[Any], Any], data: bytes) -> str:
        """Atomic save, only over the bytes the patches were made from (a save someone made
        meanwhile is kept: SourceChanged), never while an editor has the file open."""
        refuse_if_open(self.path)
        return atomic_write(self.path, write, expected=data)


class _CellTexts:
    """Current cell texts for the expected/anchor checks, as calamine reads them (formula cells
    give their cached result, like read() does); the grid is built only if a patch needs it."""

    def __init__(self, grid: Callable[[], list[list[CellValue]]]) -> None:
        self._grid_factory = grid
        self._grid: list[list[CellValue]] | None = None

    def text(self, row: int, col: int) -> str:
        if self._grid is None:
            self._grid = self._grid_factory()
        grid = self._grid
        ok = 0 < row <= len(grid) and 0 < col <= len(grid[row - 1])
        return canonical_text(grid[row - 1][col - 1] if ok else None)

    def matches(self, patch: Patch) -> bool:
        return still_applies(patch, self.text)

    def row_matches(self, patch: Patch) -> bool:
        """Does a `remove` patch's row still read as it did (see connectors.row_unchanged)?"""
        if self._grid is None:
            self._grid = self._grid_factory()
        row = self._grid[patch.row - 1] if 0 < patch.row <= len(self._grid) else []
        return bool(row) and row_unchanged(patch, row)


_NOT_MARKED = object()


def _writable(ws: Any, patch: Patch) -> bool:
    from openpyxl.cell.cell import MergedCell
    if isinstance(ws.cell(row=patch.row, column=patch.col), MergedCell):
        log.warning("%s: cell %s%s is inside a merged range; patch left for a person",
                    ws.title, column_letter(patch.col), patch.row)
        return False
    return True


def _apply_patch(ws: Any, patch: Patch) -> Any:
    """Apply one patch to its cell; returns the prior fill when a new mark was set."""
    cell = ws.cell(row=patch.row, column=patch.col)
    if patch.write and cell.data_type != "f":  # a formula is never overwritten
        _set_value(cell, typed_value(patch.value, patch.value_type))
    if patch.clear:
        _clear_mark(cell, patch)
        return _NOT_MARKED
    prior: Any = _NOT_MARKED
    old_note = cell.comment.text if cell.comment else None
    if patch.fill:
        if not is_our_note(old_note):
            prior = fill_code(cell.fill)
        cell.fill = make_fill(patch.fill)
    if patch.note:
        _set_note(cell, merge_note(old_note, patch.note), cell.comment)
    return prior


def _set_value(cell: Any, value: Any) -> None:
    """Text stays text (a leading `=` is not a formula); numbers and booleans keep their type; a
    date gets a date format only if the cell has none (openpyxl's rule), in the book's date system."""
    if isinstance(value, str):
        cell.value = XML_ILLEGAL.sub("", value)
        cell.data_type = "s"
    else:
        cell.value = value


def _set_note(cell: Any, text: str | None, old: Any) -> None:
    from openpyxl.comments import Comment
    if not text:
        cell.comment = None
        return
    author = old.author if old is not None and old.author else "sheetsync"
    cell.comment = Comment(text, author, height=100, width=260)


def _clear_mark(cell: Any, patch: Patch) -> None:
    """Remove sheetsync's mark; a fill a person changed since is left alone, as is their note."""
    current = fill_code(cell.fill)
    ours = {patch.fill.upper()} if patch.fill else default_mark_colours()
    if current is not None and current.upper() in ours:
        cell.fill = make_fill(patch.restore_fill)
    if cell.comment is not None and cell.comment.text != (left := remove_note(cell.comment.text, patch.note)):
        _set_note(cell, left, cell.comment)


def _write_report(book: Any, ws: Any, report: ReportTab, where: str) -> None:
    """(Re)create the report tab in place; it is never the synced sheet."""
    if report.name == ws.title:
        raise SourceError("the report tab has the same name as the synced sheet", where=where,
                          hint="set a different `report_tab` name in the layout")
    index = len(book.sheetnames)
    if report.name in book.sheetnames:
        index = book.sheetnames.index(report.name)
        book.remove(book[report.name])
    tab = book.create_sheet(report.name, index)
    for r, row in enumerate(report.rows, start=1):
        for c, text in enumerate(row, start=1):
            if text not in (None, ""):
                _set_value(tab.cell(row=r, column=c), str(text))
