"""The emulator as gspread sees it: real gspread over loopback HTTP, seeds, faults, counters."""
from __future__ import annotations

import json
from pathlib import Path

import gspread
import openpyxl
import pytest
import requests
from openpyxl.comments import Comment
from openpyxl.styles import PatternFill

from sheetsync.connectors.gsheets.auth import EndpointSession
from sheetsync.testing.emulator_state import ApiError, Spreadsheet, parse_range, quote_title
from sheetsync.testing.emulator_seed import sheet_from_rows
from sheetsync.testing.sheets_emulator import SheetsEmulator


@pytest.fixture
def emu():
    with SheetsEmulator() as server:
        server.add_spreadsheet("book", {"Sheet1": [["a", "b"], [1, 2.5]], "My Sheet": [["x"]]})
        yield server


def client(emu: SheetsEmulator) -> gspread.Client:
    return gspread.Client(auth=None, session=EndpointSession(emu.url))


def test_gspread_reads_and_writes_through_the_emulator(emu: SheetsEmulator) -> None:
    ws = client(emu).open_by_key("book").worksheet("My Sheet")
    assert ws.get_all_values() == [["x"]]
    ws.update([["=1+2", "2020-01-01"]], "A2:B2", value_input_option="USER_ENTERED")
    assert ws.get("A2:B2", value_render_option="UNFORMATTED_VALUE") == [[3, 43831]]
    assert ws.get("A2:B2", value_render_option="FORMULA") == [["=1+2", 43831]]
    ws.update([["=1+2"]], "C2", value_input_option="RAW")
    assert emu.raw("book", "My Sheet", 2, 3) == {"stringValue": "=1+2"}
    ws.update_note("A1", "hello")
    assert ws.get_note("A1") == "hello" and emu.note("book", "My Sheet", 1, 1) == "hello"
    ws.format("B1", {"backgroundColor": {"red": 1}})
    assert emu.fill("book", "My Sheet", 1, 2) == "FF0000"


def test_values_are_trimmed_and_ranges_quoted_like_google(emu: SheetsEmulator) -> None:
    emu.set_cell("book", "My Sheet", 3, 1, "")
    url = f"{emu.url}/v4/spreadsheets/book/values/%27My%20Sheet%27%21A1%3AD9"
    body = requests.get(url, timeout=5).json()
    assert body == {"range": "'My Sheet'!A1:D9", "majorDimension": "ROWS", "values": [["x"]]}
    assert quote_title("Sheet1") == "Sheet1" and quote_title("A1") == "'A1'"
    assert quote_title("it's") == "'it''s'"


def test_bad_range_and_unknown_sheet_answer_400_and_404(emu: SheetsEmulator) -> None:
    bad = requests.get(f"{emu.url}/v4/spreadsheets/book/values/Nope%21A1", timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    gone = requests.get(f"{emu.url}/v4/spreadsheets/zzz", timeout=5)
    assert gone.json() == {"error": {"code": 404, "message": "Requested entity was not found.",
                                     "status": "NOT_FOUND"}}
    book = Spreadsheet("b", "b", [sheet_from_rows("S", 0, [])])
    with pytest.raises(ApiError):
        parse_range(book, "S!B2:A1")


def test_batch_update_is_atomic(emu: SheetsEmulator) -> None:
    body = {"requests": [
        {"updateCells": {"range": {"sheetId": 0, "startRowIndex": 0, "endRowIndex": 1,
                                   "startColumnIndex": 0, "endColumnIndex": 1},
                         "rows": [{"values": [{"userEnteredValue": {"stringValue": "changed"}}]}],
                         "fields": "userEnteredValue"}},
        {"deleteSheet": {"sheetId": 12345}}]}
    answer = requests.post(f"{emu.url}/v4/spreadsheets/book:batchUpdate", json=body, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("Invalid requests[1].deleteSheet")
    assert emu.cell("book", "Sheet1", 1, 1) == "a"


def test_drive_metadata_tracks_every_write(emu: SheetsEmulator) -> None:
    url = f"{emu.url}/drive/v3/files/book?fields=modifiedTime,version,lastModifyingUser"
    before = requests.get(url, timeout=5).json()
    emu.set_cell("book", "Sheet1", 1, 1, "z", user="ann@example.com")
    after = requests.get(url, timeout=5).json()
    assert int(after["version"]) == int(before["version"]) + 1
    assert after["modifiedTime"] > before["modifiedTime"]
    assert after["lastModifyingUser"]["emailAddress"] == "ann@example.com"


def test_control_endpoint_arms_faults_and_counts_requests(emu: SheetsEmulator) -> None:
    armed = requests.post(f"{emu.url}/_emulator/faults", json={"kind": "503", "count": 1}, timeout=5)
    assert armed.json() == {"armed": "503", "count": 1}
    html = requests.get(f"{emu.url}/v4/spreadsheets/book", timeout=5)
    assert html.status_code == 503 and html.text.startswith("<!DOCTYPE html>")
    assert requests.get(f"{emu.url}/v4/spreadsheets/book", timeout=5).status_code == 200
    requests.post(f"{emu.url}/_emulator/faults", json={"kind": "429", "retry_after": "3"}, timeout=5)
    limited = requests.get(f"{emu.url}/v4/spreadsheets/book", timeout=5)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    bad = requests.post(f"{emu.url}/_emulator/faults", json={"kind": "boom"}, timeout=5)
    assert bad.status_code == 400
    calls = requests.get(f"{emu.url}/_emulator/calls", timeout=5).json()
    assert calls == {"calls": {"spreadsheets.get": 3}, "total": 3}


def test_reset_fault_drops_the_connection(emu: SheetsEmulator) -> None:
    emu.inject("reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{emu.url}/v4/spreadsheets/book", timeout=5)


def test_seed_from_json_and_xlsx(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"j": {"title": "J", "sheets": {"T": {
        "rows": [["k", "v"], ["a", 1]], "notes": {"B2": "n"}, "fills": {"A2": "FFC7CE"}}}}}))
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    ws.append(["name", "phone"])
    ws.append(["Ann", 13800138000])
    ws["B2"].comment = Comment("check", "me")
    ws["A2"].fill = PatternFill("solid", fgColor="FFFFFF00")
    wb.save(tmp_path / "team.xlsx")
    with SheetsEmulator() as emu:
        assert emu.load(seed) == ["j"] and emu.load(tmp_path / "team.xlsx") == ["team"]
        assert emu.values("j", "T") == [["k", "v"], ["a", 1]]
        assert emu.note("j", "T", 2, 2) == "n" and emu.fill("j", "T", 2, 1) == "FFC7CE"
        assert emu.cell("team", "Data", 2, 2) == 13800138000
        assert emu.note("team", "Data", 2, 2) == "check" and emu.fill("team", "Data", 2, 1) == "FFFF00"


def test_serve_runs_in_the_foreground_from_a_seed_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"demo": {"Sheet1": [["a"], ["b"]]}}))
    code = ("import sys; from pathlib import Path; from sheetsync.testing.sheets_emulator import serve;"
            " serve(0, Path(sys.argv[1]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(seed)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split()[4]
        assert "demo" in line
        body = requests.get(f"{url}/v4/spreadsheets/demo/values/Sheet1", timeout=5).json()
        assert body["values"] == [["a"], ["b"]]
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_stop_ends_the_threads_of_idle_keep_alive_connections():
    # a client that keeps its connection open left a handler thread waiting after stop()
    import threading

    before = set(threading.enumerate())
    server = SheetsEmulator().start()
    server.add_spreadsheet("book", {"Sheet1": [["a"]]})
    session = requests.Session()
    assert session.get(f"{server.url}/v4/spreadsheets/book").status_code == 200
    server.stop()
    assert set(threading.enumerate()) <= before
    session.close()


def test_delete_dimension_moves_rows_and_columns_up_and_left(emu: SheetsEmulator) -> None:
    url = f"{emu.url}/v4/spreadsheets/book:batchUpdate"
    for r, row in enumerate([["a", "b", "c"], ["1", "2", "3"], ["4", "5", "6"]], start=1):
        for c, value in enumerate(row, start=1):
            emu.set_cell("book", "Sheet1", r, c, value)
    emu.set_cell("book", "Sheet1", 3, 3, note="keep me", keep=True)

    def delete(dim: str, start: int, end: int) -> requests.Response:
        rng = {"sheetId": 0, "dimension": dim, "startIndex": start, "endIndex": end}
        return requests.post(url, json={"requests": [{"deleteDimension": {"range": rng}}]}, timeout=5)

    assert delete("ROWS", 1, 2).status_code == 200
    assert emu.values("book", "Sheet1") == [["a", "b", "c"], ["4", "5", "6"]]
    assert emu.note("book", "Sheet1", 2, 3) == "keep me"
    assert delete("COLUMNS", 0, 1).status_code == 200
    assert emu.values("book", "Sheet1") == [["b", "c"], ["5", "6"]] and emu.note("book", "Sheet1", 2, 2) == "keep me"
    props = requests.get(f"{emu.url}/v4/spreadsheets/book", timeout=5).json()["sheets"][0]["properties"]
    rows = props["gridProperties"]["rowCount"]
    assert delete("ROWS", 0, rows).json()["error"]["message"].endswith("You can't delete all the rows on the sheet.")
    assert "outside the grid" in delete("ROWS", 5, rows + 1).json()["error"]["message"]
    assert delete("LAYERS", 0, 1).status_code == 400
