"""What the commands print: control characters in cell text are shown escaped (`\\u001b`), never
sent to a terminal, where ESC and BEL are commands (colours, a retitled window, a cleared screen).
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator, TextIO

from ..text import UNSEEN

#: the control characters of the one table (rules/normalise.py), written as JSON writes them;
#: stdout also escapes carriage return (it rewrites a line), stderr keeps it for the progress line
_ERR = {c: f"\\u{c:04x}" for c, kind in UNSEEN.items() if kind == "control"}
_OUT = {**_ERR, 0x0D: "\\u000d"}


class EscapingStream:
    """A text stream that escapes control characters and passes everything else through."""

    def __init__(self, stream: TextIO, table: dict[int, str]) -> None:
        self.unescaped = stream
        self._table = table

    def write(self, text: str) -> int:
        self.unescaped.write(text if text.isprintable() else text.translate(self._table))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer ...
        return getattr(self.unescaped, name)


@contextlib.contextmanager
def escaped_output() -> Iterator[None]:
    """sys.stdout and sys.stderr escape control characters for the duration (one command)."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = EscapingStream(out, _OUT), EscapingStream(err, _ERR)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def data_stdout() -> TextIO:
    """Where an export writes its data: verbatim into a pipe or file (the data is the data),
    escaped when a person reads it on a terminal."""
    stream = sys.stdout
    raw = getattr(stream, "unescaped", None)
    return raw if raw is not None and not raw.isatty() else stream
