"""store/sql.py: names from layouts are quoted, never trusted; long key lists are chunked."""
from __future__ import annotations

import sqlite3

import pytest

from sheetsync.errors import UsageError
from sheetsync.store.sql import chunks, literal, quote


def test_quote_makes_any_name_one_identifier_and_refuses_nul():
    db = sqlite3.connect(":memory:")
    name = 'x"; DROP TABLE t; --'
    db.execute(f"CREATE TABLE {quote(name)} ({quote('a b')} TEXT)")
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == [name]
    with pytest.raises(UsageError):
        quote("a\x00b")


def test_literal_makes_any_text_one_string_and_refuses_nul():
    db = sqlite3.connect(":memory:")
    for text in ["it's", "'); DROP TABLE t; --", "", "中\n\\"]:
        assert db.execute(f"SELECT {literal(text)}").fetchone() == (text,)
    with pytest.raises(UsageError):
        literal("a\x00b")


def test_chunks_cover_every_item_once_in_order():
    assert [list(c) for c in chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 500)) == []
    assert sum(len(c) for c in chunks(list(range(1201)))) == 1201  # 500 by default
