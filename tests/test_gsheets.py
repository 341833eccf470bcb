"""GSheetsConnector through gspread over real HTTP against the emulator (nothing mocked)."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

import pytest

from sheetsync.connectors.gsheets import GSheetsConnector
from sheetsync.connectors.gsheets.auth import load_credentials
from sheetsync.errors import SourceError, SourceUnavailable
from sheetsync.model import Patch, ReportTab
from sheetsync.testing.sheets_emulator import SheetsEmulator

SID, TAB = "sheet-1", "Customers"
ROWS = [["id", "name", "phone"], ["C1", "Ann", "138 0013 8000"], ["C2", "Bob", "bob@@acme"],
        ["C3", "Cy", dt.date(2024, 3, 1)]]


class FakeClock:
    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def emu():
    with SheetsEmulator() as server:
        server.add_spreadsheet(SID, {TAB: [list(r) for r in ROWS]})
        yield server


def connector(emu: SheetsEmulator, clock: FakeClock | None = None, **kw) -> GSheetsConnector:
    clock = clock or FakeClock()
    return GSheetsConnector(SID, sheet=TAB, endpoint=emu.url, clock=clock, sleep=clock.sleep,
                            rng=lambda: 0.5, **kw)


def test_read_one_call_after_drive_check(emu: SheetsEmulator) -> None:
    c = connector(emu)
    assert c.unchanged_since(None) is False
    data = c.read()
    assert data.header == ("id", "name", "phone")
    assert [(r.number, r.values) for r in data.rows] == [
        (2, ("C1", "Ann", "138 0013 8000")), (3, ("C2", "Bob", "bob@@acme")),
        (4, ("C3", "Cy", dt.date(2024, 3, 1)))]
    assert c.reads_api_calls == 1 and data.meta["api_calls"] == 1
    assert data.meta["version"] == "1" and data.meta["last_modifying_user"] == "emulator@example.com"
    assert data.fingerprint == "drive:1"
    assert c.unchanged_since(data.fingerprint) is True
    emu.set_cell(SID, TAB, 2, 2, "Anne")
    assert c.unchanged_since(data.fingerprint) is False


def test_endpoint_from_environment(emu: SheetsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEETSYNC_SHEETS_ENDPOINT", emu.url)
    data = GSheetsConnector(url=f"https://docs.google.com/spreadsheets/d/{SID}/edit", sheet=TAB).read()
    c = GSheetsConnector(url=f"https://docs.google.com/spreadsheets/d/{SID}/edit", sheet=TAB)
    data = c.read()
    # one Sheets request, plus the Drive metadata request counted apart (its own quota)
    assert len(data.rows) == 3 and data.meta["api_calls"] == 1 and c.drive_calls == 1


def test_round_trip_value_fill_note_and_formula_stays_text(emu: SheetsEmulator) -> None:
    c = connector(emu)
    c.read()
    patches = [Patch(2, 3, "corrected", write=True, value="=HYPERLINK(\"x\")", fill="C6EFCE",
                     note="changed from `138 0013 8000`", expected="138 0013 8000", anchor=(1, "C1")),
               Patch(3, 3, "invalid", fill="FFC7CE", note="not an email", expected="bob@@acme")]
    applied = c.apply(patches)
    assert applied.applied == tuple(patches) and applied.deferred == ()
    assert applied.api_calls == 2 and applied.prior_fills == {(2, 3): None, (3, 3): None}
    assert emu.raw(SID, TAB, 2, 3) == {"stringValue": "=HYPERLINK(\"x\")"}
    assert emu.fill(SID, TAB, 2, 3) == "C6EFCE" and emu.fill(SID, TAB, 3, 3) == "FFC7CE"
    assert emu.note(SID, TAB, 3, 3) == "sheetsync: not an email"
    marks = connector(emu).read().marks
    assert set(marks) == {(2, 3), (3, 3)}


def test_notes_merged_with_a_persons_note_and_stripped_on_clear(emu: SheetsEmulator) -> None:
    emu.set_cell(SID, TAB, 3, 3, note="call him first", fill="FFFF00", keep=True)
    c = connector(emu)
    first = c.apply([Patch(3, 3, "invalid", fill="FFC7CE", note="bad email", expected="bob@@acme")])
    assert first.prior_fills == {(3, 3): "FFFF00"}
    assert emu.note(SID, TAB, 3, 3) == "call him first\n---\nsheetsync: bad email"
    c.apply([Patch(3, 3, "clear", clear=True, restore_fill="FFFF00", expected="bob@@acme")])
    assert emu.note(SID, TAB, 3, 3) == "call him first"
    assert emu.fill(SID, TAB, 3, 3) == "FFFF00"
    c.apply([Patch(2, 3, "invalid", fill="FFC7CE", note="x"),
             Patch(2, 3, "clear", clear=True)])
    assert emu.note(SID, TAB, 2, 3) is None and emu.fill(SID, TAB, 2, 3) is None


def test_500_patches_cost_one_reread_and_one_batch(emu: SheetsEmulator) -> None:
    rows = [["id", "name", "phone"]] + [[f"C{i}", f"n{i}", f"p{i}"] for i in range(1, 1001)]
    emu.add_spreadsheet(SID, {TAB: rows})
    c = connector(emu)
    c.unchanged_since(None)
    data = c.read()
    assert c.reads_api_calls == 1 and len(data.rows) == 1000
    patches = [Patch(r, 3, "corrected", write=True, value=f"+86 {r}", fill="C6EFCE", note="fixed",
                     expected=f"p{r - 1}", anchor=(1, f"C{r - 1}")) for r in range(2, 1002, 2)]
    emu.reset_calls()
    applied = c.apply(patches)
    assert len(patches) == 500 and len(applied.applied) == 500
    assert applied.api_calls == 2 and emu.total_calls == 2
    assert emu.cell(SID, TAB, 1000, 3) == "+86 1000"


def test_report_tab_created_then_rewritten_in_place(emu: SheetsEmulator) -> None:
    c = connector(emu)
    c.apply([], report=ReportTab("sheetsync", (("open problems",), ("cell", "problem"), ("C3", "bad"))))
    assert emu.values(SID, "sheetsync") == [["open problems"], ["cell", "problem"], ["C3", "bad"]]
    emu.reset_calls()
    applied = c.apply([Patch(3, 3, "invalid", fill="FFC7CE", note="bad")],
                      report=ReportTab("sheetsync", (("open problems",),)))
    assert applied.api_calls == 2
    assert emu.values(SID, "sheetsync") == [["open problems"]]


def test_person_edit_between_read_and_write_is_deferred(emu: SheetsEmulator) -> None:
    c = connector(emu)
    emu.edit_after_next_read(SID, TAB, 2, 3, "139 9999 0000")
    data = c.read()
    assert data.rows[0].values[2] == "138 0013 8000"
    mine = Patch(2, 3, "corrected", write=True, value="+86 138 0013 8000", expected="138 0013 8000")
    other = Patch(3, 3, "invalid", fill="FFC7CE", note="bad", expected="bob@@acme")
    applied = c.apply([mine, other])
    assert applied.deferred == (mine,) and applied.applied == (other,)
    assert emu.cell(SID, TAB, 2, 3) == "139 9999 0000"


def test_anchor_mismatch_defers(emu: SheetsEmulator) -> None:
    applied = connector(emu).apply([Patch(2, 3, "pushed", write=True, value="x", anchor=(1, "C9"))])
    assert applied.applied == () and len(applied.deferred) == 1
    assert emu.cell(SID, TAB, 2, 3) == "138 0013 8000"


def test_429_retry_after_is_honoured(emu: SheetsEmulator) -> None:
    clock = FakeClock()
    emu.inject("429", retry_after="7", match="spreadsheets.get")
    data = connector(emu, clock).read()
    assert len(data.rows) == 3 and clock.sleeps == [7.0]
    assert emu.calls["spreadsheets.get"] == 2


def test_503_html_body_is_retried(emu: SheetsEmulator) -> None:
    clock = FakeClock()
    emu.inject("503", count=2)
    c = connector(emu, clock)
    applied = c.apply([Patch(3, 3, "invalid", fill="FFC7CE", note="bad")])
    assert len(applied.applied) == 1 and len(clock.sleeps) == 2
    assert applied.api_calls == 4


def test_timeout_is_retried(emu: SheetsEmulator) -> None:
    emu.inject("delay", seconds=1.0, match="spreadsheets.get")
    c = connector(emu, timeout=(2.0, 0.3))
    assert len(c.read().rows) == 3
    assert emu.calls["spreadsheets.get"] == 2


def test_gives_up_after_deadline_with_nothing_applied(emu: SheetsEmulator) -> None:
    clock = FakeClock()
    emu.inject("503", count=50, match="getByDataFilter")
    c = connector(emu, clock, deadline_s=20)
    with pytest.raises(SourceUnavailable) as info:
        c.apply([Patch(3, 3, "invalid", fill="FFC7CE", note="bad")])
    assert info.value.applied == () and info.value.exit_code == 3
    assert clock.now <= 20 and emu.fill(SID, TAB, 3, 3) is None


@pytest.mark.parametrize("kind", ["500", "reset"])
def test_write_that_landed_despite_an_error_is_not_resent(emu: SheetsEmulator, kind: str) -> None:
    emu.inject(kind, match="batchUpdate", land=True)
    patch = Patch(2, 3, "corrected", write=True, value="+86 138", expected="138 0013 8000")
    applied = connector(emu).apply([patch])
    assert applied.applied == (patch,)
    assert emu.calls["spreadsheets.batchUpdate"] == 1
    assert emu.calls["spreadsheets.getByDataFilter"] == 2  # re-read, then the landing check


def test_write_that_did_not_land_is_resent_once(emu: SheetsEmulator) -> None:
    emu.inject("500", match="batchUpdate")
    patch = Patch(2, 3, "corrected", write=True, value="+86 138", expected="138 0013 8000")
    applied = connector(emu).apply([patch])
    assert applied.applied == (patch,) and emu.calls["spreadsheets.batchUpdate"] == 2
    assert emu.cell(SID, TAB, 2, 3) == "+86 138"


def test_unknown_and_private_sheets_are_terminal_with_a_hint(emu: SheetsEmulator) -> None:
    with pytest.raises(SourceError) as missing:
        GSheetsConnector("nope", sheet=TAB, endpoint=emu.url).read()
    assert "not found" in str(missing.value) and "share the sheet" in missing.value.hint
    emu.private.add(SID)
    emu.books[SID].title = "x"
    with pytest.raises(SourceError):
        GSheetsConnector(SID, sheet=TAB, endpoint=emu.url).apply([Patch(2, 2, "invalid", note="x")])
    with pytest.raises(SourceError) as tab:
        emu.private.clear()
        GSheetsConnector(SID, sheet="No such tab", endpoint=emu.url).read()
    assert "Unable to parse range" in str(tab.value)


KEY_TEXT = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7SECRETKEYMATERIAL"


def _key_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "p", "private_key_id": "abc",
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{KEY_TEXT}\n-----END PRIVATE KEY-----\n",
        "client_email": "sync@p.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token"}))
    os.chmod(path, mode)
    return path


def test_world_readable_credentials_are_refused(tmp_path: Path) -> None:
    path = _key_file(tmp_path, 0o644)
    with pytest.raises(SourceError) as info:
        GSheetsConnector(SID, sheet=TAB, credentials=path).read()
    assert f"chmod 600 {path}" in info.value.hint


def test_key_material_never_in_errors_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = _key_file(tmp_path, 0o600)
    with pytest.raises(SourceError) as info:
        load_credentials(path)
    text = str(info.value) + repr(info.value) + info.value.hint + caplog.text
    assert "SECRETKEYMATERIAL" not in text and "PRIVATE KEY" not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_valid_service_account_loads_with_the_two_scopes(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    path = _key_file(tmp_path, 0o600)
    info = json.loads(path.read_text())
    path.write_text(json.dumps({**info, "private_key": pem}))
    creds, email = load_credentials(path)
    assert email == "sync@p.iam.gserviceaccount.com"
    assert set(creds.scopes) == {"https://www.googleapis.com/auth/spreadsheets",
                                 "https://www.googleapis.com/auth/drive.metadata.readonly"}


def test_without_drive_a_read_is_one_request_and_fingerprints_content(emu: SheetsEmulator) -> None:
    c = connector(emu, drive=False)
    data = c.read()
    assert data.meta["api_calls"] == 1 and data.meta["version"] is None
    assert data.fingerprint.startswith("sha1:") and c.unchanged_since(data.fingerprint) is False
    assert emu.total_calls == 1


def test_a_new_report_tab_is_created_in_the_write_batch_itself(emu: SheetsEmulator) -> None:
    c = connector(emu)
    c.read()
    emu.reset_calls()
    applied = c.apply([], report=ReportTab("sheetsync", (("title",), ("a", "b")), exists=False))
    assert applied.api_calls == 1 and emu.values(SID, "sheetsync") == [["title"], ["a", "b"]]


def test_a_report_tab_a_person_already_made_is_reused(emu: SheetsEmulator) -> None:
    emu.add_spreadsheet(SID, {TAB: [["id"], ["C1"]], "sheetsync": [["mine"]]})
    c = connector(emu)
    c.read()
    c.apply([], report=ReportTab("sheetsync", (("title",),), exists=False))
    assert emu.values(SID, "sheetsync")[0] == ["title"]


def test_a_write_never_lands_on_a_formula_and_a_clear_keeps_a_persons_colour(emu: SheetsEmulator) -> None:
    """The connector's own guard, for a patch planned before the cell became a formula (an
    outbox replayed after a person typed one): the mark lands, the formula stays."""
    emu.set_cell(SID, TAB, 2, 2, formula="=1+1")
    c = connector(emu)
    assert c.read().formulas == frozenset({(2, 2)})
    applied = c.apply([Patch(2, 2, "protected", write=True, value="Ann", fill="E4D7F5", note="reverted"),
                       Patch(3, 3, "invalid", fill="FFC7CE", note="bad email")])
    assert len(applied.applied) == 2
    assert emu.raw(SID, TAB, 2, 2) == {"formulaValue": "=1+1"} and emu.fill(SID, TAB, 2, 2) == "E4D7F5"
    emu.set_cell(SID, TAB, 3, 3, fill="00FF00", keep=True)  # a person recolours the marked cell
    c.apply([Patch(3, 3, "clear", clear=True, fill="FFC7CE", note="sheetsync: bad email")])
    assert emu.fill(SID, TAB, 3, 3) == "00FF00" and emu.note(SID, TAB, 3, 3) is None


def test_rows_are_removed_after_the_cells_and_a_moved_or_edited_row_stays(emu: SheetsEmulator) -> None:
    from sheetsync.model import removal
    c = connector(emu)
    data = c.read()
    emu.set_cell(SID, TAB, 4, 2, "Cy", note="sheetsync: old mark", keep=True)
    gone = removal(3, data.rows[1].values, (1, "C2"))
    fix = Patch(4, 2, "corrected", write=True, value="CY", expected="Cy", anchor=(1, "C3"))
    applied = c.apply([gone, fix])
    assert applied.applied == (fix, gone) and emu.calls["spreadsheets.batchUpdate"] == 2
    assert emu.values(SID, TAB)[1:] == [["C1", "Ann", "138 0013 8000"], ["C3", "CY", "2024-03-01"]]
    assert emu.note(SID, TAB, 3, 2) == "sheetsync: old mark"  # the note moved up with its row
    assert c.apply([gone]).deferred == (gone,)  # replayed: C3 sits in row 3 now, it stays
    emu.set_cell(SID, TAB, 3, 2, "Cyrus")
    assert c.apply([removal(3, ("C3", "CY", dt.date(2024, 3, 1)), (1, "C3"))]).applied == ()
    assert len(emu.values(SID, TAB)) == 3


@pytest.mark.parametrize("land", [True, False])
def test_a_removal_whose_answer_was_lost_is_sent_again_only_if_it_did_not_land(emu: SheetsEmulator,
                                                                               land: bool) -> None:
    from sheetsync.model import removal
    c = connector(emu)
    gone = removal(3, c.read().rows[1].values, (1, "C2"))
    emu.inject("500", match="batchUpdate", land=land)
    if land:  # landed: the row that moved up must not go too; the next run re-reads
        with pytest.raises(SourceUnavailable):
            c.apply([gone])
    else:
        assert c.apply([gone]).applied == (gone,)
    assert [r[0] for r in emu.values(SID, TAB)] == ["id", "C1", "C3"]
