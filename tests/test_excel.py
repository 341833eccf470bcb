"""ExcelConnector through a small fake of the xlwings objects it uses (no live Excel here)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from sheetsync.connectors.excel import ExcelConnector
from sheetsync.errors import SourceError
from sheetsync.model import Patch, ReportTab


class FakeNote:
    def __init__(self, cell: "FakeCell", text: str) -> None:
        self.cell, self.text = cell, text

    def delete(self) -> None:
        self.cell.note = None


class FakeCell:
    def __init__(self) -> None:
        self.value: Any = None
        self.color: tuple[int, int, int] | None = None
        self.number_format = "General"
        self.note: FakeNote | None = None
        self.formula: str | None = None  # a formula cell's formula; its value is the result


class FakeApi:
    def __init__(self, cell: FakeCell) -> None:
        self.cell = cell

    def AddComment(self, text: str) -> None:  # noqa: N802 - Excel's COM name
        self.cell.note = FakeNote(self.cell, text)

    @property
    def HasFormula(self) -> bool:  # noqa: N802 - Excel's COM name
        return self.cell.formula is not None


class FakeRange:
    """Range over one cell, or a block when given two corners (value takes a 2-D list)."""

    def __init__(self, sheet: "FakeSheet", start: tuple[int, int], end: tuple[int, int] | None = None,
                 ndim: int | None = None) -> None:
        self.sheet, self.start, self.end = sheet, start, end or start
        self.row, self.column = start
        self.ndim = ndim

    def _cell(self) -> FakeCell:
        return self.sheet.cells.setdefault(self.start, FakeCell())

    def options(self, ndim: int) -> "FakeRange":
        return FakeRange(self.sheet, self.start, self.end, ndim)

    @property
    def api(self) -> FakeApi:
        return FakeApi(self._cell())

    def _block(self) -> list[list[Any]]:
        (r0, c0), (r1, c1) = self.start, self.end
        return [[self.sheet.cells.get((r, c), FakeCell()).value for c in range(c0, c1 + 1)]
                for r in range(r0, r1 + 1)]

    def __getattr__(self, name: str) -> Any:
        if name in ("color", "number_format", "note"):
            return getattr(self._cell(), name)
        if name == "value":
            return self._block() if self.ndim == 2 or self.end != self.start else self._cell().value
        if name == "formula":  # Excel gives a constant's own text where there is no formula
            (r0, c0), (r1, c1) = self.start, self.end
            cells = [[self.sheet.cells.get((r, c), FakeCell()) for c in range(c0, c1 + 1)] for r in range(r0, r1 + 1)]
            return [[x.formula or ("" if x.value is None else str(x.value)) for x in row] for row in cells]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in ("value", "color", "number_format"):
            return object.__setattr__(self, name, value)
        (r0, c0), (r1, c1) = self.start, self.end
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                cell = self.sheet.cells.setdefault((r, c), FakeCell())
                if name == "value" and isinstance(value, list):
                    setattr(cell, name, value[r - r0][c - c0])
                else:
                    setattr(cell, name, value)


class FakeSheet:
    def __init__(self, name: str, rows: list[list[Any]] | None = None) -> None:
        self.name, self.cells = name, {}
        for r, row in enumerate(rows or [], start=1):
            for c, value in enumerate(row, start=1):
                self.range((r, c)).value = value

    def range(self, start: Any, end: tuple[int, int] | None = None) -> Any:
        if isinstance(start, str):  # "7:7", a whole row, as xlwings takes Excel's address
            return FakeRowRange(self, int(start.partition(":")[0]))
        return FakeRange(self, start, end)

    @property
    def used_range(self) -> FakeRange:
        used = [k for k, v in self.cells.items() if v.value not in (None, "")] or [(1, 1)]
        return FakeRange(self, (min(r for r, _ in used), min(c for _, c in used)),
                         (max(r for r, _ in used), max(c for _, c in used)))

    def clear_contents(self) -> None:
        for cell in self.cells.values():
            cell.value = None


class FakeRowRange:
    """A whole row; delete(shift="up") moves the rows below up, as Excel does."""

    def __init__(self, sheet: FakeSheet, row: int) -> None:
        self.sheet, self.row = sheet, row

    def delete(self, shift: str | None = None) -> None:
        assert shift == "up"
        cells = self.sheet.cells
        self.sheet.cells = {(r - 1 if r > self.row else r, c): v for (r, c), v in cells.items() if r != self.row}


class FakeSheets(list):
    def __getitem__(self, key: Any) -> FakeSheet:
        if isinstance(key, str):
            for sheet in self:
                if sheet.name == key:
                    return sheet
            raise KeyError(key)
        return super().__getitem__(key)

    def add(self, name: str, after: FakeSheet | None = None) -> FakeSheet:
        sheet = FakeSheet(name)
        self.append(sheet)
        return sheet


class FakeBook:
    def __init__(self, sheets: list[FakeSheet]) -> None:
        self.sheets, self.saves = FakeSheets(sheets), 0

    def save(self) -> None:
        self.saves += 1


class FakeApp:
    def __init__(self, books: dict[str, FakeBook]) -> None:
        self.books = books


def setup(save: bool = False) -> tuple[ExcelConnector, FakeBook, FakeSheet]:
    sheet = FakeSheet("Customers", [["id", "name", "phone"], ["C1", "Ann", 13800138000.0],
                                    [None, None, None], ["C2", "Bob", "bob@@acme"]])
    book = FakeBook([sheet])
    return ExcelConnector(Path("/x/team.xlsx"), sheet="Customers", save=save,
                          app=FakeApp({"team.xlsx": book})), book, sheet


def test_read_used_range_drops_blank_rows() -> None:
    conn, _, _ = setup()
    data = conn.read()
    assert data.header == ("id", "name", "phone")
    assert [(r.number, r.values) for r in data.rows] == [(2, ("C1", "Ann", 13800138000.0)),
                                                         (4, ("C2", "Bob", "bob@@acme"))]


def test_apply_writes_text_as_text_with_colour_and_merged_note() -> None:
    conn, book, sheet = setup(save=True)
    sheet.range((4, 3)).api.AddComment("ask Bob")
    sheet.range((4, 3)).color = (255, 255, 0)
    patches = [Patch(2, 3, "corrected", write=True, value="=+86 138 0013 8000", fill="C6EFCE",
                     note="changed", expected="13800138000", anchor=(1, "C1")),
               Patch(4, 3, "invalid", fill="FFC7CE", note="bad email", expected="bob@@acme")]
    applied = conn.apply(patches)
    assert applied.applied == tuple(patches) and applied.prior_fills == {(2, 3): None,
                                                                         (4, 3): "FFFF00"}
    cell = sheet.cells[(2, 3)]
    assert (cell.value, cell.number_format, cell.color) == ("=+86 138 0013 8000", "@", (198, 239, 206))
    assert sheet.cells[(4, 3)].note.text == "ask Bob\n---\nsheetsync: bad email"
    assert book.saves == 1
    assert set(conn.read().marks) == {(2, 3), (4, 3)}
    conn.apply([Patch(4, 3, "clear", clear=True, restore_fill="FFFF00"),
                Patch(2, 3, "clear", clear=True)])
    assert sheet.cells[(4, 3)].note.text == "ask Bob" and sheet.cells[(4, 3)].color == (255, 255, 0)
    assert sheet.cells[(2, 3)].note is None and sheet.cells[(2, 3)].color is None


def test_changed_cell_is_deferred_and_report_tab_written() -> None:
    conn, book, sheet = setup()
    sheet.range((2, 3)).value = "139"
    patch = Patch(2, 3, "corrected", write=True, value="+86", expected="13800138000")
    applied = conn.apply([patch], report=ReportTab("sheetsync", (("problems",), ("C4", "bad"))))
    assert applied.deferred == (patch,) and sheet.cells[(2, 3)].value == "139"
    assert book.sheets["sheetsync"].range((1, 1), (2, 2)).value == [["problems", ""], ["C4", "bad"]]
    assert book.saves == 0


def test_missing_workbook_or_sheet_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="not open in Excel"):
        ExcelConnector(Path("other.xlsx"), app=FakeApp({})).read()
    conn, _, _ = setup()
    conn.sheet = "Nope"
    with pytest.raises(SourceError, match="no sheet named"):
        conn.read()


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="Linux-only message")
def test_linux_points_at_the_xlsx_source() -> None:
    with pytest.raises(SourceError) as info:
        ExcelConnector(Path("team.xlsx")).read()
    assert "Windows or macOS" in str(info.value) and "kind: xlsx" in str(info.value)


def test_formula_cells_are_reported_and_never_overwritten_dates_go_as_dates() -> None:
    import datetime as dt
    conn, _, sheet = setup()
    cell = sheet.cells[(2, 3)]
    cell.formula, cell.value = "=13800138000+0", 13800138000.0
    sheet.cells[(4, 3)].value = "=typed as text"  # text that only looks like a formula
    assert conn.read().formulas == frozenset({(2, 3)})
    applied = conn.apply([Patch(2, 3, "invalid", write=True, value="+86 138 0013 8000", fill="FFC7CE",
                                note="sheetsync: computed"),
                          Patch(4, 2, "corrected", write=True, value="2024-01-06", value_type="date")])
    assert len(applied.applied) == 2
    assert cell.formula == "=13800138000+0" and cell.value == 13800138000.0 and cell.color == (255, 199, 206)
    assert sheet.cells[(4, 2)].value == dt.date(2024, 1, 6) and sheet.cells[(4, 2)].number_format != "@"


def test_a_clear_keeps_a_persons_words_in_the_note_and_their_colour() -> None:
    conn, _, sheet = setup()
    conn.apply([Patch(4, 3, "invalid", fill="FFC7CE", note="sheetsync: bad phone"),
                Patch(2, 2, "invalid", fill="FFC7CE", note="sheetsync: bad name")])
    sheet.cells[(4, 3)].note.text = "Bob moved. sheetsync: bad phone"  # a person edits the note
    sheet.cells[(2, 2)].color = (0, 255, 0)  # and recolours another marked cell
    conn.apply([Patch(4, 3, "clear", clear=True, fill="FFC7CE", note="sheetsync: bad phone"),
                Patch(2, 2, "clear", clear=True, fill="FFC7CE", note="sheetsync: bad name")])
    assert sheet.cells[(4, 3)].color is None and sheet.cells[(4, 3)].note.text == "Bob moved."
    assert sheet.cells[(2, 2)].color == (0, 255, 0) and sheet.cells[(2, 2)].note is None


def test_rows_are_removed_after_the_cells_and_a_changed_row_stays() -> None:
    from sheetsync.model import removal
    conn, book, sheet = setup()
    data = conn.read()
    gone = removal(2, data.rows[0].values, (1, "C1"))
    fix = Patch(4, 2, "corrected", write=True, value="BOB", expected="Bob", anchor=(1, "C2"))
    applied = conn.apply([gone, fix])
    assert applied.applied == (fix, gone)
    assert [(r.number, r.values) for r in conn.read().rows] == [(3, ("C2", "BOB", "bob@@acme"))]
    assert conn.apply([gone]).deferred == (gone,)  # a replay: row 2 is the blank row now
    sheet.range((3, 2)).value = "Bobby"  # a person's edit after the read: the row stays
    assert conn.apply([removal(3, ("C2", "BOB", "bob@@acme"), (1, "C2"))]).applied == ()
