"""Reading a spreadsheets.get answer: a CellData's value as Python, the cells of a sheet's grid,
a tab title quoted for A1 ranges. Shared by the connector and its row removal (rows.py).
"""
from __future__ import annotations

import datetime as _dt
from typing import Any

from ...model import CellError, CellValue

EPOCH = _dt.datetime(1899, 12, 30)


def cell_value(data: dict[str, Any]) -> CellValue:
    """A CellData's effective value as Python; date-formatted serials become dates."""
    ev = data.get("effectiveValue")
    if not ev:
        return None
    if "stringValue" in ev:
        return ev["stringValue"]
    if "boolValue" in ev:
        return bool(ev["boolValue"])
    if "errorValue" in ev:  # a broken formula: reported, never taken as a value
        return CellError(data.get("formattedValue") or "#ERROR!")
    number = ev.get("numberValue", 0)
    kind = data.get("effectiveFormat", {}).get("numberFormat", {}).get("type")
    if kind in ("DATE", "DATE_TIME", "TIME"):
        moment = EPOCH + _dt.timedelta(days=number)
        return moment.date() if kind == "DATE" else moment.time() if kind == "TIME" else moment
    return int(number) if float(number).is_integer() and abs(number) < 2**53 else number


def _quote(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


def _grid_cells(sheet: dict[str, Any]) -> dict[tuple[int, int], dict[str, Any]]:
    """(row, col) 1-based -> CellData for every cell present in a sheet's GridData blocks."""
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for block in sheet.get("data", []):
        r0, c0 = block.get("startRow", 0), block.get("startColumn", 0)
        for i, row in enumerate(block.get("rowData", [])):
            for j, data in enumerate(row.get("values", [])):
                if data:
                    cells[(r0 + i + 1, c0 + j + 1)] = data
    return cells
