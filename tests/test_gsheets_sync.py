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


ORDERS = {
    "table": "orders", "key": "id",
    "columns": {"id": {"header": "ID"}, "amount": {"header": "Amount", "type": "decimal", "decimals": 2},
                "day": {"header": "Day", "type": "date"}, "at": {"header": "At", "type": "datetime"},
                "paid": {"header": "Paid", "type": "boolean"}, "phone": {"header": "Phone", "type": "phone"},
                "email": {"header": "Email", "type": "email"}},
}


def orders(tmp_path, emu):
    import datetime as dt
    emu.add_spreadsheet("orders", {"Orders": [
        ["ID", "Amount", "Day", "At", "Paid", "Phone", "Email"],
        ["O1", 880, dt.date(2024, 1, 5), dt.datetime(2024, 1, 5, 9, 15), True, "+86 138 0013 8000", "a@x.cn"],
        ["O2", 9999.999, "2024/1/7", "2024-01-07 13:30", "yes", "+86 139 0013 9000", "b@x.cn"],
        ["O3", 12.5, dt.date(2024, 1, 9), dt.datetime(2024, 1, 9, 18), False, "+86 137 0013 7000", "c@x.cn"]]})
    emu.set_cell("orders", "Orders", 2, 6, formula="=13800138000+0")  # computed, needs reformatting
    emu.set_cell("orders", "Orders", 3, 7, formula="=1+1")  # computed, not an email
    emu.set_cell("orders", "Orders", 4, 2, formula="=1/0")  # an error cell
    emu.set_cell("orders", "Orders", 3, 4, "2024-01-07 13:30", number_format={"type": "DATE", "pattern": "yyyy-mm-dd"})
    source = {"kind": "gsheets", "spreadsheet_id": "orders", "sheet": "Orders", "endpoint": emu.url}
    loaded = LoadedLayout(layout=Layout.model_validate({**ORDERS, "source": source}),
                          path=tmp_path / "orders.yaml", name="orders")
    conn = GSheetsConnector(spreadsheet_id="orders", sheet="Orders", endpoint=emu.url, sleep=lambda s: None)
    return loaded, Store(tmp_path / "s.db"), conn


def test_typed_values_dates_with_a_date_format_and_formulas_never_overwritten(tmp_path, emu):
    loaded, store, conn = orders(tmp_path, emu)
    res = sync_once(loaded, store=store, connector=conn)
    assert res.patches_deferred == 0
    # 880 left as typed; 9999.999 rounded into a number; dates and a date-time as serials with a date format
    assert emu.raw("orders", "Orders", 2, 2) == {"numberValue": 880} and emu.note("orders", "Orders", 2, 2) is None
    assert emu.raw("orders", "Orders", 3, 2) == {"numberValue": 10000}
    assert emu.raw("orders", "Orders", 3, 3) == {"numberValue": 45298}  # 2024-01-07
    assert emu.number_format("orders", "Orders", 3, 3)["type"] == "DATE"
    assert emu.raw("orders", "Orders", 3, 4) == {"numberValue": 45298 + 13.5 / 24}
    assert emu.number_format("orders", "Orders", 3, 4)["type"] == "DATE_TIME"
    assert emu.cell("orders", "Orders", 3, 4, "FORMATTED_VALUE") == "2024-01-07 13:30:00"
    assert emu.raw("orders", "Orders", 3, 5) == {"boolValue": True}
    # formula cells keep their formulas; each gets a mark whose note says to fix the inputs
    assert emu.raw("orders", "Orders", 2, 6) == {"formulaValue": "=13800138000+0"}
    assert emu.raw("orders", "Orders", 3, 7) == {"formulaValue": "=1+1"}
    assert emu.raw("orders", "Orders", 4, 2) == {"formulaValue": "=1/0"}
    for row, col in ((2, 6), (3, 7), (4, 2)):
        assert emu.fill("orders", "Orders", row, col) == loaded.layout.colours.invalid
    assert "computed by a formula" in emu.note("orders", "Orders", 2, 6)
    assert "#ERROR!" in emu.note("orders", "Orders", 4, 2)
    again = sync_once(loaded, store=store, connector=conn, full=True)
    assert again.patches_applied == 0 and again.corrected == 0


def test_a_mark_whose_note_a_person_edited_is_cleared_when_fixed(tmp_path, emu):
    loaded, store, conn = orders(tmp_path, emu)
    emu.set_cell("orders", "Orders", 4, 7, "c@@x")
    sync_once(loaded, store=store, connector=conn)
    ours = emu.note("orders", "Orders", 4, 7)
    assert ours.startswith("sheetsync: ") and emu.fill("orders", "Orders", 4, 7) == loaded.layout.colours.invalid
    emu.set_cell("orders", "Orders", 4, 7, "c@x.cn", note="Li: phoned, address fixed. " + ours)
    res = sync_once(loaded, store=store, connector=conn)
    assert res.patches_deferred == 0
    assert emu.fill("orders", "Orders", 4, 7) is None
    assert emu.note("orders", "Orders", 4, 7) == "Li: phoned, address fixed."
