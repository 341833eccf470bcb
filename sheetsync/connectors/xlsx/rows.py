"""Removing whole rows from a worksheet (merged-away and archived records) through openpyxl,
only where that cannot break the workbook; otherwise the rows stay and the caller is told why.
"""
from __future__ import annotations

import bisect
from typing import Any, Sequence


def delete_rows(ws: Any, rows: Sequence[int]) -> None:
    """Delete many rows in one pass over the cells (what ws.delete_rows does per call, which
    costs a pass per row: 1,000 scattered rows of 10,000 took 70 s that way). Notes move with
    their cells; row heights below move up too."""
    gone = sorted(set(rows))
    if not gone:
        return
    drop, moved = set(gone), {}
    for (r, c), cell in sorted(ws._cells.items()):
        if r in drop:
            continue
        shift = bisect.bisect_left(gone, r)
        if shift:
            cell.row = r - shift
        moved[(r - shift, c)] = cell
    ws._cells = moved
    heights = {r: d for r, d in ws.row_dimensions.items() if r not in drop}
    ws.row_dimensions.clear()
    for r, dim in sorted(heights.items()):
        shift = bisect.bisect_left(gone, r)
        dim.index = r - shift
        ws.row_dimensions[r - shift] = dim


def unsafe_to_delete(book: Any, ws: Any) -> str:
    """Why deleting rows with openpyxl could break the workbook ("" = safe): openpyxl shifts
    cells but not formulas, merged ranges, tables, validations, conditional formats or names."""
    checks = [
        (bool(ws.merged_cells.ranges), "the sheet has merged cells"),
        (bool(ws.tables), "the sheet has Excel tables"),
        (bool(list(ws.conditional_formatting)), "the sheet has conditional formats"),
        (bool(ws.data_validations.dataValidation), "the sheet has data validations"),
        (bool(ws.auto_filter.ref), "the sheet has a filter"),
        (bool(list(book.defined_names)) or any(bool(list(s.defined_names))
                                               for s in book.worksheets), "the workbook has names"),
    ]
    for present, why in checks:
        if present:
            return why + "; delete the listed rows by hand"
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f" or cell.hyperlink is not None:
                    return "the workbook has formulas or links; delete the listed rows by hand"
    return ""
