"""Google Sheets connector: one grid read, one re-read of patched cells, one batchUpdate.

Reads values *unformatted*: numbers as numbers, text as text, and cells whose number format
is a date/time as datetime.date/datetime/time (from Google's serial numbers), so rules see the
same Python types as from xlsx. Writes text as stringValue, so a leading "=" stays text; numbers
as numberValue, dates as a serial numberValue with a DATE/DATE_TIME format; never over a formula.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import random
import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import gspread
import requests
from google.auth import exceptions as gauth
from gspread.exceptions import APIError

from ...errors import SourceError, SourceUnavailable
from ...model import (Applied, Patch, ReportTab, SheetData, SheetRow, canonical_text,
                     column_letter, split_removals, typed_value)
from .. import Capabilities, ConnectorBase, is_our_note, merge_note, remove_note, values_snapshot
from .auth import make_session
from .cells import EPOCH, _grid_cells, _quote, cell_value  # noqa: F401 (EPOCH, cell_value: used by callers of this module)
from .retry import DEFAULT_TIMEOUT, AmbiguousWrite, call_with_retry, describe, status_of

SHEETS = "https://sheets.googleapis.com/v4/spreadsheets/"
DRIVE = "https://www.googleapis.com/drive/v3/files/"
CELL_FIELDS = ("userEnteredValue.formulaValue,effectiveValue,formattedValue,note,userEnteredFormat.backgroundColor,"
               "effectiveFormat.numberFormat")
GRID_FIELDS = (f"sheets(properties(sheetId,title,index,gridProperties(rowCount,columnCount)),"
               f"data(startRow,startColumn,rowData(values({CELL_FIELDS}))))")
DRIVE_FIELDS = "modifiedTime,version,lastModifyingUser(displayName,emailAddress)"
MAX_BODY = 2_000_000  # bytes per batchUpdate; above this the write is chunked


@dataclass(frozen=True)
class CellState:
    """What a cell holds now: canonical text of its value, its note, its fill ("RRGGBB"), whether
    a formula computes it, and its number format's type (DATE, NUMBER, ...)."""

    text: str = ""
    note: str | None = None
    fill: str | None = None
    formula: bool = False
    number_type: str | None = None


#: the number format a date written into a cell without one gets (Google's own ISO patterns)
DATE_FORMATS = {"DATE": {"type": "DATE", "pattern": "yyyy-mm-dd"},
                "DATE_TIME": {"type": "DATE_TIME", "pattern": "yyyy-mm-dd hh:mm:ss"}}


def _is_formula(data: dict[str, Any]) -> bool:
    return "formulaValue" in (data.get("userEnteredValue") or {})


def _serial(value: _dt.date) -> int | float:
    """Sheets' serial day number (day 0 is 1899-12-30) of a date or date-time."""
    moment = value if isinstance(value, _dt.datetime) else _dt.datetime.combine(value, _dt.time())
    delta = moment.replace(tzinfo=None) - EPOCH
    days = delta.days + delta.seconds / 86400
    return int(days) if float(days).is_integer() else days


def _hex(color: dict[str, float] | None) -> str | None:
    if color is None:
        return None
    return "".join(f"{round(color.get(k, 0) * 255):02X}" for k in ("red", "green", "blue"))


def _color(rgb: str) -> dict[str, float]:
    rgb = rgb.lstrip("#")
    return {k: int(rgb[i:i + 2], 16) / 255 for k, i in (("red", 0), ("green", 2), ("blue", 4))}


def reread_ranges(title: str | None, cells: set[tuple[int, int]], gap: int = 2) -> list[str]:
    """A1 blocks covering `cells`: rows closer than `gap` merge, so 500 patches make few ranges."""
    prefix = f"{_quote(title)}!" if title else ""
    blocks: list[list[int]] = []  # [r0, r1, c0, c1]
    for row in sorted({r for r, _ in cells}):
        cols = [c for r, c in cells if r == row]
        if blocks and row - blocks[-1][1] <= gap:
            b = blocks[-1]
            b[1], b[2], b[3] = row, min(b[2], min(cols)), max(b[3], max(cols))
        else:
            blocks.append([row, row, min(cols), max(cols)])
    return [f"{prefix}{column_letter(c0)}{r0}:{column_letter(c1)}{r1}" for r0, r1, c0, c1 in blocks]


def _spreadsheet_id(spreadsheet_id: str | None, url: str | None) -> str:
    if spreadsheet_id:
        return spreadsheet_id
    m = re.search(r"/spreadsheets/d/([A-Za-z0-9_-]+)", url or "")
    if not m:
        raise SourceError("a gsheets source needs `spreadsheet_id` or a spreadsheet `url`",
                          hint="copy the URL of the sheet from the browser into the layout")
    return m.group(1)


class GSheetsConnector(ConnectorBase):
    """Reads and patches one worksheet of a Google Sheet through gspread's HTTP client.

    `endpoint` (or SHEETSYNC_SHEETS_ENDPOINT) points it at the emulator, no credentials needed.
    Counts Sheets API requests in `api_calls` and Drive requests in `drive_calls` (separate
    quotas); `reads_api_calls` is what the last read() cost in Sheets requests.
    """

    capabilities = Capabilities(fills=True, notes=True, report_tab=True, remote=True)

    def __init__(self, spreadsheet_id: str | None = None, url: str | None = None,
                 sheet: str | None = None, header_row: int = 1, credentials: Path | None = None,
                 endpoint: str | None = None, session: requests.Session | None = None,
                 deadline_s: float = 120, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, rng: Callable[[], float] = random.random,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT, max_tries: int = 6,
                 drive: bool = True) -> None:
        self.spreadsheet_id = _spreadsheet_id(spreadsheet_id, url)
        self.sheet, self.header_row = sheet, header_row
        self.credentials = Path(credentials) if credentials else None
        self.endpoint = endpoint or os.environ.get("SHEETSYNC_SHEETS_ENDPOINT") or None
        self.timeout, self.max_tries, self.deadline_s = timeout, max_tries, deadline_s
        self.use_drive = drive  # False: no Drive metadata (no attribution, no skip-if-unchanged)
        self.clock, self.sleep, self.rng = clock, sleep, rng
        self._session, self._http, self._email = session, None, None
        self._deadline: float | None = None
        self.api_calls = 0
        self.drive_calls = 0
        self.reads_api_calls = 0
        self._drive: dict[str, Any] | None = None
        self._sheet_id: int | None = None
        self._tabs: dict[str, int] = {}

    @classmethod
    def from_source(cls, source: Any, resolve: Callable) -> "GSheetsConnector":
        return cls(spreadsheet_id=source.spreadsheet_id, url=source.url, sheet=source.sheet,
                   header_row=source.header_row, credentials=resolve(source.credentials),
                   endpoint=source.endpoint)

    def call_counts(self) -> tuple[int, int]:
        """Sheets and Drive requests so far (two quotas, counted apart)."""
        return self.api_calls, self.drive_calls
        self._formulas: frozenset[tuple[int, int]] = frozenset()

    # --- HTTP ----------------------------------------------------------------------------
    def _client(self) -> Any:
        if self._http is None:
            if self._session is None:
                self._session, self._email = make_session(self.credentials, self.endpoint, self.timeout)
            self._http = gspread.Client(auth=None, session=self._session).http_client
            self._http.set_timeout(self.timeout)
        return self._http

    def _request(self, method: str, url: str, *, idempotent: bool = True, what: str = "",
                 **kwargs: Any) -> dict[str, Any]:
        """One API call with bounded retry; terminal HTTP errors become SourceError with a hint."""
        http = self._client()
        if self._deadline is None:
            self._deadline = self.clock() + self.deadline_s

        def attempt() -> dict[str, Any]:
            if url.startswith(DRIVE):
                self.drive_calls += 1  # Drive has its own quota; Sheets' is the 60/min one
            else:
                self.api_calls += 1
            return http.request(method, url, **kwargs).json()

        try:
            return call_with_retry(attempt, deadline=self._deadline, max_tries=self.max_tries,
                                   clock=self.clock, sleep=self.sleep, rng=self.rng,
                                   idempotent=idempotent, what=what or f"{method.upper()} {url}")
        except APIError as exc:
            raise self._terminal(exc) from None
        except (gauth.RefreshError, gauth.TransportError) as exc:
            raise _auth_error(exc, self.credentials) from None

    def _terminal(self, exc: APIError) -> SourceError:
        status, where = status_of(exc), f"gsheets:{self.spreadsheet_id}"
        share = (f"share the sheet with {self._email} (Editor)" if self._email
                 else "share the sheet with the service account's email (Editor)")
        if status == 404:
            return SourceError("spreadsheet not found", where=where,
                               hint=f"check the spreadsheet id/url in the layout, and {share}")
        if status in (401, 403):
            return SourceError("no permission to open the spreadsheet", where=where, hint=share)
        return SourceError(f"Google rejected the request ({describe(exc)})", where=where,
                           hint="check the `sheet:` name and header row in the layout")

    def _grid(self, ranges: list[str]) -> dict[str, Any]:
        """One getByDataFilter (a POST read: no URL length limit for many ranges)."""
        body = {"dataFilters": [{"a1Range": r} for r in ranges], "includeGridData": True}
        return self._request("post", f"{SHEETS}{self.spreadsheet_id}:getByDataFilter",
                             params={"fields": GRID_FIELDS}, json=body, what="read cells")

    def _fetch_drive(self) -> dict[str, Any]:
        return self._request("get", DRIVE + self.spreadsheet_id, what="Drive metadata",
                             params={"fields": DRIVE_FIELDS, "supportsAllDrives": "true"})

    # --- read ------------------------------------------------------------------------------
    def unchanged_since(self, fingerprint: str | None) -> bool:
        """One Drive call: True when the file's version is the one `fingerprint` was read at."""
        if not self.use_drive:
            return False
        self._drive = self._fetch_drive()
        return bool(fingerprint) and fingerprint == f"drive:{self._drive.get('version')}"

    def read(self) -> SheetData:
        before = self.api_calls
        if self._drive is None and self.use_drive:
            self._drive = self._fetch_drive()
        body = self._request("get", SHEETS + self.spreadsheet_id, what="read sheet",
                             params={"ranges": _quote(self.sheet) if self.sheet else [],
                                     "fields": GRID_FIELDS, "includeGridData": "true"})
        sheet = (body.get("sheets") or [{}])[0]
        props = sheet.get("properties", {})
        self._sheet_id, self.sheet = props.get("sheetId", 0), props.get("title", self.sheet)
        data = self._sheet_data(_grid_cells(sheet))
        self.reads_api_calls = self.api_calls - before
        drive = self._drive or {}
        meta = {"modified_time": drive.get("modifiedTime"), "version": drive.get("version"),
                "last_modifying_user": (drive.get("lastModifyingUser") or {}).get("emailAddress")
                or (drive.get("lastModifyingUser") or {}).get("displayName"),
                "api_calls": self.reads_api_calls}
        self._drive = None  # a later read must look again
        fingerprint = f"drive:{drive['version']}" if drive.get("version") else data[3]
        return SheetData(sheet=self.sheet or "", header=data[0], rows=data[1],
                         fingerprint=fingerprint, header_row=self.header_row,
                         source=f"gsheets:{self.spreadsheet_id}", marks=data[2], meta=meta,
                         formulas=self._formulas)

    def _sheet_data(self, cells: dict[tuple[int, int], dict[str, Any]]) -> tuple[Any, ...]:
        width = max((c for r, c in cells if r == self.header_row), default=0)
        header = [canonical_text(cell_value(cells.get((self.header_row, c), {})))
                  for c in range(1, width + 1)]
        while header and not header[-1]:
            header.pop()
        rows, marks = [], {}
        for (r, c), data in cells.items():
            if is_our_note(data.get("note")):
                marks[(r, c)] = data["note"]
        self._formulas = frozenset(rc for rc, data in cells.items() if _is_formula(data))
        last = max((r for r, _ in cells), default=0)
        for r in range(self.header_row + 1, last + 1):
            values = tuple(cell_value(cells.get((r, c), {})) for c in range(1, len(header) + 1))
            if any(canonical_text(v) for v in values):
                rows.append(SheetRow(r, values))
        digest = hashlib.sha1(json.dumps([header, [[r.number, [canonical_text(v) for v in r.values]]
                                                   for r in rows]]).encode()).hexdigest()
        return tuple(header), tuple(rows), marks, f"sha1:{digest}"

    def snapshot(self) -> bytes:
        """Canonical JSON of the worksheet's values (Google has no file bytes to copy)."""
        return values_snapshot(self.read())

    # --- apply -----------------------------------------------------------------------------
    def apply(self, patches: Sequence[Patch], *, report: ReportTab | None = None,
              expected: str | None = None) -> Applied:
        """Re-read the patched cells, drop those a person changed, write the rest in one batch.

        `expected` is not needed: every cell is checked on its own just before the write.
        """
        from .rows import remove_rows
        before = self.api_calls
        patches, removals = split_removals(patches)
        if not patches and not removals and report is None:
            return Applied(applied=())
        state = self._reread(patches) if patches else {}
        ok, deferred = self._still_valid(patches, state)
        prior = {(p.row, p.col): state.get((p.row, p.col), CellState()).fill for p in ok
                 if p.fill and not p.clear
                 and not is_our_note(state.get((p.row, p.col), CellState()).note)}
        landed = self._write(ok, state, report) if ok or report is not None else []
        deferred += [p for p in ok if p not in landed]
        try:  # after the cells: removing a row renumbers those below it
            removed, kept = remove_rows(self, removals)
        except SourceUnavailable as exc:
            raise SourceUnavailable(exc.message, where=exc.where, hint=exc.hint, applied=tuple(landed)) from None
        return Applied(applied=tuple(landed) + tuple(removed), deferred=tuple(deferred) + tuple(kept),
                       prior_fills=prior, api_calls=self.api_calls - before)

    def _reread(self, patches: Sequence[Patch]) -> dict[tuple[int, int], CellState]:
        cells = {(p.row, p.col) for p in patches} | {(p.row, p.anchor[0]) for p in patches if p.anchor}
        return self._reread_cells(cells)

    @staticmethod
    def _still_valid(patches: Sequence[Patch], state: dict[tuple[int, int], CellState]
                     ) -> tuple[list[Patch], list[Patch]]:
        ok, deferred = [], []
        for p in patches:
            now = state.get((p.row, p.col), CellState())
            anchor = state.get((p.row, p.anchor[0]), CellState()) if p.anchor else None
            if (p.expected is not None and now.text != p.expected) or (
                    anchor is not None and anchor.text != p.anchor[1]):
                deferred.append(p)
            else:
                ok.append(p)
        return ok, deferred

    def _target(self, patches: Sequence[Patch], state: dict[tuple[int, int], CellState]
                ) -> dict[tuple[int, int], dict[str, Any]]:
        """(row, col) -> what the cell must hold after the write: value/fill/note/format keys as set.
        A formula cell keeps its formula (only its mark changes); a clear leaves a fill a person
        chose since and cuts only sheetsync's words out of the note."""
        targets: dict[tuple[int, int], dict[str, Any]] = {}
        for p in patches:
            t = targets.setdefault((p.row, p.col), {})
            now = state.get((p.row, p.col), CellState())
            if p.write and not now.formula:
                t["value"] = value = typed_value(p.value, p.value_type)
                if isinstance(value, _dt.date):  # a date-only format would hide (and drop on read) a time
                    kind = "DATE_TIME" if isinstance(value, _dt.datetime) else "DATE"
                    if now.number_type not in (kind, "DATE_TIME"):
                        t["format"] = DATE_FORMATS[kind]
            if p.clear:
                if p.fill is None or (now.fill or "").upper() == p.fill.upper():
                    t["fill"] = p.restore_fill
                t["note"] = remove_note(now.note, p.note)
                continue
            if p.fill:
                t["fill"] = p.fill
            if p.note:
                t["note"] = merge_note(now.note, p.note)
        return targets

    def _cell_request(self, row: int, col: int, target: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        fields = []
        if "value" in target:
            fields.append("userEnteredValue")
            value = target["value"]
            if isinstance(value, bool):
                data["userEnteredValue"] = {"boolValue": value}
            elif isinstance(value, (int, float)):
                data["userEnteredValue"] = {"numberValue": value}
            elif isinstance(value, _dt.date):
                data["userEnteredValue"] = {"numberValue": _serial(value)}
            elif value is not None:
                data["userEnteredValue"] = {"stringValue": str(value)}
        if "format" in target:
            fields.append("userEnteredFormat.numberFormat")
            data.setdefault("userEnteredFormat", {})["numberFormat"] = target["format"]
        if "fill" in target:
            fields.append("userEnteredFormat.backgroundColor")
            if target["fill"]:
                data.setdefault("userEnteredFormat", {})["backgroundColor"] = _color(target["fill"])
        if "note" in target:
            fields.append("note")
            data["note"] = target["note"] or ""
        grid = {"sheetId": self._sheet_id or 0, "startRowIndex": row - 1, "endRowIndex": row,
                "startColumnIndex": col - 1, "endColumnIndex": col}
        return {"updateCells": {"range": grid, "rows": [{"values": [data]}],
                                "fields": ",".join(fields)}}

    def _write(self, patches: list[Patch], state: dict[tuple[int, int], CellState],
               report: ReportTab | None) -> list[Patch]:
        """Send the batch (chunked over MAX_BODY); returns the patches that landed."""
        targets = self._target(patches, state)
        requests_ = [(rc, self._cell_request(*rc, t)) for rc, t in targets.items()]
        chunks: list[list[tuple[Any, dict[str, Any]]]] = [[]]
        if not requests_ and report is None:
            return []
        size = 0
        for item in requests_:
            item_size = len(json.dumps(item[1]))
            if chunks[-1] and size + item_size > MAX_BODY:
                chunks.append([])
                size = 0
            chunks[-1].append(item)
            size += item_size
        landed: list[Patch] = []
        for i, chunk in enumerate(chunks):
            cells = {rc for rc, _ in chunk}
            mine = [p for p in patches if (p.row, p.col) in cells]
            try:
                dropped = self._send_chunk([r for _, r in chunk], {rc: targets[rc] for rc in cells},
                                           report if i == len(chunks) - 1 else None, state)
            except SourceUnavailable as exc:
                raise SourceUnavailable(exc.message, hint=exc.hint, where=exc.where,
                                        applied=tuple(landed)) from None
            landed += [p for p in mine if (p.row, p.col) not in dropped]
        return landed

    def _send_chunk(self, requests_: list[dict[str, Any]], targets: dict[tuple[int, int], dict[str, Any]],
                    report: ReportTab | None, state: dict[tuple[int, int], CellState]) -> set:
        """One batchUpdate, re-sent only when safe; returns cells dropped for a person's edit.

        After an ambiguous failure (5xx, timeout, reset) the target cells are re-read: if the
        batch landed (it is atomic) we are done; if not, it is re-sent without cells a person
        changed meanwhile.
        """
        url = f"{SHEETS}{self.spreadsheet_id}:batchUpdate"
        pending = dict(zip(targets, requests_))
        dropped: set[tuple[int, int]] = set()
        # a tab sheetsync never wrote is created in this same batch (no extra request);
        # if a person made one of that name meanwhile, "already exists" falls back below
        tab_reqs = self._report_requests(report, add=report.exists is False) if report else []
        for _ in range(self.max_tries):
            try:
                self._request("post", url, json={"requests": list(pending.values()) + tab_reqs},
                              idempotent=False, what="write batch")
                if report:
                    self._tabs[report.name] = self._tab_id(report.name)
                return dropped
            except AmbiguousWrite:
                if not pending:
                    continue
                now = self._reread_cells(set(pending))
                if all(self._holds(now.get(rc, CellState()), targets[rc]) for rc in pending):
                    return dropped
                for rc in list(pending):  # not landed: a changed value is a person's edit
                    if now.get(rc, CellState()).text != state.get(rc, CellState()).text:
                        dropped.add(rc)
                        del pending[rc]
            except SourceError as exc:
                if report is None or not tab_reqs:
                    raise
                if "No grid with id" in exc.message and "addSheet" not in tab_reqs[0]:
                    tab_reqs = self._report_requests(report, add=True)
                elif "already exists" in exc.message:
                    self._lookup_tabs()
                    tab_reqs = self._report_requests(report, add=report.name not in self._tabs)
                else:
                    raise
        raise SourceUnavailable("the write batch could not be confirmed",
                                hint="the next run re-reads the sheet and finishes the work")

    def _reread_cells(self, cells: set[tuple[int, int]]) -> dict[tuple[int, int], CellState]:
        body = self._grid(reread_ranges(self.sheet, cells))
        sheet = (body.get("sheets") or [{}])[0]
        props = sheet.get("properties", {})
        self._sheet_id, self.sheet = props.get("sheetId", 0), props.get("title", self.sheet)
        return {rc: CellState(canonical_text(cell_value(d)), d.get("note"),
                              _hex(d.get("userEnteredFormat", {}).get("backgroundColor")), _is_formula(d),
                              d.get("effectiveFormat", {}).get("numberFormat", {}).get("type"))
                for rc, d in _grid_cells(sheet).items()}

    @staticmethod
    def _holds(now: CellState, target: dict[str, Any]) -> bool:
        return (("value" not in target or now.text == canonical_text(target["value"]))
                and ("fill" not in target or now.fill == (target["fill"] or None))
                and ("note" not in target or (now.note or None) == (target["note"] or None)))

    @staticmethod
    def _tab_id(name: str) -> int:
        """A stable sheetId for the report tab, so a run can address it without looking it up."""
        return zlib.crc32(name.encode("utf-8")) % (2**31 - 2) + 1

    def _lookup_tabs(self) -> None:
        body = self._request("get", SHEETS + self.spreadsheet_id, what="list tabs",
                             params={"fields": "sheets.properties(sheetId,title)"})
        self._tabs = {s["properties"]["title"]: s["properties"]["sheetId"]
                      for s in body.get("sheets", [])}

    def _report_requests(self, report: ReportTab, *, add: bool) -> list[dict[str, Any]]:
        """Rewrite the report tab in full: resize to fit, then one updateCells over the whole grid."""
        tab = self._tabs.get(report.name, self._tab_id(report.name))
        grid = {"rowCount": max(len(report.rows), 1),
                "columnCount": max((len(r) for r in report.rows), default=1) or 1}
        first = ({"addSheet": {"properties": {"sheetId": tab, "title": report.name,
                                              "gridProperties": grid}}} if add else
                 {"updateSheetProperties": {"properties": {"sheetId": tab, "gridProperties": grid},
                                            "fields": "gridProperties(rowCount,columnCount)"}})
        rows = [{"values": [{"userEnteredValue": {"stringValue": str(v)}} if v not in (None, "")
                            else {} for v in row]} for row in report.rows]
        return [first, {"updateCells": {"range": {"sheetId": tab}, "rows": rows,
                                        "fields": "userEnteredValue,note,userEnteredFormat.backgroundColor"}}]


def _auth_error(exc: Exception, credentials: Any) -> SourceError:
    """google-auth's token errors as sheetsync errors: a refused grant is a bad or revoked key
    (terminal); an unreachable token endpoint is transient. Only Google's short reason is quoted,
    never the request, which carries a signed assertion."""
    where = str(credentials) if credentials else "credentials"
    if isinstance(exc, gauth.RefreshError):
        reason = str(exc.args[0])[:120] if exc.args and isinstance(exc.args[0], str) else "refused"
        return SourceError(f"Google refused the service-account credentials ({reason})", where=where,
                           hint="the key may be revoked or deleted: create a new JSON key for the service "
                                "account; also check this machine's clock")
    return SourceUnavailable("cannot reach Google's token endpoint", where=where,
                             hint="check the network; the next run retries")
