"""The whole issue-2 scenario against the Sheets emulator, through gspread over real HTTP."""
from __future__ import annotations

from importlib import resources

import pytest
import yaml

from sheetsync.connectors.gsheets import GSheetsConnector
from sheetsync.engine import sync_once
from sheetsync.layout import Layout, LoadedLayout
from sheetsync.store import Store
from sheetsync.testing.sheets_emulator import SheetsEmulator

SID, TAB = "customers", "Customers"
EMAIL, PHONE, LIMIT = 4, 3, 8


@pytest.fixture()
def emu(tmp_path):
    demo = resources.files("sheetsync") / "data" / "demo"
    book = tmp_path / "customers.xlsx"
    book.write_bytes((demo / "customers.xlsx").read_bytes())
    with SheetsEmulator() as server:
        server.load(book)
        yield server


def setup(tmp_path, emu):
    demo = resources.files("sheetsync") / "data" / "demo"
    data = yaml.safe_load((demo / "customers.yaml").read_text(encoding="utf-8"))
    data["source"] = {"kind": "gsheets", "spreadsheet_id": SID, "sheet": TAB, "header_row": 2, "endpoint": emu.url}
    data.pop("store")
    loaded = LoadedLayout(layout=Layout.model_validate(data), path=tmp_path / "customers.yaml", name="customers")
    return loaded, Store(tmp_path / "s.db")


def connector(emu, **kw):
    return GSheetsConnector(spreadsheet_id=SID, sheet=TAB, header_row=2, endpoint=emu.url,
                            sleep=lambda s: None, **kw)


def run(loaded, store, emu, **kw):
    return sync_once(loaded, store=store, connector=connector(emu, **kw))


def test_demo_scenario_through_gspread_in_three_sheets_calls(tmp_path, emu):
    loaded, store = setup(tmp_path, emu)
    res = run(loaded, store, emu)
    assert (res.inserted, res.held_back, res.outcome) == (19, 2, "problems")
    # read, re-read, one batchUpdate (which also creates the report tab)
    assert res.api_calls == 3 and res.patches_applied > 30
    assert emu.cell(SID, TAB, 3, PHONE) == "+86 138 0013 8000"
    assert emu.fill(SID, TAB, 3, PHONE) == loaded.layout.colours.corrected
    assert "138 0013 8000" in emu.note(SID, TAB, 3, PHONE)
    assert emu.fill(SID, TAB, 6, EMAIL) == loaded.layout.colours.invalid
    assert emu.raw(SID, TAB, 18, 9) == {"stringValue": "=SUM(1,2) stays text"}
    report = emu.values(SID, "sheetsync")
    assert any("open problem" in str(c) for r in report for c in r)
    assert ["D6"] == [r[0] for r in report if r and r[0] == "D6"]
    again = run(loaded, store, emu)
    assert (again.patches_applied, again.updated, again.unchanged) == (0, 0, 21)
    third = run(loaded, store, emu)
    assert third.api_calls == 0 and third.drive_calls == 1 and third.unchanged == 21
    emu.set_cell(SID, TAB, 3, EMAIL, " NEW@Example.cn")  # a change that needs a correction
    fourth = run(loaded, store, emu)
    assert fourth.patches_applied >= 1 and fourth.api_calls == 3


def test_fixing_a_cell_in_the_sheet_clears_sheetsyncs_mark_only(tmp_path, emu):
    loaded, store = setup(tmp_path, emu)
    emu.set_cell(SID, TAB, 6, EMAIL, keep=True, note="ask Bob")  # a person's own note
    run(loaded, store, emu)
    assert "ask Bob" in emu.note(SID, TAB, 6, EMAIL) and "not a valid" in emu.note(SID, TAB, 6, EMAIL)
    emu.set_cell(SID, TAB, 6, EMAIL, "bob@acme.com")
    res = run(loaded, store, emu)
    assert res.updated == 1
    assert emu.note(SID, TAB, 6, EMAIL) == "ask Bob" and emu.fill(SID, TAB, 6, EMAIL) is None
    assert store.records("customers")["C00004"]["email"] == "bob@acme.com"


def test_protected_edit_is_reverted_in_the_google_sheet(tmp_path, emu):
    loaded, store = setup(tmp_path, emu)
    run(loaded, store, emu)
    emu.set_cell(SID, TAB, 3, LIMIT, 999999)
    res = run(loaded, store, emu)
    assert res.protected == 1 and emu.cell(SID, TAB, 3, LIMIT) == 50000
    assert "999999" in emu.note(SID, TAB, 3, LIMIT)


def test_a_person_editing_between_read_and_write_keeps_their_edit(tmp_path, emu):
    loaded, store = setup(tmp_path, emu)
    emu.edit_after_next_read(SID, TAB, 3, PHONE, "+86 150 0015 0000")
    res = run(loaded, store, emu)
    assert res.patches_deferred >= 1 and emu.cell(SID, TAB, 3, PHONE) == "+86 150 0015 0000"
    run(loaded, store, emu)
    assert store.records("customers")["C00001"]["phone"] == "+86 150 0015 0000"


@pytest.mark.parametrize("fault", [{"kind": "429", "retry_after": "2"}, {"kind": "503"}, {"kind": "500"},
                                   {"kind": "reset", "match": "batchUpdate", "land": True},
                                   {"kind": "delay", "seconds": 0.2}])
def test_transient_faults_are_retried_without_loss_or_duplicates(tmp_path, emu, fault):
    loaded, store = setup(tmp_path, emu)
    emu.inject(**fault, count=2)
    res = run(loaded, store, emu, timeout=(0.1, 0.15) if fault["kind"] == "delay" else (5, 30))
    assert res.outcome in ("problems", "partial")
    final = run(loaded, store, emu)
    assert final.outcome == "problems" and store.outbox("customers") == []
    recs = store.records("customers")
    assert len(recs) == 19 and recs["C00001"]["phone"] == "+86 138 0013 8000"
    assert emu.cell(SID, TAB, 3, PHONE) == "+86 138 0013 8000"
    assert sum(1 for h in store.history("customers", "C00001") if h["action"] == "insert") == len(
        [f for f, v in recs["C00001"].items() if not f.startswith("_") and v is not None])


def test_giving_up_ends_partial_with_the_outbox_kept_then_replays(tmp_path, emu):
    loaded, store = setup(tmp_path, emu)
    emu.inject("503", count=50, match="batchUpdate")
    res = run(loaded, store, emu, max_tries=2)
    assert res.outcome == "partial" and len(store.outbox("customers")) > 0
    assert emu.cell(SID, TAB, 3, PHONE) == "138 0013 8000"
    emu.faults.clear() if hasattr(emu.faults, "clear") else None
    res = run(loaded, store, emu)
    assert res.replayed > 0 and store.outbox("customers") == []
    assert emu.cell(SID, TAB, 3, PHONE) == "+86 138 0013 8000"
