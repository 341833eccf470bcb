"""The report tab summary on real syncs of the demo: stable across no-op runs, updated on change."""
from __future__ import annotations

import openpyxl

from sheetsync.demo import install_demo
from sheetsync.engine import sync_once
from sheetsync.layout_load import load_layout
from sheetsync.model import RunResult
from sheetsync.report import (collect_report, last_change, quality_stats, report_hash, report_tab, reports_text,
                              summary_rows, tab_problem_rows)
from sheetsync.store import Store


def demo(tmp_path):
    layout = install_demo(tmp_path / "demo")
    return layout, tmp_path / "demo" / "sheetsync.db", tmp_path / "demo" / "customers.xlsx"


def tab_rows(book_path):
    ws = openpyxl.load_workbook(book_path)["sheetsync"]
    return [tuple("" if c is None else str(c) for c in row) for row in ws.iter_rows(values_only=True)]


def test_report_tab_opens_with_the_summary_then_the_problems(tmp_path):
    layout, db, book = demo(tmp_path)
    first = sync_once(layout)
    rows = tab_rows(book)
    assert "open problem" in rows[0][0]
    labels = [r[0] for r in rows[1:5]]
    assert labels == ["Last change", "Status", "Rows in the store", "Open problems by kind"]
    assert f"{first.inserted} added, 0 updated, 0 deleted, {first.corrected} corrected" in rows[1][1]
    with Store(db) as store:
        problems = store.problems("customers")
        started = next(r["started"] for r in store.runs("customers") if r["run_id"] == first.run_id)
    import time
    assert rows[1][1].startswith(time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)))
    assert f"{len(problems)} open problem(s)" in rows[2][1]
    cells = [r[0] for r in rows if r and r[0][:1].isalpha() and r[0][1:].isdigit()]
    assert "D6" in cells  # bob@@acme.com


def test_no_op_runs_do_not_rewrite_the_tab_and_a_change_does(tmp_path):
    layout, db, book = demo(tmp_path)
    sync_once(layout)
    before = book.read_bytes()
    for full in (False, True):  # unchanged source, then a forced full compare: both no-ops
        res = sync_once(layout, full=full)
        assert (res.inserted, res.updated, res.patches_applied) == (0, 0, 0)
        assert book.read_bytes() == before
    wb = openpyxl.load_workbook(book)
    wb["Customers"].cell(6, 4).value = "bob@acme.com"
    wb.save(book)
    res = sync_once(layout)
    assert res.updated == 1
    rows = tab_rows(book)
    assert "0 added, 1 updated" in rows[1][1]
    assert "D6" not in [r[0] for r in rows]


def test_summary_skips_no_op_runs_and_hash_is_stable(tmp_path):
    layout, db, _ = demo(tmp_path)
    first = sync_once(layout)
    sync_once(layout, full=True)
    loaded = load_layout(layout)
    with Store(db) as store:
        when, counts = last_change(store, "customers", RunResult("customers", "not-a-run"))
        assert counts["run_id"] == first.run_id and when is not None
        problems = store.problems("customers")
        noop = RunResult("customers", "r2", unchanged=first.rows_read)
        tab = report_tab(loaded, problems, noop, store)
        assert tab is None  # equal to what the engine wrote: no write at all
        store.set_meta("customers", "report_hash", None)
        tab = report_tab(loaded, problems, noop, store)
        again = report_tab(loaded, problems, RunResult("customers", "r3"), store)
        assert report_hash(tab) == report_hash(again)
        assert len(tab_problem_rows(tab)) == len(problems)
        stats = quality_stats(store, "customers")
        assert stats["rows"] == first.rows_read and 0 < stats["rows_with_problems"] <= stats["open_problems"] == len(problems)


def test_summary_in_chinese(tmp_path):
    layout, db, _ = demo(tmp_path)
    layout.write_text(layout.read_text(encoding="utf-8").replace("language: en", "language: zh"), encoding="utf-8")
    first = sync_once(layout)
    with Store(db) as store:
        rows = summary_rows(store, "customers", "zh", store.problems("customers"))
    assert rows[0][0] == "最近一次变更" and f"新增 {first.inserted}，" in rows[0][1]
    assert "邮箱无效" in rows[3][1]


def test_report_text_and_a_never_synced_layout(tmp_path):
    layout, _, _ = demo(tmp_path)
    rep = collect_report(layout)
    assert rep.message == "never synced" and rep.runs == ()
    sync_once(layout)
    sync_once(layout)
    rep = collect_report(layout)
    assert [r["outcome"] for r in rep.runs] == ["problems", "problems"]
    assert rep.runs[0]["started"] <= rep.runs[1]["started"]  # oldest first
    text = reports_text([rep])
    assert "customers (table customers): last run problems" in text and "type.email" in text
    assert f"open problems: {len(rep.problems)}" in text
