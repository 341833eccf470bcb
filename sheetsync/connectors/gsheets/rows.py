"""Removing rows of a Google Sheet: re-read them, keep those a person changed since, delete the
rest bottom-up in one atomic batchUpdate of deleteDimension requests, never re-sent blindly
(a second delete of row 7 would take the row that moved up into its place).
"""
from __future__ import annotations

from typing import Any, Sequence

from ...errors import SourceUnavailable
from ...model import CellValue, Patch, canonical_text
from .. import row_unchanged
from .cells import _grid_cells, _quote, cell_value
from .retry import AmbiguousWrite


def remove_rows(conn: Any, removals: Sequence[Patch]) -> tuple[list[Patch], list[Patch]]:
    """(removed, deferred) of `removals` (bottom-up, as model.split_removals orders them)."""
    if not removals:
        return [], []
    numbers = sorted({p.row for p in removals})
    now = rows_now(conn, numbers)
    ok = [p for p in removals if row_unchanged(p, now.get(p.row, ()))]
    deferred = [p for p in removals if p not in ok]
    if not ok:
        return [], deferred
    url = f"https://sheets.googleapis.com/v4/spreadsheets/{conn.spreadsheet_id}:batchUpdate"
    body = {"requests": [{"deleteDimension": {"range": {
        "sheetId": conn._sheet_id or 0, "dimension": "ROWS", "startIndex": p.row - 1, "endIndex": p.row}}}
        for p in ok]}
    for _ in range(conn.max_tries):
        try:
            conn._request("post", url, json=body, idempotent=False, what="remove rows")
            return ok, deferred
        except AmbiguousWrite:
            again = rows_now(conn, numbers)
            if all(row_unchanged(p, again.get(p.row, ())) for p in ok):
                continue  # the batch did not land (it is atomic): sending it again is safe
            break
    raise SourceUnavailable("removing rows could not be confirmed",
                            hint="the next run re-reads the sheet; a row already gone is not removed twice")


def rows_now(conn: Any, numbers: Sequence[int]) -> dict[int, tuple[CellValue, ...]]:
    """The rows' cells as read() would give them (header-wide), in one getByDataFilter."""
    prefix = f"{_quote(conn.sheet)}!" if conn.sheet else ""
    ranges = [f"{prefix}{conn.header_row}:{conn.header_row}", *(f"{prefix}{r}:{r}" for r in numbers)]
    body = conn._grid(ranges)
    sheet = (body.get("sheets") or [{}])[0]
    props = sheet.get("properties", {})
    conn._sheet_id, conn.sheet = props.get("sheetId", 0), props.get("title", conn.sheet)
    cells = _grid_cells(sheet)
    width = max((c for r, c in cells if r == conn.header_row), default=0)
    header = [canonical_text(cell_value(cells.get((conn.header_row, c), {}))) for c in range(1, width + 1)]
    while header and not header[-1]:
        header.pop()
    width = len(header)
    return {r: tuple(cell_value(cells.get((r, c), {})) for c in range(1, width + 1)) for r in numbers}
