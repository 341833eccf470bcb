"""The Sheets v4 / Drive v3 endpoints the emulator answers, as plain functions over its state.

Each handler takes the spreadsheet and the parsed request and returns the JSON body Google
would; errors are raised as ApiError so the server can answer with Google's error shape.
"""
from __future__ import annotations

from typing import Any, Callable

from .emulator_grid import DEFAULT_FORMAT, THEME, apply_mask, grid_data, parse_mask, sub_mask
from .emulator_state import (ApiError, Cell, Spreadsheet, a1, entered, parse_range, render,
                             trimmed_rows)
from .emulator_updates import BATCH_REQUESTS


def _used(bounds: tuple[int, int], r0: int, c0: int, r1: int, c1: int) -> tuple[int, int]:
    """Clip a range's end to the cells that hold anything, so big empty grids cost nothing."""
    return max(r0, min(r1, bounds[0])), max(c0, min(c1, bounds[1]))


def get_spreadsheet(book: Spreadsheet, ranges: list[str], fields: str | None,
                    include_grid: bool) -> dict[str, Any]:
    """spreadsheets.get (and getByDataFilter with a1Range filters)."""
    try:
        mask = parse_mask(fields)
    except ValueError as exc:
        raise ApiError(400, f"Invalid field selection {fields}") from exc
    want_data = sub_mask(mask, "sheets", "data")[0] if mask is not None else include_grid
    _, cell_mask = sub_mask(mask, "sheets", "data", "rowData", "values")
    parsed = [parse_range(book, text) for text in ranges]
    sheets = []
    for sheet in book.sheets:
        mine = [p for p in parsed if p[0] is sheet]
        if parsed and not mine:
            continue
        entry: dict[str, Any] = {"properties": sheet.properties()}
        if want_data:
            spans = [p[1:] for p in mine] or [(0, 0, sheet.rows, sheet.cols)]
            bounds = sheet.used_bounds()
            entry["data"] = [grid_data(sheet, r0, c0, *_used(bounds, r0, c0, r1, c1), cell_mask)
                             for r0, c0, r1, c1 in spans]
        sheets.append(entry)
    body = {"spreadsheetId": book.spreadsheet_id,
            "properties": {"title": book.title, "locale": "en_US", "autoRecalc": "ON_CHANGE",
                           "timeZone": "Etc/GMT", "defaultFormat": DEFAULT_FORMAT,
                           "spreadsheetTheme": THEME},
            "sheets": sheets,
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{book.spreadsheet_id}/edit"}
    return apply_mask(body, mask)


def _value_range(book: Spreadsheet, text: str, query: dict[str, list[str]]) -> dict[str, Any]:
    sheet, r0, c0, r1, c1 = parse_range(book, text)
    option = query.get("valueRenderOption", ["FORMATTED_VALUE"])[0]
    dates = query.get("dateTimeRenderOption", ["SERIAL_NUMBER"])[0]
    major = query.get("majorDimension", ["ROWS"])[0]
    er, ec = _used(sheet.used_bounds(), r0, c0, r1, c1)
    rows = [[render(sheet.cells.get((r, c)) or Cell(), option, dates) for c in range(c0, ec)]
            for r in range(r0, er)]
    if major == "COLUMNS":
        rows = [list(col) for col in zip(*rows)] if rows else []
    body: dict[str, Any] = {"range": a1(sheet, r0, c0, r1, c1), "majorDimension": major}
    values = trimmed_rows(rows)
    if values:
        body["values"] = values
    return body


def values_get(book: Spreadsheet, text: str, query: dict[str, list[str]]) -> dict[str, Any]:
    return _value_range(book, text, query)


def values_batch_get(book: Spreadsheet, query: dict[str, list[str]]) -> dict[str, Any]:
    return {"spreadsheetId": book.spreadsheet_id,
            "valueRanges": [_value_range(book, t, query) for t in query.get("ranges", [])]}


def _write_values(book: Spreadsheet, text: str, values: list[list[Any]], option: str,
                  major: str = "ROWS") -> dict[str, Any]:
    if option not in ("RAW", "USER_ENTERED"):
        raise ApiError(400, "Invalid valueInputOption: INPUT_VALUE_OPTION_UNSPECIFIED")
    sheet, r0, c0, _, _ = parse_range(book, text)
    if major == "COLUMNS":
        values = [list(col) for col in zip(*values)]
    height, width = len(values), max((len(row) for row in values), default=0)
    sheet.rows, sheet.cols = max(sheet.rows, r0 + height), max(sheet.cols, c0 + width)
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            cell = sheet.cell(r0 + i, c0 + j)
            cell.uev, number_format = entered(value, option)
            cell.fmt.pop("numberFormat", None)
            cell.fmt.update(number_format)
    return {"spreadsheetId": book.spreadsheet_id,
            "updatedRange": a1(sheet, r0, c0, r0 + max(height, 1), c0 + max(width, 1)),
            "updatedRows": height, "updatedColumns": width, "updatedCells": height * width}


def values_update(book: Spreadsheet, text: str, query: dict[str, list[str]],
                  body: dict[str, Any]) -> dict[str, Any]:
    option = query.get("valueInputOption", [""])[0]
    out = _write_values(book, text, body.get("values", []), option, body.get("majorDimension", "ROWS"))
    book.touch()
    return out


def values_batch_update(book: Spreadsheet, body: dict[str, Any]) -> dict[str, Any]:
    option = body.get("valueInputOption", "")
    responses = [_write_values(book, d["range"], d.get("values", []), option,
                               d.get("majorDimension", "ROWS")) for d in body.get("data", [])]
    book.touch()
    sheets = {r["updatedRange"].rpartition("!")[0] for r in responses}
    return {"spreadsheetId": book.spreadsheet_id,
            "totalUpdatedRows": sum(r["updatedRows"] for r in responses),
            "totalUpdatedColumns": max((r["updatedColumns"] for r in responses), default=0),
            "totalUpdatedCells": sum(r["updatedCells"] for r in responses),
            "totalUpdatedSheets": len(sheets), "responses": responses}


def values_clear(book: Spreadsheet, text: str) -> dict[str, Any]:
    sheet, r0, c0, r1, c1 = parse_range(book, text)
    for (r, c), cell in list(sheet.cells.items()):
        if r0 <= r < r1 and c0 <= c < c1:
            cell.uev = None
            cell.fmt.pop("numberFormat", None)
    book.touch()
    return {"spreadsheetId": book.spreadsheet_id, "clearedRange": a1(sheet, r0, c0, r1, c1)}


def batch_update(book: Spreadsheet, body: dict[str, Any]) -> dict[str, Any]:
    """spreadsheets.batchUpdate: all requests apply or none (validated on a copy first)."""
    trial = Spreadsheet(book.spreadsheet_id, book.title, [s.clone() for s in book.sheets])
    replies = []
    for i, request in enumerate(body.get("requests", [])):
        (kind, params), = request.items() if len(request) == 1 else (("", {}),)
        handler: Callable[..., dict[str, Any]] | None = BATCH_REQUESTS.get(kind)
        if handler is None:
            raise ApiError(400, f"Invalid requests[{i}]: request kind {kind!r} is not supported "
                                "by the sheetsync emulator")
        try:
            replies.append(handler(trial, params))
        except ApiError as exc:
            raise ApiError(exc.code, f"Invalid requests[{i}].{kind}: {exc.message}") from None
    book.sheets = trial.sheets
    book.touch()
    return {"spreadsheetId": book.spreadsheet_id, "replies": replies}


def drive_file(book: Spreadsheet, fields: str | None) -> dict[str, Any]:
    """Drive v3 files.get metadata, with Google's RFC 3339 millisecond timestamps."""
    def stamp(moment: Any) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    body = {"kind": "drive#file", "id": book.spreadsheet_id, "name": book.title,
            "mimeType": "application/vnd.google-apps.spreadsheet",
            "createdTime": stamp(book.created), "modifiedTime": stamp(book.modified),
            "version": str(book.version),
            "lastModifyingUser": {"kind": "drive#user", "displayName": book.last_user.split("@")[0],
                                  "emailAddress": book.last_user, "me": False}}
    if not fields:
        return {k: body[k] for k in ("kind", "id", "name", "mimeType")}
    return apply_mask(body, parse_mask(fields))
