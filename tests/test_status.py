"""`sheetsync status` data and exit codes on real demo, xlsx and csv layouts and a real store."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import openpyxl
import pytest

from sheetsync.cli import main
from sheetsync.dedupe.step import open_pairs
from sheetsync.engine import sync_once
from sheetsync.errors import SheetsyncError
from sheetsync.status import grace_for, layout_status, status_text
from sheetsync.store import Store


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("status") / "demo"
    assert main(["demo", "--dir", str(folder)]) == 0
    return folder


def test_status_after_the_demo_counts_problems_duplicates_and_the_snapshot(demo, capsys):
    capsys.readouterr()
    layout = demo / "layouts" / "customers.yaml"
    with Store(demo / "sheetsync.db") as store:
        finished = store.runs("customers", 1)[0]["finished"]
        pairs = len(open_pairs(store, "customers"))
    state = layout_status(layout, now=finished + 60)
    assert state["exit_code"] == 0 and state["last_run"]["outcome"] == "problems"
    assert state["next_due"] == finished + 3600 and state["overdue"] is False
    assert state["open_problems"]["type.email"] == 2 and state["duplicates"] == pairs >= 1 and state["conflicts"] == 0
    assert state["outbox"] == 0 and state["running"] is None
    assert state["last_snapshot"]["run_id"] == state["last_run"]["run_id"]
    text = status_text(state)
    assert "next due:" in text and f"duplicates: {pairs} open pair(s)" in text and "last snapshot: " in text
    assert "OVERDUE" not in text
    json.dumps(state)  # the --json form


def test_overdue_after_interval_plus_grace_exits_4(demo):
    layout = demo / "layouts" / "customers.yaml"
    due = layout_status(layout)["next_due"]
    assert grace_for(3600) == 1800 and grace_for(60) == 300
    assert layout_status(layout, now=due + 1799)["exit_code"] == 0
    late = layout_status(layout, now=due + 1801)
    assert late["overdue"] is True and late["exit_code"] == 4 and "OVERDUE" in status_text(late)
    assert layout_status(layout, now=due + 1801, grace=7200)["exit_code"] == 0


def test_a_running_layout_is_not_overdue(demo):
    layout = demo / "layouts" / "customers.yaml"
    due = layout_status(layout)["next_due"]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(20)"])
    try:
        with Store(demo / "sheetsync.db") as store:
            assert store.acquire_lease("customers", f"{socket.gethostname()}:{other.pid}:r", 1e9)
        state = layout_status(layout, now=due + 7200)
        assert state["running"]["holder"].endswith(":r") and state["overdue"] is False
        assert state["exit_code"] == 0 and "running now:" in status_text(state)
    finally:
        other.kill()
        other.wait()
        with Store(demo / "sheetsync.db") as store:
            store.release_lease("customers", f"{socket.gethostname()}:{other.pid}:r")


def _csv_layout(tmp_path, name="c", path="c.csv"):
    layout = tmp_path / f"{name}.yaml"
    layout.write_text(f"table: {name}\nsource: {{kind: csv, path: {path}}}\nkey: id\nschedule: {{every: 15m}}\n"
                      "columns:\n  id: {required: true}\n", encoding="utf-8")
    return layout


def test_never_synced_failed_and_broken_layouts(tmp_path):
    layout = _csv_layout(tmp_path)
    assert layout_status(layout)["exit_code"] == 3 and "never synced" in status_text(layout_status(layout))
    with pytest.raises(SheetsyncError):
        sync_once(layout)  # c.csv is missing
    state = layout_status(layout)
    assert state["exit_code"] == 4 and state["last_run"]["outcome"] == "failed"
    assert state["interval_seconds"] == 900 and "file not found" in status_text(state)
    broken = tmp_path / "b.yaml"
    broken.write_text("table: t\nsource: {kind: csv, path: x.csv}\ncolumns:\n  a: {tpye: string}\n")
    bad = layout_status(broken)
    assert bad["exit_code"] == 2 and f"{broken}:4: columns.a.tpye" in bad["message"]
    assert "layout is broken" in status_text(bad)


def test_a_partial_run_exits_3_and_shows_the_waiting_write_back(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append(["id", "phone"])
    wb.active.append(["A1", "138 0013 8000"])
    wb.save(tmp_path / "c.xlsx")
    (tmp_path / "~$c.xlsx").write_text("")
    layout = tmp_path / "c.yaml"
    layout.write_text("table: c\nsource: {kind: xlsx, path: c.xlsx}\nkey: id\ncolumns:\n  id: {}\n"
                      "  phone: {type: phone}\n", encoding="utf-8")
    assert sync_once(layout).outcome == "partial"
    state = layout_status(layout)
    assert state["exit_code"] == 3 and state["outbox"] >= 1
    assert "write-back waiting: " in status_text(state) and "lock file" in status_text(state)


def test_status_command_exit_code_is_the_worst_layout(tmp_path, capsys, monkeypatch):
    (tmp_path / "layouts").mkdir()
    good = _csv_layout(tmp_path / "layouts", "good", "../good.csv")
    (tmp_path / "good.csv").write_text("id\nA1\n", encoding="utf-8")
    sync_once(good)
    assert main(["status", "--layouts-dir", str(tmp_path / "layouts")]) == 0
    _csv_layout(tmp_path / "layouts", "gone", "../gone.csv")
    capsys.readouterr()
    assert main(["status", "--json", "--layouts-dir", str(tmp_path / "layouts")]) == 3  # gone never synced
    states = {s["layout"]: s for s in json.loads(capsys.readouterr().out)}
    assert states["good"]["exit_code"] == 0 and states["gone"]["exit_code"] == 3
