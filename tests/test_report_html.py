"""The HTML report on a real synced store: self-contained, hostile cells escaped, charts present,
and rendered by headless Chromium when it is installed."""
from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
from pathlib import Path

import openpyxl
import pytest

from sheetsync.cli.report import add_report_commands
from sheetsync.demo import install_demo
from sheetsync.engine import sync_once
from sheetsync.report import collect_reports
from sheetsync.report_html import esc, render_html, write_html

HOSTILE = "<script>alert('pwned')</script>"
IMG = "\"><img src=x onerror=alert(1)>"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "screenshot_report.py"


@pytest.fixture
def layout(tmp_path):
    path = install_demo(tmp_path / "demo")
    sync_once(path)
    book_path = tmp_path / "demo" / "customers.xlsx"
    book = openpyxl.load_workbook(book_path)
    ws = book["Customers"]
    row = ws.max_row + 1
    # a hostile id, email and date: each fails a rule, so each is shown in the problems table
    for col, value in enumerate([HOSTILE, "Mallory", "", f"{HOSTILE}@x", "Paris", IMG], 1):
        ws.cell(row, col).value = value
        ws.cell(row, col).data_type = "s"
    book.save(book_path)
    sync_once(path)
    return path


def test_hostile_cells_are_escaped_everywhere(layout):
    page = render_html(collect_reports([layout]))
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert esc(HOSTILE) in page and esc(IMG) in page  # shown as text, not dropped
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page


def test_page_is_self_contained_with_charts_and_problem_table(layout):
    reports = collect_reports([layout])
    page = render_html(reports, generated=0)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    assert "@import" not in page and "url(" not in page and "<script" not in page
    assert page.count("<svg") == 3
    assert "Sync runs" in page and "Data quality" in page and "Open problems by rule" in page
    rep = reports[0]
    assert f"Open problems ({len(rep.problems)})" in page
    assert page.count("<tr>") == len(rep.problems) + 1
    assert "Invalid email" in page and "bob@@acme.com" in page
    assert 'fill="#e0a526"' in page  # runs coloured by outcome (problems)
    assert "Generated 1970-01-01 00:00 UTC" in page


def test_chinese_layout_gets_chinese_labels_and_messages(layout):
    layout.write_text(layout.read_text(encoding="utf-8").replace("language: en", "language: zh"), encoding="utf-8")
    page = render_html(collect_reports([layout]))
    assert "待处理问题" in page and "数据质量" in page and "不是有效的地址" in page
    assert '<section class="layout" lang="zh">' in page


def test_cli_report_writes_html_and_prints_text(layout, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_report_commands(parser.add_subparsers())
    out = tmp_path / "r" / "report.html"
    args = parser.parse_args(["report", "--html", str(out), str(layout)])
    assert args.func(args) == 0
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    args = parser.parse_args(["report", str(layout)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "customers (table customers): last run problems" in text and "runs shown: 2" in text


def test_never_synced_layout_still_renders(tmp_path):
    path = install_demo(tmp_path / "fresh")
    page = render_html(collect_reports([path]))
    assert "Never synced" in page and page.count("<svg") == 0


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="headless chromium not installed (apt-get install -y chromium)")
def test_chromium_renders_the_page(layout, tmp_path):
    spec = importlib.util.spec_from_file_location("screenshot_report", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    html = write_html(collect_reports([layout]), tmp_path / "report.html")
    png = mod.screenshot(html, tmp_path / "report.png", 1000, 1200)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1000, 1200)
    assert len(data) > 20_000  # a blank page compresses to a few kB; charts and a table do not
