"""Log lines carry the run id (text and JSON), and progress shows as a \\r line or as log lines."""
from __future__ import annotations

import argparse
import io
import json
import logging

import pytest

from sheetsync import progress
from sheetsync.demo import install_demo
from sheetsync.engine import sync_once
from sheetsync.logs import add_logging_options, apply_logging_options, current_run, run_context, setup_logging


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def restore_logging():
    logger = logging.getLogger("sheetsync")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved
    progress.configure()


def json_lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_json_lines_of_a_real_run_carry_its_run_id(tmp_path):
    buf = io.StringIO()
    setup_logging("json", "DEBUG", stream=buf)
    layout = install_demo(tmp_path / "demo")
    log = logging.getLogger("sheetsync.test")
    with run_context("run-A", "customers"):
        assert current_run() == ("run-A", "customers")
        result = sync_once(layout, hook=lambda step: log.info("step %s", step))
    log.info("outside any run")
    lines = json_lines(buf)
    steps = [l for l in lines if l["message"].startswith("step ")]
    assert [l["message"] for l in steps][:3] == ["step lease", "step replay", "step read"]
    # the engine's own run_context (once wired) is the innermost: its run id wins
    expected = result.run_id if engine_wired() else "run-A"
    assert all(l["run_id"] == expected and l["layout"] == "customers" for l in steps)
    assert all(set(l) >= {"time", "level", "logger", "message", "run_id", "layout"} for l in lines)
    assert lines[-1]["run_id"] is None and lines[-1]["message"] == "outside any run"
    assert result.outcome == "problems" and current_run() == (None, None)


def engine_wired() -> bool:
    import inspect

    from sheetsync import engine
    return "run_context" in inspect.getsource(engine)


def test_engine_tags_its_own_lines_with_its_run_id(tmp_path):
    if not engine_wired():
        pytest.skip("engine.sync_once does not open run_context yet")
    buf = io.StringIO()
    setup_logging("json", "DEBUG", stream=buf)
    seen = []
    result = sync_once(install_demo(tmp_path / "demo"), hook=lambda step: seen.append(current_run()))
    assert seen and all(s == (result.run_id, "customers") for s in seen)
    assert all(l["run_id"] == result.run_id for l in json_lines(buf))


def test_text_lines_name_layout_and_run():
    buf = io.StringIO()
    setup_logging("text", logging.INFO, stream=buf)
    with run_context("20240501T100000-ab12cd34", "customers"):
        logging.getLogger("sheetsync.engine").warning("backup failed: %s", "disk full")
    logging.getLogger("sheetsync.engine").info("idle")
    first, second = buf.getvalue().splitlines()
    assert "WARNING" in first and "sheetsync.engine [customers 20240501T100000-ab12cd34]: backup failed: disk full" in first
    assert second.endswith("sheetsync.engine: idle")


def test_setup_is_idempotent_and_flags_parse():
    parser = argparse.ArgumentParser()
    add_logging_options(parser)
    args = parser.parse_args(["--log-format", "json", "-vv"])
    apply_logging_options(args)
    apply_logging_options(args)
    logger = logging.getLogger("sheetsync")
    ours = [h for h in logger.handlers if getattr(h, "_sheetsync_handler", False)]
    assert len(ours) == 1 and logger.level == logging.DEBUG
    assert parser.parse_args([]).log_format == "text" and parser.parse_args([]).verbose == 0
    with pytest.raises(ValueError):
        setup_logging("xml")


def test_progress_on_a_tty_is_one_rewritten_line_cleared_at_the_end():
    buf, clock = io.StringIO(), Clock()
    progress.configure(stream=buf, tty=True, delay=1.0, interval=0.1, clock=clock)
    with run_context("r1", "customers"):
        progress.progress("read", 10, 1000)          # the step just began: nothing yet
        assert buf.getvalue() == ""
        for i in range(1, 11):
            clock.now = 1.0 + i * 0.05
            progress.progress("read", i * 100, 1000)
    out = buf.getvalue()
    frames = out.split("\r")[1:]
    assert "\n" not in out
    assert frames[0].startswith("customers: read [") and "100/1,000 (10%)" in frames[0]
    assert "1,000/1,000 (100%)" in frames[-3]         # the final count is always drawn
    assert len(frames) <= 9                           # throttled to 0.1 s, not one per call
    assert frames[-2].strip() == "" == frames[-1]     # run_context's end blanks the line


def test_progress_without_a_tty_logs_throttled_lines_with_the_run_id():
    buf, clock = io.StringIO(), Clock()
    setup_logging("json", logging.WARNING, stream=buf)   # progress lines show even at warning level
    progress.configure(stream=buf, tty=False, delay=1.0, interval=10.0, clock=clock)
    with run_context("r2", "orders"):
        progress.progress("validate", 0, 100_000)
        for i in range(1, 101):
            clock.now = i * 0.5
            progress.progress("validate", i * 1000, 100_000)
        clock.now += 0.01
        progress.progress("apply", 3, 3)                  # a short step prints nothing
    lines = json_lines(buf)
    assert all(l["run_id"] == "r2" and l["logger"] == "sheetsync.progress" for l in lines)
    assert [l["done"] for l in lines] == [2000, 22000, 42000, 62000, 82000, 100000]
    assert lines[-1]["message"] == "orders: validate [####################] 100,000/100,000 (100%)"
