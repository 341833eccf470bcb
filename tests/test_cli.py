"""The command line as cron and people use it: exit codes, JSON, the demo and its no-op resync."""
from __future__ import annotations

import json

from sheetsync.cli import main


def test_demo_then_resync_changes_nothing(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "demo"
    assert main(["demo", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Where to look" in out and "customers.xlsx" in out
    monkeypatch.chdir(folder)
    code = main(["sync", "--json", "customers"])
    run = json.loads(capsys.readouterr().out.splitlines()[0])
    assert code == 1 and run["outcome"] == "problems"  # the demo's open problems remain
    assert (run["inserted"], run["updated"], run["patches_applied"], run["unchanged"]) == (0, 0, 0, 21)
    assert main(["sync", "--json", "--full", "customers"]) == 1  # every row compared: still nothing to do
    full = json.loads(capsys.readouterr().out.splitlines()[0])
    assert (full["rows_read"], full["inserted"], full["updated"], full["patches_applied"]) == (21, 0, 0, 0)
    for key in ("layout", "run_id", "outcome", "rows_read", "inserted", "updated", "unchanged", "deleted",
                "corrected", "invalid", "duplicates", "conflicts", "patches_applied", "patches_deferred",
                "api_calls", "seconds"):
        assert key in run


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["demo", "--dir", str(tmp_path)]) == 2
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    assert "not a sheetsync demo folder" in capsys.readouterr().err


def test_status_and_history_after_the_demo(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "demo"
    main(["demo", "--dir", str(folder)])
    capsys.readouterr()
    monkeypatch.chdir(folder)
    assert main(["status", "--json"]) == 0
    [state] = json.loads(capsys.readouterr().out)
    assert state["last_run"]["outcome"] == "problems" and state["open_problems"]["type.email"] == 2
    assert main(["history", "customers", "C00002", "--json"]) == 0
    hist = json.loads(capsys.readouterr().out)
    assert {(h["field"], h["new"]) for h in hist} >= {("phone", "+86 139 0013 9000"), ("tier", "Gold")}


def test_check_reports_file_line_key_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("table: t\nsource: {kind: xlsx, path: x.xlsx}\ncolumns:\n  a:\n    tpye: string\n", encoding="utf-8")
    assert main(["check", str(bad)]) == 2
    out = capsys.readouterr().out
    assert f"{bad}:5: columns.a.tpye:" in out and "did you mean" in out


def test_check_schema_is_json(capsys):
    assert main(["check", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "columns" in schema["properties"]


def test_sync_of_a_missing_workbook_fails_with_exit_2_and_names_the_file(tmp_path, capsys):
    layout = tmp_path / "c.yaml"
    layout.write_text("table: t\nsource: {kind: xlsx, path: missing.xlsx}\nkey: id\ncolumns:\n  id: {required: true}\n",
                      encoding="utf-8")
    assert main(["sync", str(layout)]) == 2
    assert "missing.xlsx" in capsys.readouterr().err


def test_sync_with_no_layouts_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sync", "--all"]) == 2
    assert "no layouts found" in capsys.readouterr().err


def test_a_csv_in_gbk_syncs_and_keeps_its_encoding(tmp_path, capsys):
    csv_path = tmp_path / "c.csv"
    csv_path.write_bytes("编号,姓名,电话\r\nC1,张伟,138 0013 8000\r\nC2,李娜,１３９００１３９０００\r\n".encode("gbk"))
    layout = tmp_path / "c.yaml"
    layout.write_text("table: t\nsource: {kind: csv, path: c.csv}\nkey: id\ncolumns:\n"
                      "  id: {header: 编号, required: true}\n  name: {header: 姓名}\n  phone: {header: 电话, type: phone}\n",
                      encoding="utf-8")
    assert main(["sync", "--json", str(layout)]) == 0
    text = csv_path.read_bytes().decode("gbk")
    assert "+86 138 0013 8000" in text and "+86 139 0013 9000" in text and "\r\n" in text
