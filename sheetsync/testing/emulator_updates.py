"""The spreadsheets.batchUpdate request kinds the emulator understands.

updateCells/repeatCell follow Google's field-mask rule: a field named in `fields` but absent
from the given cell is cleared; fields not named are left alone.
"""
from __future__ import annotations

import random
from typing import Any, Callable

from .emulator_grid import Mask, parse_mask, sub_mask
from .emulator_state import DEFAULT_COLS, DEFAULT_ROWS, ApiError, Cell, Sheet, Spreadsheet


def _sheet(book: Spreadsheet, sheet_id: int) -> Sheet:
    sheet = book.sheet_by_id(sheet_id)
    if sheet is None:
        raise ApiError(400, f"No grid with id: {sheet_id}")
    return sheet


def _grid_range(book: Spreadsheet, rng: dict[str, Any]) -> tuple[Sheet, int, int, int, int]:
    sheet = _sheet(book, int(rng.get("sheetId", 0)))
    r0, c0 = int(rng.get("startRowIndex", 0)), int(rng.get("startColumnIndex", 0))
    r1, c1 = int(rng.get("endRowIndex", sheet.rows)), int(rng.get("endColumnIndex", sheet.cols))
    if r1 > sheet.rows or c1 > sheet.cols:
        raise ApiError(400, f"Range ({sheet.title}!R{r0 + 1}C{c0 + 1}:R{r1}C{c1}) exceeds grid "
                            f"limits. Max rows: {sheet.rows}, max columns: {sheet.cols}")
    if r0 < 0 or c0 < 0 or r1 < r0 or c1 < c0:
        raise ApiError(400, "Invalid range: start index must not be after end index")
    return sheet, r0, c0, r1, c1


def _set_format(cell: Cell, given: dict[str, Any], mask: Mask) -> None:
    given = dict(given)
    style = given.pop("backgroundColorStyle", None)
    if style and "backgroundColor" not in given and "rgbColor" in style:
        given["backgroundColor"] = style["rgbColor"]
    if mask is None:
        cell.fmt = {k: v for k, v in given.items() if k != "numberFormat"} | (
            {"numberFormat": given["numberFormat"]} if "numberFormat" in given else {})
        return
    for key, sub in mask.items():
        key = "backgroundColor" if key == "backgroundColorStyle" else key
        if key in given and sub is None:
            cell.fmt[key] = given[key]
        elif key in given:
            cell.fmt[key] = {**cell.fmt.get(key, {}), **{k: given[key][k] for k in sub if k in given[key]}}
        else:
            cell.fmt.pop(key, None)


def write_cell(cell: Cell, data: dict[str, Any], mask: Mask) -> None:
    """Copy the masked fields of one CellData into a cell; named-but-absent fields are cleared."""
    if sub_mask(mask, "userEnteredValue")[0]:
        value = data.get("userEnteredValue") or None
        if value and len(value) != 1:
            raise ApiError(400, "userEnteredValue must hold exactly one kind of value")
        cell.uev = value
    chosen, fmt_mask = sub_mask(mask, "userEnteredFormat")
    if chosen:
        _set_format(cell, data.get("userEnteredFormat", {}), fmt_mask)
    if sub_mask(mask, "note")[0]:
        cell.note = data.get("note") or None


def _mask_of(params: dict[str, Any]) -> Mask:
    fields = params.get("fields")
    if not fields:
        raise ApiError(400, "At least one field must be specified.")
    try:
        return parse_mask(fields)
    except ValueError:
        raise ApiError(400, f"Invalid field mask: {fields}") from None


def update_cells(book: Spreadsheet, params: dict[str, Any]) -> dict[str, Any]:
    mask, rows = _mask_of(params), params.get("rows", [])
    if "range" in params:
        sheet, r0, c0, r1, c1 = _grid_range(book, params["range"])
        for r in range(r0, r1):
            values = rows[r - r0].get("values", []) if r - r0 < len(rows) else []
            for c in range(c0, c1):
                write_cell(sheet.writable(r, c), values[c - c0] if c - c0 < len(values) else {}, mask)
        return {}
    start = params.get("start", {})
    sheet = _sheet(book, int(start.get("sheetId", 0)))
    r0, c0 = int(start.get("rowIndex", 0)), int(start.get("columnIndex", 0))
    width = max((len(row.get("values", [])) for row in rows), default=0)
    if r0 + len(rows) > sheet.rows or c0 + width > sheet.cols:
        raise ApiError(400, f"GridCoordinate is outside the grid of sheet {sheet.title!r} "
                            f"(rows {sheet.rows}, columns {sheet.cols})")
    for i, row in enumerate(rows):
        for j, data in enumerate(row.get("values", [])):
            write_cell(sheet.writable(r0 + i, c0 + j), data, mask)
    return {}


def repeat_cell(book: Spreadsheet, params: dict[str, Any]) -> dict[str, Any]:
    mask = _mask_of(params)
    sheet, r0, c0, r1, c1 = _grid_range(book, params.get("range", {}))
    for r in range(r0, r1):
        for c in range(c0, c1):
            write_cell(sheet.writable(r, c), params.get("cell", {}), mask)
    return {}


def add_sheet(book: Spreadsheet, params: dict[str, Any]) -> dict[str, Any]:
    props = params.get("properties", {})
    title = props.get("title") or f"Sheet{len(book.sheets) + 1}"
    if book.sheet_by_title(title):
        raise ApiError(400, f'A sheet with the name "{title}" already exists. '
                            "Please enter another name.")
    sheet_id = props.get("sheetId")
    if sheet_id is None:
        sheet_id = random.randint(1, 2**31 - 1)
    elif book.sheet_by_id(int(sheet_id)):
        raise ApiError(400, f"Sheet with id {sheet_id} already exists.")
    grid = props.get("gridProperties", {})
    index = min(int(props.get("index", len(book.sheets))), len(book.sheets))
    sheet = Sheet(int(sheet_id), title, index, int(grid.get("rowCount", DEFAULT_ROWS)),
                  int(grid.get("columnCount", DEFAULT_COLS)), bool(props.get("hidden", False)))
    book.sheets.insert(index, sheet)
    for i, each in enumerate(book.sheets):
        each.index = i
    return {"addSheet": {"properties": sheet.properties()}}


def delete_sheet(book: Spreadsheet, params: dict[str, Any]) -> dict[str, Any]:
    sheet = _sheet(book, int(params.get("sheetId", 0)))
    if len(book.sheets) == 1:
        raise ApiError(400, "You can't remove all the sheets in a document.")
    book.sheets.remove(sheet)
    for i, each in enumerate(book.sheets):
        each.index = i
    return {}


def update_sheet_properties(book: Spreadsheet, params: dict[str, Any]) -> dict[str, Any]:
    props, mask = params.get("properties", {}), _mask_of(params)
    sheet = _sheet(book, int(props.get("sheetId", 0)))
    grid = props.get("gridProperties", {})
    if sub_mask(mask, "hidden")[0]:
        hidden = bool(props.get("hidden", False))
        if hidden and all(s.hidden or s is sheet for s in book.sheets):
            raise ApiError(400, "You can't hide all the sheets in a document.")
        sheet.hidden = hidden
    if sub_mask(mask, "title")[0] and props.get("title"):
        other = book.sheet_by_title(props["title"])
        if other is not None and other is not sheet:
            raise ApiError(400, f'A sheet with the name "{props["title"]}" already exists. '
                                "Please enter another name.")
        sheet.title = props["title"]
    if sub_mask(mask, "gridProperties", "rowCount")[0]:
        sheet.rows = int(grid.get("rowCount", sheet.rows))
    if sub_mask(mask, "gridProperties", "columnCount")[0]:
        sheet.cols = int(grid.get("columnCount", sheet.cols))
    sheet.cells = {k: v for k, v in sheet.cells.items() if k[0] < sheet.rows and k[1] < sheet.cols}
    return {}


def delete_dimension(book: Spreadsheet, params: dict[str, Any]) -> dict[str, Any]:
    """Delete rows (or columns) [startIndex, endIndex): the cells after them move up (left)."""
    rng = params.get("range", {})
    sheet = _sheet(book, int(rng.get("sheetId", 0)))
    dim = rng.get("dimension")
    if dim not in ("ROWS", "COLUMNS"):
        raise ApiError(400, f"Invalid dimension: {dim}")
    size = sheet.rows if dim == "ROWS" else sheet.cols
    start, end = int(rng.get("startIndex", 0)), int(rng.get("endIndex", size))
    if not 0 <= start < end <= size:
        raise ApiError(400, f"Invalid requests[0].deleteDimension: range {start}:{end} is outside "
                            f"the grid of sheet {sheet.title!r} ({size} {dim.lower()})")
    if end - start == size:
        raise ApiError(400, "Invalid requests[0].deleteDimension: You can't delete all the "
                            f"{dim.lower()} on the sheet.")
    at, n = (0 if dim == "ROWS" else 1), end - start
    moved = {}
    for key, cell in sheet.cells.items():
        if start <= key[at] < end:
            continue
        if key[at] >= end:
            key = (key[0] - n, key[1]) if at == 0 else (key[0], key[1] - n)
        moved[key] = cell
    sheet.cells = moved
    if dim == "ROWS":
        sheet.rows -= n
    else:
        sheet.cols -= n
    return {}


BATCH_REQUESTS: dict[str, Callable[[Spreadsheet, dict[str, Any]], dict[str, Any]]] = {
    "updateCells": update_cells, "repeatCell": repeat_cell, "addSheet": add_sheet,
    "deleteSheet": delete_sheet, "updateSheetProperties": update_sheet_properties,
    "deleteDimension": delete_dimension,
}
