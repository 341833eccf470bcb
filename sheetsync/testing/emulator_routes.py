"""URL routing for the emulator: Google's paths (percent-encoded ranges, `:verb` suffixes) -> handlers.

gspread percent-encodes the whole range in the path (`/values/%27Sheet1%27%21A1%3AD4`) while
`:clear` and `:batchUpdate` stay literal, so the verb is split off before decoding.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from . import emulator_api as api
from .emulator_faults import Fault
from .emulator_state import ApiError, Spreadsheet

if TYPE_CHECKING:
    from .sheets_emulator import SheetsEmulator

Handler = Callable[["SheetsEmulator", dict[str, Any]], tuple[int, Any]]

_SHEETS = re.compile(r"^/v4/spreadsheets/([^/:]+)(.*)$")
_DRIVE = re.compile(r"^/drive/v3/files/([^/:]+)$")


def _book(emu: "SheetsEmulator", spreadsheet_id: str) -> Spreadsheet:
    if spreadsheet_id in emu.private:
        raise ApiError(403, "The caller does not have permission")
    book = emu.books.get(spreadsheet_id)
    if book is None:
        raise ApiError(404, "Requested entity was not found.")
    return book


def _answer(fn: Callable[[], Any]) -> tuple[int, Any]:
    try:
        return 200, fn()
    except ApiError as exc:
        return exc.code, exc.body()


def _truthy(query: dict[str, list[str]], key: str) -> bool:
    return query.get(key, ["false"])[0].lower() == "true"


def _sheets_route(method: str, sid: str, rest: str, q: dict[str, list[str]]
                  ) -> tuple[str, Handler] | None:
    fields = q.get("fields", [None])[0]
    if rest == "" and method == "GET":
        return "spreadsheets.get", lambda emu, body: _answer(lambda: api.get_spreadsheet(
            _book(emu, sid), q.get("ranges", []), fields, _truthy(q, "includeGridData")))
    if rest == ":getByDataFilter" and method == "POST":
        return "spreadsheets.getByDataFilter", lambda emu, body: _answer(lambda: api.get_spreadsheet(
            _book(emu, sid), [f["a1Range"] for f in body.get("dataFilters", []) if "a1Range" in f],
            fields, bool(body.get("includeGridData"))))
    if rest == ":batchUpdate" and method == "POST":
        return "spreadsheets.batchUpdate", lambda emu, body: _answer(
            lambda: api.batch_update(_book(emu, sid), body))
    if rest == "/values:batchGet" and method == "GET":
        return "values.batchGet", lambda emu, body: _answer(
            lambda: api.values_batch_get(_book(emu, sid), q))
    if rest == "/values:batchUpdate" and method == "POST":
        return "values.batchUpdate", lambda emu, body: _answer(
            lambda: api.values_batch_update(_book(emu, sid), body))
    if rest.startswith("/values/"):
        raw = rest[len("/values/"):]
        if raw.endswith(":clear") and method == "POST":
            rng = unquote(raw[:-len(":clear")])
            return "values.clear", lambda emu, body: _answer(
                lambda: api.values_clear(_book(emu, sid), rng))
        rng = unquote(raw)
        if method == "GET":
            return "values.get", lambda emu, body: _answer(
                lambda: api.values_get(_book(emu, sid), rng, q))
        if method == "PUT":
            return "values.update", lambda emu, body: _answer(
                lambda: api.values_update(_book(emu, sid), rng, q, body))
    return None


def _drive_route(method: str, fid: str, q: dict[str, list[str]]) -> tuple[str, Handler] | None:
    def missing() -> tuple[int, Any]:
        message = f"File not found: {fid}."
        return 404, {"error": {"code": 404, "message": message, "errors": [
            {"message": message, "domain": "global", "reason": "notFound", "location": "fileId",
             "locationType": "parameter"}]}}

    def get(emu: "SheetsEmulator", body: dict[str, Any]) -> tuple[int, Any]:
        book = emu.books.get(fid)
        if book is None or fid in emu.private:
            return missing()
        return 200, api.drive_file(book, q.get("fields", [None])[0])

    def delete(emu: "SheetsEmulator", body: dict[str, Any]) -> tuple[int, Any]:
        if emu.books.pop(fid, None) is None:
            return missing()
        return 204, None

    if method == "GET":
        return "drive.files.get", get
    if method == "DELETE":
        return "drive.files.delete", delete
    return None


def _control(method: str, path: str) -> tuple[str, Handler] | None:
    def faults(emu: "SheetsEmulator", body: dict[str, Any]) -> tuple[int, Any]:
        try:
            fault = Fault.from_json(body)
        except (ValueError, TypeError) as exc:
            return ApiError(400, str(exc)).code, ApiError(400, str(exc)).body()
        emu.faults.arm(fault)
        return 200, {"armed": fault.kind, "count": fault.count}

    def calls(emu: "SheetsEmulator", body: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"calls": dict(emu.calls), "total": emu.total_calls}

    if path == "/_emulator/faults" and method == "POST":
        return "_emulator", faults
    if path == "/_emulator/calls" and method == "GET":
        return "_emulator", calls
    return None


def route(method: str, raw_path: str) -> tuple[str, Handler] | None:
    """(request kind for counters and faults, handler) or None for an unknown path."""
    parts = urlsplit(raw_path)
    query = parse_qs(parts.query, keep_blank_values=True)
    if parts.path.startswith("/_emulator/"):
        return _control(method, parts.path)
    m = _SHEETS.match(parts.path)
    if m:
        return _sheets_route(method, unquote(m.group(1)), m.group(2), query)
    m = _DRIVE.match(parts.path)
    if m:
        return _drive_route(method, unquote(m.group(1)), query)
    return None
