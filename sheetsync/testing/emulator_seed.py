"""Seeding the emulator: rows of Python values, a JSON file, or an xlsx workbook (openpyxl).

JSON shape: {"<spreadsheet id>": {"<tab>": [[cell, ...], ...]}} or, with title/notes/fills,
{"<id>": {"title": "...", "sheets": {"<tab>": {"rows": [[...]], "notes": {"B2": "..."},
"fills": {"B2": "FFC7CE"}}}}}.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from .emulator_grid import hex_to_color
from .emulator_state import DEFAULT_COLS, DEFAULT_ROWS, EPOCH, Sheet, Spreadsheet, col_number, entered


def _a1_cell(ref: str) -> tuple[int, int]:
    letters = "".join(ch for ch in ref if ch.isalpha())
    return int(ref[len(letters):]) - 1, col_number(letters) - 1


def _typed(value: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """A Python value -> ExtendedValue and number format; dates become serials with DATE format."""
    if isinstance(value, _dt.datetime):
        serial = (value - _dt.datetime.combine(EPOCH, _dt.time())).total_seconds() / 86400
        return {"numberValue": serial}, {"numberFormat": {"type": "DATE_TIME",
                                                          "pattern": "yyyy-mm-dd hh:mm:ss"}}
    if isinstance(value, _dt.date):
        return {"numberValue": (value - EPOCH).days}, {"numberFormat": {"type": "DATE",
                                                                        "pattern": "yyyy-mm-dd"}}
    return entered(value, "RAW")


def sheet_from_rows(name: str, index: int, rows: list[list[Any]], sheet_id: int | None = None,
                    notes: dict[str, str] | None = None, fills: dict[str, str] | None = None) -> Sheet:
    width = max((len(r) for r in rows), default=0)
    sheet = Sheet(index if sheet_id is None else sheet_id, name, index,
                  max(DEFAULT_ROWS, len(rows)), max(DEFAULT_COLS, width))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            uev, fmt = _typed(value)
            if uev:
                cell = sheet.cell(r, c)
                cell.uev, cell.fmt = uev, dict(fmt)
    for ref, text in (notes or {}).items():
        sheet.cell(*_a1_cell(ref)).note = text
    for ref, rgb in (fills or {}).items():
        sheet.cell(*_a1_cell(ref)).fmt["backgroundColor"] = hex_to_color(rgb)
    return sheet


def load_json(path: Path) -> list[Spreadsheet]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    books = []
    for sid, spec in data.items():
        tabs = spec.get("sheets", spec) if isinstance(spec, dict) else {}
        book = Spreadsheet(sid, spec.get("title", sid) if "sheets" in spec else sid)
        for index, (name, tab) in enumerate(tabs.items()):
            if isinstance(tab, dict):
                book.sheets.append(sheet_from_rows(name, index, tab.get("rows", []), None,
                                                   tab.get("notes"), tab.get("fills")))
            else:
                book.sheets.append(sheet_from_rows(name, index, tab))
        books.append(book)
    return books


def load_xlsx(path: Path) -> list[Spreadsheet]:
    """One spreadsheet (id = file stem) with a tab per worksheet: values, solid fills, comments."""
    import openpyxl

    workbook = openpyxl.load_workbook(path, data_only=True)
    book = Spreadsheet(Path(path).stem, Path(path).stem)
    for index, ws in enumerate(workbook.worksheets):
        rows = [list(row) for row in ws.iter_rows(values_only=True)]
        notes, fills = {}, {}
        for row in ws.iter_rows():
            for cell in row:
                if cell.comment is not None:
                    notes[cell.coordinate] = cell.comment.text
                fill = cell.fill
                if fill is not None and fill.fill_type == "solid" and isinstance(fill.fgColor.rgb, str):
                    fills[cell.coordinate] = fill.fgColor.rgb[-6:]
        book.sheets.append(sheet_from_rows(ws.title, index, rows, None, notes, fills))
    return [book]
