"""Replay real recorded Google traffic (gspread's cassettes) against the emulator: same shapes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from sheetsync.testing.sheets_emulator import SheetsEmulator

CASSETTES = Path(__file__).resolve().parents[2] / "shared" / "gspread-cassettes"
FILES = sorted(CASSETTES.glob("*.json")) if CASSETTES.is_dir() else []
VOLATILE = {"sheetId", "createdTime", "modifiedTime"}  # random ids and clocks differ by nature

pytestmark = pytest.mark.skipif(not FILES, reason="../shared/gspread-cassettes not present")


def _shape_diff(got: Any, want: Any, path: str = "$") -> list[str]:
    """Differences in key sets, types, list lengths and (non-volatile) values, recursively."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: want object, got {type(got).__name__}"]
        if set(got) != set(want):
            return [f"{path}: keys {sorted(got)} != {sorted(want)}"]
        return [d for k in want for d in _shape_diff(got[k], want[k], f"{path}.{k}")
                if k not in VOLATILE or type(got[k]) is not type(want[k])]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: list {got!r} != {want!r}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in _shape_diff(g, w, f"{path}[{i}]")]
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        ok = isinstance(got, (int, float)) and not isinstance(got, bool) and abs(got - want) < 1e-6
        return [] if ok else [f"{path}: {got!r} != {want!r}"]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


def _map_ids(obj: Any, ids: dict[int, int]) -> Any:
    if isinstance(obj, dict):
        return {k: (ids.get(v, v) if k == "sheetId" else _map_ids(v, ids)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_ids(v, ids) for v in obj]
    return obj


def _replay(emu: SheetsEmulator, path: Path) -> tuple[int, list[str]]:
    """Replay every Sheets/Drive-get request of one cassette; returns (requests checked, diffs)."""
    ids: dict[int, int] = {}
    checked, diffs = 0, []
    for n, step in enumerate(json.loads(path.read_text())["interactions"]):
        req, resp = step["request"], step["response"]
        uri, method = req["uri"], req["method"]
        if "/drive/v3/files" in uri and method == "POST":  # creating the scratch file: seed it
            created = json.loads(resp["body"]["string"])
            emu.add_spreadsheet(created["id"], {"Sheet1": []}, title=created["name"])
            continue
        body = _map_ids(json.loads(req["body"]), ids) if req.get("body") else None
        url = uri.replace("https://sheets.googleapis.com", emu.url).replace(
            "https://www.googleapis.com", emu.url)
        got = requests.request(method, url, json=body, timeout=10)
        checked += 1
        where = f"{path.name}#{n} {method} {uri}"
        if got.status_code != resp["status"]["code"]:
            diffs.append(f"{where}: status {got.status_code} != {resp['status']['code']}")
            continue
        text = resp["body"]["string"]
        if not text:
            continue
        want, have = json.loads(text), got.json()
        for want_reply, got_reply in zip(want.get("replies", []), have.get("replies", [])):
            if "addSheet" in want_reply:
                ids[want_reply["addSheet"]["properties"]["sheetId"]] = \
                    got_reply["addSheet"]["properties"]["sheetId"]
        diffs += [f"{where}: {d}" for d in _shape_diff(have, want)]
    return checked, diffs


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_emulator_answers_like_recorded_google(path: Path) -> None:
    with SheetsEmulator() as emu:
        emu.private.add("1jIKzPs8LsiZZdLdeMEP-5ZIHw6RkjiOmj1LrJN706Yc")  # the recorded 403 sheet
        checked, diffs = _replay(emu, path)
    assert checked > 0
    assert diffs == []


def test_error_bodies_have_googles_shape() -> None:
    recorded = json.loads((CASSETTES / "ClientTest.test_access_non_existing_spreadsheet.json").read_text())
    want = json.loads(recorded["interactions"][3]["response"]["body"]["string"])
    with SheetsEmulator() as emu:
        got = requests.get(f"{emu.url}/v4/spreadsheets/test?includeGridData=false", timeout=5)
    assert got.status_code == 404
    assert got.json() == want
