"""Logging for the CLI and the scheduler: text or one JSON object per line, every line of a run
carrying its run id and layout (a contextvar, so threads and nested calls need no plumbing).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import sys
from contextlib import contextmanager
from typing import IO, Any, Iterator

from . import progress
from .progress import _RUN, current_run  # noqa: F401 (current_run: part of this module's API)

_HANDLER_FLAG = "_sheetsync_handler"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s%(run_tag)s: %(message)s"


@contextmanager
def run_context(run_id: str, layout: str | None = None) -> Iterator[None]:
    """Tag every log line inside the block with `run_id` and `layout`; the progress line of the
    run is cleared when the block ends."""
    token = _RUN.set((run_id, layout))
    try:
        yield
    finally:
        _RUN.reset(token)
        progress.finish()


class RunFilter(logging.Filter):
    """Adds `run_id`, `layout` and `run_tag` (" [layout run]" or "") to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        run_id, layout = _RUN.get()
        if not hasattr(record, "run_id") or record.run_id is None:
            record.run_id = run_id
        if not hasattr(record, "layout") or record.layout is None:
            record.layout = layout
        parts = [p for p in (record.layout, record.run_id) if p]
        record.run_tag = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, run_id, layout (+ exc, extras)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc)
        out: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None), "layout": getattr(record, "layout", None)}
        for key in ("step", "done", "total"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(fmt: str = "text", level: int | str = logging.INFO, *, stream: IO[str] | None = None) -> logging.Handler:
    """Configure the `sheetsync` logger (idempotent: a second call replaces its own handler).

    Records still propagate to the root logger (pytest's caplog, an application's own handlers).
    Text lines read `2024-05-01 10:00:00,000 INFO    sheetsync.engine [customers 2024...-ab12]: ...`.
    The progress indicator is set up to match: a \\r line on a TTY in text mode, log lines otherwise.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    logger = logging.getLogger("sheetsync")
    for h in list(logger.handlers):
        if getattr(h, _HANDLER_FLAG, False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    setattr(handler, _HANDLER_FLAG, True)
    handler.addFilter(RunFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level if isinstance(level, int) else level.upper())
    progress.configure(stream=stream, tty=None if fmt == "text" else False)
    return handler


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the line (tests and daemons swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    """The global --log-format and --verbose/-v flags."""
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="log lines on stderr: text, or one JSON object per line for log collectors")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log lines (-v info, -vv debug); default: warnings only")


def apply_logging_options(args: argparse.Namespace) -> None:
    """Call once after parsing: sets up logging from --log-format and --verbose."""
    verbose = getattr(args, "verbose", 0) or 0
    fmt = getattr(args, "log_format", "text") or "text"
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if fmt == "json" and verbose == 0:
        level = logging.INFO  # a log collector wants the run lines
    setup_logging(fmt, level)
