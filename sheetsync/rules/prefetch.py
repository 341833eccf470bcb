"""Check a big sheet's columns in a second process while the first identifies its rows.

A first sync of 100k rows spends most of its validation time on values seen once each (phones,
emails): work that needs no store and no other row. A forked child works those columns out with
a copy of the same RowChecker and hands back each cell's value in row order (the parent has the
raw cells already; a value equal to its raw one crosses the pipe as a marker, a cell that is
not "ok" whole), and on a first sync also hashes a share of the rows. The parent meanwhile
identifies rows by key, checks the other columns, hashes the rest, and then rebuilds the child's
cells at C speed. A small cost model (COST_*) sizes the hashing share so both end together.

Used only where it is safe and pays: on a platform with fork, in a process with no other
thread (a fork copies one thread; a lock another thread held would never be released in the
child), for sheets big enough. Anything odd (the child dies, hangs, or sends garbage) leaves the
checker as it was, and the parent simply does the work itself.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import threading
import time
from itertools import repeat
from typing import Any, Iterable, Mapping, Sequence

from ..model import row_hash
from . import CellResult, column_of

#: fewer rows than this: forking costs more than it saves
MIN_ROWS = 20_000
#: more rows than this: the child's copy-on-write pages would cost too much memory
MAX_ROWS = 500_000
#: the longest the parent waits for the child before doing the work itself
TIMEOUT_SECONDS = 120.0
#: microseconds of the work split between the two, per row (only their ratios matter): one
#: distinct value worked out (by column type), one cell looked up or carried back, one row
#: hashed, and the parent's own share of identifying and indexing a row. Measured on the 2-core
#: benchmark machine, the last fitted so that its first sync ends with both done at once.
COST_VALUE, COST_CELL, COST_HASH, COST_IDENT = {"phone": 4.6}, 0.25, 2.8, 3.0
COST_VALUE_DEFAULT = 2.6


class Prefetch:
    """A child process checking some columns (and hashing some rows) for a RowChecker's run;
    see `start` and `merge`."""

    def __init__(self, checker: Any, pid: int, fd: int, fields: list[str], values: list[Sequence[Any]],
                 cols: Mapping[str, int], hash_from: int | None) -> None:
        self.checker, self.pid, self.fd = checker, pid, fd
        self.fields = fields  # the ones the child checks
        self.values, self.cols = values, cols  # each row's cells, as the child had them
        self.hash_from = hash_from  # the child hashes the rows from here on (None: none)
        self.hashes: list[str] | None = None  # their hashes, once merged

    @classmethod
    def start(cls, checker: Any, rows: Sequence[Any], cols: Mapping[str, int],
              fields: Iterable[str], hashing: bool = False) -> "Prefetch | None":
        """Fork a child checking those of `fields` whose values rarely repeat, in `rows`
        (SheetRows; `cols`: field -> index); None when that is not safe or not worth it here.
        `hashing`: the caller hashes rows later (index_rows' `hash_later`), so the child takes
        the last rows' share of that too, as much as evens out the two processes' work."""
        if not MIN_ROWS <= len(rows) <= MAX_ROWS or not hasattr(os, "fork") or threading.active_count() > 1:
            return None
        ratios = {f: _distinct_ratio(rows, c) for f, c in cols.items() if f in checker.fields}
        fields = [f for f in fields if ratios.get(f, 0.0) > 1 / 3]
        if not fields:
            return None
        types = {f: c.type for f, c in checker.layout.columns.items()}
        hash_from = _hash_from(len(rows), ratios, fields, types) if hashing else None
        values = [r.values for r in rows]
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns, never runs the parent's cleanup
            try:
                os.close(read_fd)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl-C is its own
                _child(checker, values, cols, fields, hash_from, write_fd)
            finally:
                os._exit(0)
        os.close(write_fd)
        return cls(checker, pid, read_fd, fields, values, cols, hash_from)

    def merge(self) -> dict[str, list] | None:
        """Wait for the child: field -> the CellResult of each row given to `start`, in order, for
        the child's fields; None if it failed (then nothing changed: do the work here)."""
        try:
            payload = self._read_all()
            columns, hashes, flawed, altered = pickle.loads(payload) if payload else (None, None, None, None)
            if not isinstance(columns, dict) or set(columns) != set(self.fields):
                return None
            if self.hash_from is not None and len(hashes) != len(self.values) - self.hash_from:
                return None
            out = {f: _unpack(f, column_of(self.values, self.cols[f]), *columns[f]) for f in self.fields}
        except Exception:  # a truncated or damaged payload: do the work here instead
            return None
        finally:
            self.close()
        self.checker.learn(flawed, altered)
        self.hashes = hashes
        return out

    def close(self) -> None:
        """Stop the child if it still runs and reap it (safe to call twice)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0

    def _read_all(self) -> bytes:
        chunks, deadline = [], time.monotonic() + TIMEOUT_SECONDS
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return b""  # too slow: the parent does the work
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _distinct_ratio(rows: Sequence[Any], c: int, sample: int = 20_000) -> float:
    """The share of distinct values in a column's first rows: near 1 for ids, phones, emails,
    which cost a check per row; repeating ones (cities, tiers, dates) are cheap in the parent,
    which memoises them. The sample is big enough to see that 1,000 names or 5,000 dates repeat
    (2,000 rows were not, and the child got them too, on the critical path). Unhashable values:
    0 (not worth a child)."""
    values = [r.values[c] for r in rows[:sample] if c < len(r.values)]
    try:
        return len(set(values)) / len(values) if values else 0.0
    except TypeError:
        return 0.0


def _hash_from(n: int, ratios: Mapping[str, float], theirs: Sequence[str], types: Mapping[str, str] = {}) -> int:
    """The first row the child hashes: the split of the row hashing that leaves parent (its
    columns, keys included, and identifying rows) and child (its columns) equal work, by the
    share of distinct values each column showed."""
    def work(f: str) -> float:  # a repeating column's few values cost little: it is its lookups
        value = COST_VALUE.get(types.get(f, ""), COST_VALUE_DEFAULT)
        return (ratios[f] * value if ratios[f] > 1 / 3 else 0.0) + COST_CELL
    mine = sum(work(f) for f in ratios if f not in theirs) + COST_IDENT
    child = sum(work(f) for f in theirs)
    share = min(1.0, max(0.0, (mine - child + COST_HASH) / (2 * COST_HASH)))
    return n - round(n * share)


def _child(checker: Any, values: list[Sequence[Any]], cols: Mapping[str, int], fields: list[str],
           hash_from: int | None, fd: int) -> None:
    columns = checker.warm(values, cols, fields)
    packed = {f: _pack(column) for f, column in columns.items()}
    hashes = None if hash_from is None else [row_hash(v) for v in values[hash_from:]]
    payload = pickle.dumps((packed, hashes, *checker.outcomes(fields)), protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]
    os.close(fd)


#: sent for a value that is its raw cell (most: the parent has those already)
_SAME = Ellipsis


def _pack(column: Sequence[Any]) -> tuple[list, dict[int, tuple]]:
    """A column of CellResults as (each value, _SAME where it is its raw cell itself or equal to
    it in type and value; {index: the whole result} for each cell not "ok")."""
    sent = [_SAME if (v := c.value) is (raw := c.raw) or (v.__class__ is raw.__class__ and v == raw) else v
            for c in column]
    odd = {i: tuple(c) for i, c in enumerate(column) if c.outcome != "ok"}
    return sent, odd


def _unpack(field: str, raws: Sequence[Any], sent: Sequence[Any], odd: Mapping[int, tuple]) -> list:
    """The CellResults `_pack` packed, given the same raw cells (tuple.__new__: C speed)."""
    if len(sent) != len(raws):
        raise ValueError("a column of another length")
    values = [raw if v is _SAME else v for raw, v in zip(raws, sent)]
    out = list(map(tuple.__new__, repeat(CellResult), zip(repeat(field), raws, values, repeat("ok"),
                                                            repeat(()), repeat(None))))
    for i, result in odd.items():
        out[i] = CellResult._make(result)
    return out
