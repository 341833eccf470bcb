"""Plain data passed between the stages of a sync (connector -> rules -> dedupe -> store -> patches).

Frozen dataclasses only: every stage can be called alone in a test with values built by hand.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, NamedTuple, Sequence, Union

class CellError(str):
    """A cell showing a spreadsheet error (#REF!, #N/A, #DIV/0!): text, but never a value.

    Readers that would otherwise see an empty cell (calamine does) hand this over instead, so a
    broken formula is reported as invalid and never clears a stored value.
    """

    code = "cell_error"  # the problem it is reported as


class UncalculatedFormula(CellError):
    """A formula saved without its result (openpyxl and pandas write formulas so): the file holds
    no value for it until Excel recalculates and saves. Its text is the formula."""

    code = "formula_uncalculated"


#: What a connector may hand over for one cell. Connectors do not interpret values: a number
#: stored in xlsx arrives as float (calamine), a CSV cell as str, an empty cell as None.
CellValue = Union[str, int, float, bool, _dt.datetime, _dt.date, _dt.time, _dt.timedelta, None]

#: What sheetsync writes into a cell: text stays text (never a formula), numbers stay numbers.
WriteValue = Union[str, int, float, bool, None]

#: the most characters one cell holds, by source kind: Excel's limit (a longer cell is cut or
#: breaks the file) and Google Sheets' (a longer write is refused); CSV has none
MAX_CELL_CHARS: Mapping[str, int] = {"xlsx": 32_767, "excel": 32_767, "gsheets": 50_000}


def column_letter(col: int) -> str:
    """1 -> A, 27 -> AA: the spreadsheet name of a 1-based column number."""
    if col < 1:
        raise ValueError(f"column number must be >= 1, got {col}")
    letters = ""
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def canonical_text(value: CellValue) -> str:
    """A stable text form of a cell, so that change detection does not see `5000.0` vs `5000`.

    Calamine reads every xlsx number as float, Sheets returns ints, CSV returns text: all three
    must hash the same when the cell shows the same thing.
    """
    if value.__class__ is str:  # most cells: no conversion (a str subclass goes through str())
        return value  # type: ignore[return-value]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return repr(value)
        if value.is_integer() and abs(value) < 2**63:
            return str(int(value))
        return repr(value)
    if isinstance(value, _dt.datetime):
        if value.time() == _dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return str(value)
    return str(value)


def row_hash(values: Sequence[CellValue]) -> str:
    """Hash of one row's cells as shown; trailing empty cells do not count (Sheets trims them)."""
    texts = [v if type(v) is str else canonical_text(v) for v in values]
    while texts and texts[-1] == "":
        texts.pop()
    # repr of a list of str quotes and escapes every item, so no cell text can make two
    # different rows encode the same (and it is C speed: this runs for every row of every read)
    return hashlib.blake2b(repr(texts).encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class CellRef:
    """Where a cell is, for messages and patches. `row` and `col` are 1-based sheet numbers."""

    sheet: str
    row: int
    col: int

    @property
    def a1(self) -> str:
        return f"{column_letter(self.col)}{self.row}"

    def __str__(self) -> str:
        return f"{self.sheet}!{self.a1}"


class SheetRow(NamedTuple):
    """One data row as read: its sheet row number and its cells, aligned with SheetData.header.
    (A NamedTuple: a read makes one per row, and tuples cost a fraction of frozen dataclasses.)"""

    number: int
    values: tuple[CellValue, ...]

    def get(self, index: int) -> CellValue:
        return self.values[index] if index < len(self.values) else None


@dataclass(frozen=True)
class SheetData:
    """Everything a connector read from one worksheet.

    `header` holds the header cells as typed (text), `header_row` its sheet row number; `rows`
    are the data rows below it, blank rows dropped. `fingerprint` identifies this version of the
    source (file hash, Drive version), so a write can refuse when the source changed since.
    `marks` are the cells that already carry a sheetsync note (row, col) -> note text, so stale
    marks can be found after a crash; connectors that cannot hold notes leave it empty.
    `formulas` are the cells a formula computes: sheetsync marks them but never writes a value
    there (the person's formula would be lost).
    """

    sheet: str
    header: tuple[str, ...]
    rows: tuple[SheetRow, ...]
    fingerprint: str
    header_row: int = 1
    source: str = ""
    marks: Mapping[tuple[int, int], str] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    formulas: frozenset[tuple[int, int]] = frozenset()  # (row, col) of cells computed by a formula


PatchKind = Literal["corrected", "invalid", "duplicate", "conflict", "protected", "pushed", "clear", "remove"]


@dataclass(frozen=True)
class Patch:
    """One change sheetsync wants in one cell of the synced worksheet.

    - `write=True` sets the cell to `value` (str is written as text, never as a formula).
      `value_type` says what the column holds ("text", "number", "date", "datetime", "boolean";
      None: as the Python type says), so a connector writes a date as a date, a decimal held as
      text as a number: the person's SUM and date filters keep working (see typed_value).
    - `fill`/`note` set sheetsync's mark: the fill colour "RRGGBB" and the explanation note.
    - `clear=True` removes sheetsync's own mark: the fill goes back to `restore_fill` (None = no
      fill) and sheetsync's part of the note is removed; a person's own note text is kept. On a
      clear, `fill`/`note` (when set) are the mark being removed: that fill counts as
      sheetsync's, and that note text is cut out of whatever the person made of the note.
    - `expected` is the cell's text when it was read (canonical_text). The connector re-checks
      it just before writing and drops the patch if a person changed the cell since: that edit
      is left for the next run.
    - `anchor` is (col, text) of the row's key cell, checked the same way, so a patch replayed
      after rows moved never lands on another record.
    - `kind="remove"` removes the whole row `row` (a merged-away or archived record). Its
      `expected` is the row_hash of the row as read and `anchor` its key cell: a row a person
      changed since, or a replay after the row is gone, is deferred, never a wrong row removed.
      Connectors apply removals after every cell patch of the same call, bottom-up, so the row
      numbers of the call's other patches stay right (see `removal` and `split_removals`).
    """

    row: int
    col: int
    kind: PatchKind
    write: bool = False
    value: WriteValue = None
    fill: str | None = None
    note: str | None = None
    clear: bool = False
    restore_fill: str | None = None
    expected: str | None = None
    anchor: tuple[int, str] | None = None
    value_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row, "col": self.col, "kind": self.kind, "write": self.write,
            "value": self.value, "fill": self.fill, "note": self.note, "clear": self.clear,
            "restore_fill": self.restore_fill, "expected": self.expected,
            "anchor": list(self.anchor) if self.anchor else None, "value_type": self.value_type,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Patch":
        anchor = data.get("anchor")
        return cls(**{**data, "anchor": tuple(anchor) if anchor else None})


def typed_value(value: WriteValue, value_type: str | None) -> CellValue:
    """The value to put in a cell of a `value_type` column: the store keeps dates and decimals
    as text ("2024-01-06", "880.00"), but the sheet's cell must stay a date or a number. Text that
    does not read as the type is written as it is (never lost, never guessed)."""
    if value is None or value_type in (None, "text") or not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if value_type == "number":
            number = float(text.replace(",", ""))
            if number != number or number in (float("inf"), float("-inf")):
                return value
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
        if value_type == "date":
            return _dt.date.fromisoformat(text)
        if value_type == "datetime":
            return _dt.datetime.fromisoformat(text)
        if value_type == "boolean" and text.upper() in ("TRUE", "FALSE"):
            return text.upper() == "TRUE"
    except ValueError:
        return value
    return value


def removal(row: int, values: Sequence[CellValue], anchor: tuple[int, str] | None) -> Patch:
    """The patch that removes sheet row `row`, read as `values`, whose key cell is `anchor`."""
    return Patch(row=row, col=anchor[0] if anchor else 1, kind="remove", expected=row_hash(values),
                 anchor=anchor)


def split_removals(patches: Sequence[Patch]) -> tuple[list[Patch], list[Patch]]:
    """(cell patches in their order, row removals bottom-up): removing a row renumbers the rows
    below it, so removals go last and from the bottom."""
    cells = [p for p in patches if p.kind != "remove"]
    gone = sorted((p for p in patches if p.kind == "remove"), key=lambda p: -p.row)
    return cells, gone


@dataclass(frozen=True)
class ReportTab:
    """The report tab sheetsync (re)writes in full: a title row, a header, one row per problem."""

    name: str
    rows: tuple[tuple[str, ...], ...]
    exists: bool | None = None  # hint: sheetsync wrote this tab before (None = unknown), so a
    #                             remote connector can create it in the same request otherwise


@dataclass(frozen=True)
class Applied:
    """What a connector's apply() did. `applied` + `deferred` account for every patch given.

    `deferred` patches were dropped because the cell or its row changed since the read (a person
    edited it); they are left for the next run. `prior_fills` maps (row, col) of each newly
    marked cell to the fill it had before sheetsync's mark (None = none), so a later clear can
    put it back. `api_calls` counts requests made to a remote service (0 for local files).
    `fingerprint` is set by a connector that knows the exact bytes it wrote, so the next run can
    tell "nothing changed since sheetsync's own write" without reading the rows. `kept_rows`
    says why row removals were all deferred when the source cannot remove rows safely (an xlsx
    with formulas or merged cells), so the caller can mark those rows for a person instead.
    """

    applied: tuple[Patch, ...]
    deferred: tuple[Patch, ...] = ()
    prior_fills: Mapping[tuple[int, int], str | None] = field(default_factory=dict)
    api_calls: int = 0
    fingerprint: str | None = None  # the source's fingerprint right after this write, when known exactly
    kept_rows: str = ""  # why this source may not remove rows now ("": it may); its removals are deferred


Outcome = Literal["ok", "corrected", "invalid", "protected"]


@dataclass(frozen=True)
class Problem:
    """One data problem, as data: rendered into a message by messages.render(code, params, lang)."""

    code: str
    field: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    row: int | None = None
    col: int | None = None
    record_key: str | None = None


RunOutcome = Literal["ok", "problems", "partial", "failed"]
#: the process exit code for a run's outcome (`sync` and `run` both; 2 is a layout error)
EXIT_FOR_OUTCOME: dict[str, int] = {"ok": 0, "problems": 1, "partial": 3, "failed": 4}


@dataclass
class RunResult:
    """The summary of one run; `to_json()` gives the keys of DESIGN.md's CLI contract."""

    layout: str
    run_id: str
    outcome: RunOutcome = "ok"
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    corrected: int = 0
    invalid: int = 0
    duplicates: int = 0
    conflicts: int = 0
    protected: int = 0
    held_back: int = 0
    deletes_held: int = 0  # rows gone from the sheet but not deleted: more than max_delete allows
    patches_applied: int = 0
    patches_deferred: int = 0
    replayed: int = 0
    api_calls: int = 0
    drive_calls: int = 0
    seconds: float = 0.0
    message: str = ""
    problems: tuple[Problem, ...] = ()

    def to_json(self) -> dict[str, Any]:
        keys = ("layout", "run_id", "outcome", "rows_read", "inserted", "updated", "unchanged",
                "deleted", "corrected", "invalid", "duplicates", "conflicts", "protected",
                "held_back", "deletes_held", "patches_applied", "patches_deferred", "replayed", "api_calls",
                "drive_calls", "seconds", "message")
        out = {k: getattr(self, k) for k in keys}
        out["seconds"] = round(self.seconds, 3)
        return out
