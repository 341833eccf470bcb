"""A sheet's full grid of cells -> header texts and data rows: the one reading rule every
connector that gets a whole grid shares (xlsx, csv, the memory fake).
"""
from __future__ import annotations

import operator
from itertools import count, repeat
from typing import Sequence

from ..errors import SourceError
from ..model import CellValue, SheetRow, canonical_text


def rows_from_grid(grid: Sequence[Sequence[CellValue]], header_row: int, totals_row: bool,
                   where: str) -> tuple[tuple[str, ...], tuple[SheetRow, ...]]:
    """Header texts and non-blank data rows from a full grid (grid[0] is sheet row 1, col A).

    Rows above `header_row` (titles) are ignored; trailing all-empty columns are trimmed.
    """
    if len(grid) < header_row or _used_width(grid[header_row - 1]) == 0:
        raise SourceError(f"no header in row {header_row} (the sheet is empty there)", where=where,
                          hint="check source.header_row in the layout, or that this is the right sheet")
    width = _used_width(grid[header_row - 1])
    body = grid[header_row:]
    # rows with an empty cell ("" from calamine, None where errors were put in), found at C speed:
    # only they need their used width worked out and padding (a blank row is left out)
    gaps = list(map(operator.or_, map(operator.contains, body, repeat("")),
                    map(operator.contains, body, repeat(None))))
    if not totals_row and not any(gaps) and set(map(len, body)) <= {width}:  # a full rectangle
        header = tuple(canonical_text(v) for v in _pad(grid[header_row - 1], width))
        rows = zip(count(header_row + 1), map(tuple, body))
        return header, tuple(map(tuple.__new__, repeat(SheetRow), rows))
    numbers, kept, padded = [], [], []
    for n, row, gap in zip(count(header_row + 1), body, gaps):
        used = _used_width(row) if gap else len(row)
        if used:
            numbers.append(n)
            kept.append(row)
            padded.append(gap)
            if used > width:
                width = used
    if totals_row and kept:
        numbers.pop(), kept.pop(), padded.pop()
        width = max(_used_width(grid[header_row - 1]), max(map(_used_width, kept), default=0))
    header = tuple(canonical_text(v) for v in _pad(grid[header_row - 1], width))
    values = [_pad(row, width) if gap or len(row) != width else tuple(row) for row, gap in zip(kept, padded)]
    # tuple.__new__ makes each SheetRow at C speed (a NamedTuple's own __new__ is Python code)
    return header, tuple(map(tuple.__new__, repeat(SheetRow), zip(numbers, values)))


def _used_width(row: Sequence[CellValue]) -> int:
    """Columns up to the last non-empty cell ("" and None are empty; a space is not)."""
    for i in range(len(row), 0, -1):
        if row[i - 1] is not None and row[i - 1] != "":
            return i
    return 0


def _pad(row: Sequence[CellValue], width: int) -> tuple[CellValue, ...]:
    """Exactly `width` cells, empty ones as None."""
    cells = row[:width] if len(row) > width else row
    cells = tuple([None if v == "" else v for v in cells] if "" in cells else cells)
    return cells + (None,) * (width - len(cells)) if len(cells) < width else cells
