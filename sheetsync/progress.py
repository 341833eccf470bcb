"""Progress of a long sync: one \\r-rewritten line on a terminal, throttled log lines otherwise.

Short steps print nothing (a line appears only once a step has run for `delay` seconds), so a
quick hourly run leaves no noise in cron mail. No sheetsync dependency; the engine calls progress(), logs.py configures it.
"""
from __future__ import annotations

import contextvars
import logging
import sys
import time
from dataclasses import dataclass
from typing import IO, Callable

log = logging.getLogger("sheetsync.progress")
log.setLevel(logging.INFO)  # plain progress lines show at the default verbosity

#: (run_id, layout) of the run in progress; set by logs.run_context. It lives here, below logs,
#: because the progress line names the layout and logs drives progress (one direction only).
_RUN: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "sheetsync_run", default=(None, None))


@dataclass
class _State:
    stream: IO[str] | None = None
    tty: bool | None = None              # None = ask the stream
    delay: float = 1.0                   # seconds a step runs before its first line
    interval: float | None = None        # between lines; default 0.1 s on a TTY, 10 s otherwise
    clock: Callable[[], float] = time.monotonic
    step: str | None = None
    step_started: float = 0.0
    last_emit: float | None = None
    drawn: int = 0                       # width of the \r line on screen


_state = _State()


def configure(*, stream: IO[str] | None = None, tty: bool | None = None, delay: float = 1.0,
              interval: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
    """Where and how progress shows; tty=False forces log lines (JSON logs, tests)."""
    global _state
    finish()
    _state = _State(stream=stream, tty=tty, delay=delay, interval=interval, clock=clock)


def _is_tty() -> bool:
    if _state.tty is not None:
        return _state.tty
    stream = _state.stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress(step: str, done: int, total: int | None = None) -> None:
    """`done` of `total` items of `step` (read, validate, apply, ...); cheap to call per row."""
    st = _state
    now = st.clock()
    if step != st.step:
        st.step, st.step_started, st.last_emit = step, now, None
    if now - st.step_started < st.delay:
        return
    tty = _is_tty()
    interval = st.interval if st.interval is not None else (0.1 if tty else 10.0)
    final = total is not None and done >= total
    if st.last_emit is not None and now - st.last_emit < interval and not final:
        return
    st.last_emit = now
    text = _text(step, done, total)
    if tty:
        _draw(text)
    else:
        log.info(text, extra={"step": step, "done": done, "total": total})


def _text(step: str, done: int, total: int | None) -> str:
    layout = current_run()[1]
    head = f"{layout}: {step}" if layout else step
    if not total:
        return f"{head} {done:,}"
    share = min(done / total, 1.0)
    bar = "#" * int(share * 20)
    return f"{head} [{bar:<20}] {done:,}/{total:,} ({share:.0%})"


def _draw(text: str) -> None:
    stream = _state.stream or sys.stderr
    pad = max(_state.drawn - len(text), 0)
    stream.write("\r" + text + " " * pad)
    stream.flush()
    _state.drawn = len(text)


def finish() -> None:
    """Clear the \\r line (end of a run), so the next output starts on a clean line."""
    st = _state
    if st.drawn:
        stream = st.stream or sys.stderr
        stream.write("\r" + " " * st.drawn + "\r")
        stream.flush()
    st.drawn, st.step, st.last_emit = 0, None, None


def current_run() -> tuple[str | None, str | None]:
    """(run_id, layout) of the run this code is part of, or (None, None)."""
    return _RUN.get()
