"""rules/prefetch.py: a forked child checks the columns whose values rarely repeat; the parent's
checker ends up exactly as if it had done the work itself, or unchanged when anything fails."""
from __future__ import annotations

import datetime as dt
import os
import threading
import time

import pytest

from sheetsync.layout import Layout
from sheetsync.model import CellError, Problem, SheetRow, row_hash
from sheetsync.rules import CellResult, RowResult, column_of, compile_rules, prefetch
from sheetsync.rules.prefetch import Prefetch

LAYOUT = Layout.model_validate({
    "table": "t", "source": {"kind": "memory", "name": "m"}, "key": "id",
    "columns": {"id": {"required": True}, "phone": {"type": "phone"}, "email": {"type": "email"},
                "city": {}, "limit": {"type": "integer", "min": 0}},
})
COLS = {"id": 0, "phone": 1, "email": 2, "city": 3, "limit": 4}

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@pytest.fixture(autouse=True)
def small_sheets_count(monkeypatch):
    monkeypatch.setattr(prefetch, "MIN_ROWS", 10)


def rows(n: int = 300) -> list[SheetRow]:
    out = []
    for i in range(n):
        phone = f"138 {i:04d} 0000" if i % 50 else "12"  # every 50th phone is invalid
        email = f"U{i}@Example.cn" if i % 7 else f"u{i}@example.cn"  # most get corrected
        out.append(SheetRow(i + 2, (f"C{i:04d}", phone, email, "上海" if i % 2 else "北京", i * 10.0)))
    out.append(SheetRow(n + 2, ("C9999", "13800138000.0")))  # a short row
    out.append(SheetRow(n + 3, ("C9998", CellError("#N/A"), dt.datetime(2024, 3, 5), None, True)))  # xlsx-like
    return out


def test_merged_columns_equal_checking_in_process():
    data = rows()
    values = [r.values for r in data]
    checker = compile_rules(LAYOUT)
    job = Prefetch.start(checker, data, COLS, ["phone", "email", "city", "limit"])
    assert job is not None and job.fields == ["phone", "email", "limit"]  # city repeats: the parent's
    theirs = job.merge()
    mine = compile_rules(LAYOUT)
    assert theirs == {f: mine.column(f, column_of(values, COLS[f])) for f in job.fields}
    assert all(type(c) is CellResult for column in theirs.values() for c in column)
    assert checker._memo["phone"] == {}  # the parent learns columns, not the child's memo
    expected = mine.check_rows(values, COLS)
    columns, odd = checker.check_columns(values, COLS, theirs)
    assert [odd.get(i) or RowResult(dict(zip(checker.fields, cells)), (), True)
            for i, cells in enumerate(zip(*columns))] == expected
    assert [r.problems[0].code for r in expected if r.problems][:1] == ["type.phone"]
    assert expected[-1].problems[0].code == "cell_error" and "limit" in expected[-1].invalid_fields


def test_the_child_hashes_its_share_of_the_rows():
    data = rows()
    job = Prefetch.start(compile_rules(LAYOUT), data, COLS, ["phone", "email"], hashing=True)
    assert job is not None and 0 < job.hash_from < len(data)
    assert job.merge() and job.hashes == [row_hash(r.values) for r in data[job.hash_from:]]
    job = Prefetch.start(compile_rules(LAYOUT), data, COLS, ["phone"])
    assert job.hash_from is None and job.merge() and job.hashes is None


def test_the_hashing_share_evens_out_the_work():
    ratios, types = {"id": 1.0, "phone": 1.0, "email": 1.0, "city": 0.0}, {"phone": "phone", "email": "email"}
    both = prefetch._hash_from(1000, ratios, ["phone", "email"], types)  # ids and cities here
    assert 0 < both < 1000  # the child hashes some rows, the parent the rest
    assert prefetch._hash_from(1000, ratios, ["phone"], types) < both  # a busier parent: the child more
    assert prefetch._hash_from(1000, {**ratios, "city": 0.5}, ["phone", "email"], types) < both
    assert prefetch._hash_from(1000, ratios, ["email", "phone", "id"], types) == 1000  # the child has enough
    assert prefetch._hash_from(1000, {f"f{i}": 1.0 for i in range(9)}, ["f1"]) == 0


def test_packed_columns_come_back_the_same_whatever_the_cells():
    cells = [CellResult("f", "", None, "ok"), CellResult("f", None, None, "ok"), CellResult("f", "5000", 5000, "ok"),
             CellResult("f", 1.0, "1", "ok"), CellResult("f", "a", "a", "ok"), CellResult("f", 1, True, "ok"),
             CellResult("f", " A ", "a", "corrected", (), "trim"), CellResult("f", CellError("#N/A"), None, "invalid",
                                                                             (Problem("cell_error", "f", {}),))]
    sent, odd = prefetch._pack(cells)
    assert list(odd) == [6, 7] and sent[4] is prefetch._SAME and sent[0] is None and sent[2] == 5000
    back = prefetch._unpack("f", [c.raw for c in cells], sent, odd)
    assert back == cells and [type(v.value) for v in back] == [type(c.value) for c in cells]
    with pytest.raises(ValueError):
        prefetch._unpack("f", [c.raw for c in cells][:-1], sent, odd)


def test_not_started_beside_other_threads_or_for_small_sheets(monkeypatch):
    checker = compile_rules(LAYOUT)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert Prefetch.start(checker, rows(), COLS, ["phone"]) is None
    finally:
        stop.set()
        other.join()
    monkeypatch.setattr(prefetch, "MIN_ROWS", 10_000)
    assert Prefetch.start(checker, rows(), COLS, ["phone"]) is None


def test_a_child_that_dies_or_hangs_leaves_the_checker_as_it_was(monkeypatch):
    checker = compile_rules(LAYOUT)
    monkeypatch.setattr(prefetch, "_child", lambda *a: os._exit(3))
    job = Prefetch.start(checker, rows(), COLS, ["phone"])
    assert job is not None and job.merge() is None
    assert checker._memo["phone"] == {} and not checker.outcomes(["phone"])[1]
    monkeypatch.setattr(prefetch, "_child", lambda *a: time.sleep(60))
    monkeypatch.setattr(prefetch, "TIMEOUT_SECONDS", 0.3)
    started = time.monotonic()
    job = Prefetch.start(checker, rows(), COLS, ["phone"])
    assert job is not None and job.merge() is None and time.monotonic() - started < 10
    job.close()  # twice is fine
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child left behind
