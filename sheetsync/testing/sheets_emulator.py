"""A local Google Sheets API v4 (+ Drive v3 files.get) emulator over real HTTP on loopback.

gspread and sheetsync's connector talk to it through a requests.Session that rewrites
https://sheets.googleapis.com and https://www.googleapis.com to `emu.url`. Use it from tests:

    with SheetsEmulator() as emu:
        emu.add_spreadsheet("sheet-id", {"Sheet1": [["name", "phone"], ["Ann", "138"]]})
        ...  # point the connector at emu.url
        emu.cell("sheet-id", "Sheet1", 2, 2)  # -> "138"
"""
from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import emulator_api as api
from .emulator_faults import HTML_503, Fault, FaultQueue
from .emulator_grid import color_to_hex, hex_to_color
from .emulator_routes import route
from .emulator_seed import load_json, load_xlsx, sheet_from_rows
from .emulator_state import ApiError, Spreadsheet, entered, render

__all__ = ["SheetsEmulator", "Fault", "serve"]


class SheetsEmulator:
    """The emulator: state, fault queue and request counters behind a loopback HTTP server."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.books: dict[str, Spreadsheet] = {}
        self.faults = FaultQueue()
        self.calls: Counter[str] = Counter()
        self.lock = threading.RLock()
        self.private: set[str] = set()  # ids answered with 403, like a sheet not shared with you
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}  # open ones: closed by stop()

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "SheetsEmulator":
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True,
                                        name="sheets-emulator")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and end every connection's thread: a client's idle keep-alive socket
        would otherwise keep its handler thread waiting, for as long as the process lives."""
        self._server.shutdown()
        with self.lock:
            open_now = dict(self._connections)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in open_now.values():
            thread.join(5)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> "SheetsEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- state -----------------------------------------------------------------------------
    def add_spreadsheet(self, spreadsheet_id: str, sheets: dict[str, list[list[Any]]],
                        title: str | None = None) -> Spreadsheet:
        """Seed a spreadsheet: tab name -> rows of values (str stays text, numbers numbers)."""
        book = Spreadsheet(spreadsheet_id, title or spreadsheet_id)
        for index, (name, rows) in enumerate(sheets.items() or {"Sheet1": []}.items()):
            book.sheets.append(sheet_from_rows(name, index, rows))
        with self.lock:
            self.books[spreadsheet_id] = book
        return book

    def load(self, path: Path) -> list[str]:
        """Seed from a JSON file ({id: {tab: rows}}) or an xlsx (id = file stem); returns ids."""
        books = load_xlsx(path) if path.suffix.lower() in (".xlsx", ".xlsm") else load_json(path)
        with self.lock:
            for book in books:
                self.books[book.spreadsheet_id] = book
        return [b.spreadsheet_id for b in books]

    def _sheet(self, spreadsheet_id: str, sheet: str):
        found = self.books[spreadsheet_id].sheet_by_title(sheet)
        if found is None:
            raise KeyError(f"no tab {sheet!r} in {spreadsheet_id}")
        return found

    def cell(self, spreadsheet_id: str, sheet: str, row: int, col: int,
             render_option: str = "UNFORMATTED_VALUE") -> Any:
        """The value of a cell (1-based), as values.get would render it; None when empty."""
        with self.lock:
            found = self._sheet(spreadsheet_id, sheet).cells.get((row - 1, col - 1))
            value = render(found, render_option, "FORMATTED_STRING") if found else ""
        return None if value == "" else value

    def raw(self, spreadsheet_id: str, sheet: str, row: int, col: int) -> dict[str, Any] | None:
        """The cell's userEnteredValue, e.g. {"stringValue": "=1+1"}: tells text from formula."""
        with self.lock:
            found = self._sheet(spreadsheet_id, sheet).cells.get((row - 1, col - 1))
            return dict(found.uev) if found and found.uev else None

    def number_format(self, spreadsheet_id: str, sheet: str, row: int, col: int) -> dict[str, Any] | None:
        """The cell's userEnteredFormat.numberFormat, e.g. {"type": "DATE", "pattern": "yyyy-mm-dd"}."""
        with self.lock:
            found = self._sheet(spreadsheet_id, sheet).cells.get((row - 1, col - 1))
            return dict(found.fmt["numberFormat"]) if found and "numberFormat" in found.fmt else None

    def note(self, spreadsheet_id: str, sheet: str, row: int, col: int) -> str | None:
        with self.lock:
            found = self._sheet(spreadsheet_id, sheet).cells.get((row - 1, col - 1))
            return found.note if found else None

    def fill(self, spreadsheet_id: str, sheet: str, row: int, col: int) -> str | None:
        """Background colour as "RRGGBB", None when the cell has none."""
        with self.lock:
            found = self._sheet(spreadsheet_id, sheet).cells.get((row - 1, col - 1))
            return color_to_hex(found.fmt.get("backgroundColor")) if found else None

    def values(self, spreadsheet_id: str, sheet: str) -> list[list[Any]]:
        """Every row as values.get(UNFORMATTED_VALUE) would return it (trimmed)."""
        with self.lock:
            book = self.books[spreadsheet_id]
            body = api.values_get(book, f"'{sheet}'", {"valueRenderOption": ["UNFORMATTED_VALUE"],
                                                       "dateTimeRenderOption": ["FORMATTED_STRING"]})
        return body.get("values", [])

    def set_cell(self, spreadsheet_id: str, sheet: str, row: int, col: int, value: Any = None, *,
                 note: str | None = None, fill: str | None = None, user: str = "person@example.com",
                 keep: bool = False, formula: str | None = None,
                 number_format: dict[str, str] | None = None) -> None:
        """Edit a cell as a person would; `keep=True` leaves the value and only sets note/fill.
        `formula` ("=1+2") enters a formula, `number_format` ({"type": "DATE", "pattern": ...})
        the cell's number format, as the Sheets UI would."""
        with self.lock:
            book = self.books[spreadsheet_id]
            target = self._sheet(spreadsheet_id, sheet)
            target.rows, target.cols = max(target.rows, row), max(target.cols, col)
            found = target.cell(row - 1, col - 1)
            if formula is not None:
                found.uev = {"formulaValue": formula}
            elif not keep:
                found.uev, _ = entered(value, "RAW")
            if number_format is not None:
                found.fmt["numberFormat"] = dict(number_format)
            if note is not None:
                found.note = note or None
            if fill is not None:
                found.fmt["backgroundColor"] = hex_to_color(fill)
            book.touch(user)

    def version(self, spreadsheet_id: str) -> int:
        return self.books[spreadsheet_id].version

    # --- faults and counters ---------------------------------------------------------------
    def inject(self, kind: str, count: int = 1, **params: Any) -> None:
        """Arm a fault: inject("429", retry_after="7"), inject("503"), inject("delay", seconds=2),
        inject("reset", match="batchUpdate", land=True), inject("500", match="batchUpdate")."""
        self.faults.arm(Fault.from_json({"kind": kind, "count": count, **params}))

    def edit_after_next_read(self, spreadsheet_id: str, sheet: str, row: int, col: int,
                             value: Any, note: str | None = None) -> None:
        """A person edits a cell right after the next read of values (between read and write)."""
        self.faults.arm(Fault("edit", edit={"spreadsheet_id": spreadsheet_id, "sheet": sheet,
                                            "row": row, "col": col, "value": value, "note": note}))

    def run_edit(self, fault: Fault) -> None:
        e = fault.edit
        self.set_cell(e["spreadsheet_id"], e["sheet"], int(e["row"]), int(e["col"]), e["value"],
                      note=e.get("note"))

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def reset_calls(self) -> None:
        self.calls.clear()


def _handler_for(emu: SheetsEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        emulator = emu
    return Handler


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; every answer is JSON like Google's except the injected HTML 503."""

    emulator: SheetsEmulator
    protocol_version = "HTTP/1.1"
    server_version = "ESF"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read counters instead
        pass

    def setup(self) -> None:
        super().setup()
        with self.emulator.lock:
            self.emulator._connections[self.connection] = threading.current_thread()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.emulator.lock:
                self.emulator._connections.pop(self.connection, None)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            raise ApiError(400, "Invalid JSON payload received.") from None

    def _serve(self, method: str) -> None:
        emu = self.emulator
        try:
            body = self._body()
            found = route(method, self.path)
        except ApiError as exc:
            return self._send(exc.code, exc.body())
        if found is None:
            return self._send(404, {"error": {"code": 404, "message": f"Method not found: {self.path}",
                                              "status": "NOT_FOUND"}})
        kind, handler = found
        if kind == "_emulator":
            return self._send(*handler(emu, body))
        emu.calls[kind] += 1
        fault = emu.faults.take(kind)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault is not None and not fault.land and fault.kind not in ("delay",):
            return self._fail(fault)
        with emu.lock:
            status, answer = handler(emu, body)
        if fault is not None and fault.kind != "delay":
            return self._fail(fault)
        if status < 300:
            edit = emu.faults.take(kind, edits=True)
            if edit is not None:
                emu.run_edit(edit)
        self._send(status, answer)

    def _fail(self, fault: Fault) -> None:
        if fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if fault.kind == "503":
            return self._send(503, HTML_503.encode(), content_type="text/html; charset=UTF-8")
        code = int(fault.kind)
        body = ApiError(code, "Quota exceeded for quota metric 'Read requests' and limit 'Read "
                        "requests per minute per user'" if code == 429 else
                        "Internal error encountered.").body()
        headers = {"Retry-After": fault.retry_after} if code == 429 and fault.retry_after else {}
        self._send(code, body, headers=headers)

    def _send(self, status: int, body: Any, *, content_type: str = "application/json; charset=UTF-8",
              headers: dict[str, str] | None = None) -> None:
        if isinstance(body, bytes) or body is None:
            data = body or b""
        else:  # pretty like Google's answers, unless big (then speed matters more)
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            if len(data) < 200_000:
                data = json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8")
        try:
            self.send_response(status)
            if data:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            self.close_connection = True


def serve(port: int = 8765, data: Path | None = None) -> None:
    """Run the emulator in the foreground (the `sheetsync emulator` command)."""
    emu = SheetsEmulator(port=port)
    ids = emu.load(Path(data)) if data else []
    if not ids:
        emu.add_spreadsheet("example", {"Sheet1": [["name", "email"], ["Ann", "ann@example.com"]]})
        ids = ["example"]
    print(f"Sheets API emulator on {emu.url}  spreadsheets: {', '.join(ids)}", flush=True)
    print(f"point sheetsync at it: SHEETSYNC_SHEETS_ENDPOINT={emu.url}   (Ctrl-C stops)", flush=True)
    try:
        emu._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emu._server.server_close()
