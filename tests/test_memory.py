"""The in-memory connector: its sheet semantics and every failure knob."""
from __future__ import annotations

import json

import pytest

from sheetsync.connectors import Connector, open_connector
from sheetsync.connectors.memory import MemoryBook, MemoryConnector
from sheetsync.errors import SourceBusy, SourceChanged, SourceError, SourceUnavailable
from sheetsync.model import Patch, ReportTab, removal


def book() -> MemoryBook:
    return MemoryBook(header=["name", "phone"], rows=[["Ann", 13800138000.0], [], ["Bob", "2"]])


def test_read_skips_blank_rows_and_keeps_row_numbers():
    b = book()
    b.notes[(2, 1)] = "mine"
    b.notes[(4, 2)] = "sheetsync: stale"
    data = MemoryConnector(b).read()
    assert data.header == ("name", "phone")
    assert [(r.number, r.values) for r in data.rows] == [(2, ("Ann", 13800138000.0)), (4, ("Bob", "2"))]
    assert data.marks == {(4, 2): "sheetsync: stale"} and data.fingerprint == "v1"
    assert b.reads == 1 and isinstance(MemoryConnector(b), Connector)


def test_registry_by_name_and_open_connector():
    b = book().register("customers")
    try:
        assert MemoryConnector(name="customers").book is b
        assert open_connector("memory", book=MemoryBook.lookup("customers")).book is b
        assert open_connector("memory", name="customers").read().rows[0].values[0] == "Ann"
    finally:
        MemoryBook.unregister("customers")
    with pytest.raises(SourceError):
        MemoryConnector(name="customers")


def test_apply_writes_marks_clears_and_reports():
    b = book()
    b.fills[(2, 2)] = "00FF00"
    b.notes[(2, 2)] = "call after 6pm"
    conn = MemoryConnector(b)
    result = conn.apply([Patch(2, 2, "corrected", write=True, value="+8613800138000",
                               expected="13800138000", fill="C6EFCE", note="normalised"),
                         Patch(4, 2, "invalid", fill="FFC7CE", note="bad phone")],
                        report=ReportTab("sheetsync", (("title",),)), expected="v1")
    assert len(result.applied) == 2 and result.prior_fills == {(2, 2): "00FF00", (4, 2): None}
    assert b.get(2, 2) == "+8613800138000" and b.reports["sheetsync"] == (("title",),)
    assert b.notes[(2, 2)] == "call after 6pm\n---\nsheetsync: normalised"
    b.fills[(4, 2)] = "123456"  # a person recolours the invalid cell
    conn.apply([Patch(2, 2, "clear", clear=True, restore_fill="00FF00"),
                Patch(4, 2, "clear", clear=True, restore_fill=None)])
    assert b.fills == {(2, 2): "00FF00", (4, 2): "123456"}
    assert b.notes == {(2, 2): "call after 6pm"} and b.applies == 2


def test_edit_before_apply_defers_the_edited_cell():
    b = book()
    b.edit_before_apply = {(2, 1): "Anna"}
    result = MemoryConnector(b).apply([Patch(2, 1, "corrected", write=True, value="ANN", expected="Ann"),
                                       Patch(4, 2, "corrected", write=True, value="3", anchor=(1, "Bob"))])
    assert [p.row for p in result.deferred] == [2] and [p.row for p in result.applied] == [4]
    assert b.get(2, 1) == "Anna" and b.get(4, 2) == "3" and b.edit_before_apply is None


def test_crash_after_reports_what_landed_then_resets():
    b = book()
    b.crash_after = 1
    patches = [Patch(2, 1, "corrected", write=True, value="A"), Patch(4, 1, "corrected", write=True, value="B")]
    with pytest.raises(SourceUnavailable) as info:
        MemoryConnector(b).apply(patches)
    assert info.value.applied == (patches[0],)
    assert b.get(2, 1) == "A" and b.get(4, 1) == "Bob" and b.crash_after is None
    b.crash_after = 5  # more than there are: crashes after all of them, before answering
    with pytest.raises(SourceUnavailable) as info:
        MemoryConnector(b).apply(patches[1:])
    assert info.value.applied == (patches[1],) and b.get(4, 1) == "B"
    assert MemoryConnector(b).apply(patches).applied == tuple(patches)


def test_busy_changed_and_unavailable_knobs():
    b = book()
    conn = MemoryConnector(b)
    b.busy = True
    with pytest.raises(SourceBusy):
        conn.read()
    with pytest.raises(SourceBusy):
        conn.apply([])
    b.busy, b.changed = False, True
    with pytest.raises(SourceChanged):
        conn.apply([])
    b.changed, b.unavailable_reads, b.unavailable_applies = False, 2, 1
    for _ in range(2):
        with pytest.raises(SourceUnavailable):
            conn.read()
    assert conn.read().header == ("name", "phone")
    with pytest.raises(SourceUnavailable):
        conn.apply([Patch(2, 1, "corrected", write=True, value="x")])
    assert b.get(2, 1) == "Ann" and b.reads == 4 and b.applies == 3


def test_snapshot_is_canonical_and_version_moves_on_change():
    b = book()
    conn = MemoryConnector(b)
    first = conn.snapshot()
    assert first == MemoryConnector(book()).snapshot()
    assert json.loads(first)["rows"][0] == ["Ann", "13800138000"]
    conn.apply([Patch(2, 1, "invalid", fill="FFC7CE", note="x")])
    assert conn.snapshot() != first and conn.read().fingerprint == "v2"
    assert json.loads(conn.snapshot())["fills"] == {"2,1": "FFC7CE"}


def test_patch_on_header_or_title_row_is_deferred():
    b = MemoryBook(header=["a"], rows=[["1"]], header_row=2)
    data = MemoryConnector(b).read()
    assert data.header_row == 2 and data.rows[0].number == 3
    result = MemoryConnector(b).apply([Patch(2, 1, "corrected", write=True, value="x")])
    assert result.deferred and b.header == ["a"]


def test_typed_writes_formula_cells_and_a_clear_that_keeps_a_persons_note_text():
    import datetime as dt
    b = MemoryBook(header=["name", "day", "amount"], rows=[["Ann", "x", 1.0], ["Bob", "y", 2.0]])
    b.formulas.add((3, 2))
    conn = MemoryConnector(b)
    assert conn.read().formulas == frozenset({(3, 2)})
    conn.apply([Patch(2, 2, "corrected", write=True, value="2024-01-06", value_type="date"),
                Patch(2, 3, "corrected", write=True, value="10000.00", value_type="number"),
                Patch(3, 2, "invalid", write=True, value="2024-01-07", value_type="date", fill="FFC7CE",
                      note="sheetsync: computed")])
    assert b.rows[0][1:] == [dt.date(2024, 1, 6), 10000] and b.rows[1][1] == "y"  # the formula's cell kept
    assert b.fills[(3, 2)] == "FFC7CE"
    b.notes[(3, 2)] = "Li: checking.\nsheetsync: computed"  # a person edits the note
    conn.apply([Patch(3, 2, "clear", clear=True, fill="FFC7CE", note="sheetsync: computed")])
    assert (3, 2) not in b.fills and b.notes[(3, 2)] == "Li: checking."


def test_remove_patches_go_last_bottom_up_and_refuse_a_changed_or_moved_row():
    b = MemoryBook(header=["id", "name"], rows=[["C1", "Ann"], ["C2", "Bob"], ["C3", "Cy"], ["C4", "Dee"]])
    b.notes[(5, 2)] = "sheetsync: bad"
    b.fills[(3, 2)] = "FFC7CE"
    gone = [removal(3, ("C2", "Bob"), (1, "C2")), removal(4, ("C3", "Cy"), (1, "C3"))]
    # the cell patch for row 5 was computed on the read: it must land on C4 before rows move
    result = MemoryConnector(b).apply([*gone, Patch(5, 2, "corrected", write=True, value="DEE", expected="Dee")])
    assert [r[0] for r in b.rows] == ["C1", "C4"] and b.get(3, 2) == "DEE"
    assert [p.row for p in result.applied] == [5, 4, 3]  # the cells, then removals bottom-up
    assert b.notes == {(3, 2): "sheetsync: bad"} and b.fills == {}  # marks moved with their rows
    again = MemoryConnector(b).apply(gone)  # a replay: C4 now sits in row 3, so nothing goes
    assert again.applied == () and len(again.deferred) == 2 and len(b.rows) == 2
    b.set(3, 2, "Dee!")  # a person edits the row after the read
    assert MemoryConnector(b).apply([removal(3, ("C4", "DEE"), (1, "C4"))]).applied == ()
