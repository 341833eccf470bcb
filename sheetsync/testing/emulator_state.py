"""The Sheets emulator's state: spreadsheets -> sheets -> cells, A1 ranges, value rendering.

Kept free of HTTP so the rules Google applies (trimming, serial dates, quoting of sheet names)
can be read and tested in one place.
"""
from __future__ import annotations

import ast
import datetime as _dt
import operator
import re
from dataclasses import dataclass, field
from typing import Any

from ..model import column_letter

EPOCH = _dt.date(1899, 12, 30)  # Sheets' day zero for serial numbers
DEFAULT_ROWS, DEFAULT_COLS = 1000, 26


class ApiError(Exception):
    """An error the emulator answers with Google's body shape {"error": {code, message, status}}."""

    STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
              429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message,
                          "status": self.STATUS.get(self.code, "UNKNOWN")}}


@dataclass
class Cell:
    """One cell: what was entered (`uev`, the API's ExtendedValue), its format and note."""

    uev: dict[str, Any] | None = None
    fmt: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    def is_empty(self) -> bool:
        return not self.uev and not self.fmt and not self.note


@dataclass
class Sheet:
    sheet_id: int
    title: str
    index: int
    rows: int = DEFAULT_ROWS
    cols: int = DEFAULT_COLS
    hidden: bool = False
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)  # 0-based (row, col)

    def cell(self, r: int, c: int) -> Cell:
        return self.cells.setdefault((r, c), Cell())

    def writable(self, r: int, c: int) -> Cell:
        """A private copy of a cell for a batch being tried on a clone (see `clone`)."""
        old = self.cells.get((r, c))
        new = Cell(old.uev, dict(old.fmt), old.note) if old else Cell()
        self.cells[(r, c)] = new
        return new

    def clone(self) -> "Sheet":
        """Shallow copy (cells shared until `writable`): cheap trial state for atomic batches."""
        return Sheet(self.sheet_id, self.title, self.index, self.rows, self.cols, self.hidden,
                     dict(self.cells))

    def used_bounds(self) -> tuple[int, int]:
        """(rows, cols) holding anything at all (value, format or note)."""
        keys = [k for k, v in self.cells.items() if not v.is_empty()]
        return (max(r for r, _ in keys) + 1, max(c for _, c in keys) + 1) if keys else (0, 0)

    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {"sheetId": self.sheet_id, "title": self.title, "index": self.index,
                                 "sheetType": "GRID",
                                 "gridProperties": {"rowCount": self.rows, "columnCount": self.cols}}
        if self.hidden:
            props["hidden"] = True
        return props

    def extent(self) -> tuple[int, int]:
        """(rows, cols) actually holding a value: what a whole-sheet values read would return."""
        used = [k for k, v in self.cells.items() if v.uev]
        return (max(r for r, _ in used) + 1, max(c for _, c in used) + 1) if used else (0, 0)


@dataclass
class Spreadsheet:
    spreadsheet_id: str
    title: str
    sheets: list[Sheet] = field(default_factory=list)
    version: int = 1
    modified: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc))
    created: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc))
    last_user: str = "emulator@example.com"

    def sheet_by_title(self, title: str) -> Sheet | None:
        return next((s for s in self.sheets if s.title == title), None)

    def sheet_by_id(self, sheet_id: int) -> Sheet | None:
        return next((s for s in self.sheets if s.sheet_id == sheet_id), None)

    def touch(self, user: str | None = None) -> None:
        """Every write bumps the Drive version and modifiedTime, as Google does."""
        self.version += 1
        now = _dt.datetime.now(_dt.timezone.utc)
        self.modified = max(now, self.modified + _dt.timedelta(milliseconds=1))
        if user:
            self.last_user = user


# --- A1 notation -------------------------------------------------------------------------

_CELL = re.compile(r"^([A-Za-z]*)(\d*)$")


def col_number(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n


def quote_title(title: str) -> str:
    """Google quotes a sheet name in A1 only when it must (spaces, punctuation, looks like A1)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", title) and not re.fullmatch(r"[A-Za-z]{1,3}\d+", title):
        return title
    return "'" + title.replace("'", "''") + "'"


def split_range(text: str) -> tuple[str | None, str]:
    """"'My Sheet'!A1:B2" -> ("My Sheet", "A1:B2"); "Sheet1" -> ("Sheet1", "")."""
    text = text.strip()
    if text.startswith("'"):
        end, i = None, 1
        while i < len(text):
            if text[i] == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    i += 2
                    continue
                end = i
                break
            i += 1
        if end is None:
            raise ValueError(text)
        title, rest = text[1:end].replace("''", "'"), text[end + 1:]
        if rest and not rest.startswith("!"):
            raise ValueError(text)
        return title, rest[1:]
    if "!" in text:
        title, _, cells = text.rpartition("!")
        return title, cells
    return None, text


def parse_range(book: Spreadsheet, text: str) -> tuple[Sheet, int, int, int, int]:
    """A1 text -> (sheet, r0, c0, r1, c1), 0-based half-open, clipped to the grid; 400 if bad."""
    bad = ApiError(400, f"Unable to parse range: {text}")
    try:
        title, cells = split_range(text)
    except ValueError:
        raise bad from None
    if title is None:
        sheet = book.sheet_by_title(cells)
        if sheet is not None:
            return sheet, 0, 0, sheet.rows, sheet.cols
        sheet = book.sheets[0] if book.sheets else None
    else:
        sheet = book.sheet_by_title(title)
    if sheet is None:
        raise bad
    if not cells:
        return sheet, 0, 0, sheet.rows, sheet.cols
    first, _, last = cells.partition(":")
    m1, m2 = _CELL.match(first), _CELL.match(last or first)
    if not m1 or not m2 or not (first and (last or not cells.endswith(":"))):
        raise bad
    (a_col, a_row), (b_col, b_row) = m1.groups(), m2.groups()
    if not (a_col or a_row) or not (b_col or b_row):
        raise bad
    c0 = col_number(a_col) - 1 if a_col else 0
    r0 = int(a_row) - 1 if a_row else 0
    c1 = col_number(b_col) if b_col else sheet.cols
    r1 = int(b_row) if b_row else sheet.rows
    if r0 < 0 or c0 < 0 or r1 <= r0 and b_row or c1 <= c0 and b_col:
        raise bad
    return sheet, r0, c0, min(r1, sheet.rows), min(c1, sheet.cols)


def a1(sheet: Sheet, r0: int, c0: int, r1: int, c1: int) -> str:
    """The range text Google answers with, e.g. Sheet1!A1:D4."""
    start, end = f"{column_letter(c0 + 1)}{r0 + 1}", f"{column_letter(c1)}{r1}"
    return f"{quote_title(sheet.title)}!{start}" + ("" if start == end else f":{end}")


# --- values: entering and rendering --------------------------------------------------------

_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
          ast.Div: operator.truediv, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _arith(node: ast.AST) -> float:
    """Evaluate +-*/ over numbers only: enough for tests' formulas, and never Python eval."""
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        return _ARITH[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _ARITH:
        return _ARITH[type(node.op)](_arith(node.operand))
    raise ValueError("unsupported formula")


def effective(cell: Cell) -> dict[str, Any] | None:
    """The computed ExtendedValue of a cell (formulas evaluated when simple arithmetic)."""
    uev = cell.uev
    if not uev:
        return None
    if "formulaValue" in uev:
        try:
            value = _arith(ast.parse(uev["formulaValue"][1:], mode="eval"))
        except (ValueError, SyntaxError, ZeroDivisionError, TypeError):
            return {"errorValue": {"type": "ERROR", "message": "Formula not supported by the emulator."}}
        return {"numberValue": value}
    return dict(uev)


def _number_text(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".15g")


def _date_text(serial: float, kind: str) -> str:
    day = EPOCH + _dt.timedelta(days=int(serial // 1))
    if kind == "DATE":
        return day.isoformat()
    seconds = round((serial % 1) * 86400)
    clock = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return clock if kind == "TIME" else f"{day.isoformat()} {clock}"


def date_kind(cell: Cell) -> str | None:
    kind = cell.fmt.get("numberFormat", {}).get("type")
    return kind if kind in ("DATE", "TIME", "DATE_TIME") else None


def formatted(cell: Cell) -> str | None:
    ev = effective(cell)
    if ev is None:
        return None
    if "stringValue" in ev:
        return ev["stringValue"]
    if "boolValue" in ev:
        return "TRUE" if ev["boolValue"] else "FALSE"
    if "errorValue" in ev:
        return "#ERROR!"
    kind = date_kind(cell)
    return _date_text(ev["numberValue"], kind) if kind else _number_text(ev["numberValue"])


def render(cell: Cell, value_option: str, date_option: str) -> Any:
    """One cell as values.get returns it; "" for an empty cell."""
    if not cell.uev:
        return ""
    if value_option == "FORMATTED_VALUE":
        return formatted(cell)
    if value_option == "FORMULA" and "formulaValue" in cell.uev:
        return cell.uev["formulaValue"]
    ev = effective(cell) or {}
    if "numberValue" in ev:
        if date_kind(cell) and date_option == "FORMATTED_STRING":
            return formatted(cell)
        number = ev["numberValue"]
        return int(number) if float(number).is_integer() and abs(number) < 1e15 else number
    if "errorValue" in ev:
        return "#ERROR!"
    return next(iter(ev.values()))


_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def entered(value: Any, input_option: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """A value sent to values.update -> (ExtendedValue, number format); RAW keeps text as text."""
    if value is None or value == "":
        return None, {}
    if isinstance(value, bool):
        return {"boolValue": value}, {}
    if isinstance(value, (int, float)):
        return {"numberValue": value}, {}
    text = str(value)
    if input_option != "USER_ENTERED":
        return {"stringValue": text}, {}
    if text.startswith("="):
        return {"formulaValue": text}, {}
    if text.upper() in ("TRUE", "FALSE"):
        return {"boolValue": text.upper() == "TRUE"}, {}
    if _NUMBER.match(text):
        number = float(text)
        return {"numberValue": int(number) if number.is_integer() else number}, {}
    m = _DATE.match(text)
    if m:
        try:
            day = _dt.date(*map(int, m.groups()))
        except ValueError:
            return {"stringValue": text}, {}
        return ({"numberValue": (day - EPOCH).days},
                {"numberFormat": {"type": "DATE", "pattern": "yyyy-mm-dd"}})
    return {"stringValue": text.removeprefix("'")}, {}


def trimmed_rows(rows: list[list[Any]]) -> list[list[Any]]:
    """Drop trailing "" in each row and trailing empty rows, as the values API does."""
    out = []
    for row in rows:
        while row and row[-1] in ("", None):
            row.pop()
        out.append(row)
    while out and not out[-1]:
        out.pop()
    return out
