"""Normalisers and date parsing: pure functions from raw cells to clean text."""
from __future__ import annotations

import datetime as dt

import pytest

from sheetsync.rules.dates import date_text, datetime_text, parse_date
from sheetsync.rules.normalise import (apply_chain, cell_to_text, collapse_spaces, format_phone,
                                       nfkc, normaliser_chain, phone, strip_invisible, trim)


def test_cell_to_text() -> None:
    assert cell_to_text(13800138000.0) == "13800138000"
    assert cell_to_text(12.5) == "12.5"
    assert cell_to_text(None) is None
    assert cell_to_text(True) == "TRUE"
    assert cell_to_text(dt.datetime(2024, 3, 5)) == "2024-03-05"
    assert cell_to_text(dt.datetime(2024, 3, 5, 9, 30)) == "2024-03-05 09:30:00"
    assert cell_to_text("  x ") == "  x "


def test_invisible_and_width() -> None:
    assert strip_invisible("\u200bAl\u200dice\ufeff\u202e\u2066\u00ad") == "Alice"
    assert strip_invisible("张\u00a0三\u3000") == "张 三 "
    assert nfkc("１３８ＡＢＣ，") == "138ABC,"
    assert nfkc("plain") == "plain"


def test_spaces() -> None:
    assert trim("  a b \t") == "a b"
    assert collapse_spaces("a   b\t\tc") == "a b c"
    assert collapse_spaces("line one\nline  two") == "line one\nline two"


def test_default_chain_and_none() -> None:
    text, changed = apply_chain("\u200b Ｃ00042\u00a0 ", normaliser_chain(None))
    assert (text, changed) == ("C00042", ["strip_invisible", "nfkc", "trim"])
    assert apply_chain(" x ", normaliser_chain(["none"])) == (" x ", [])
    assert apply_chain("bob SMITH", normaliser_chain(["title"]))[0] == "Bob Smith"


@pytest.mark.parametrize("raw", ["138 0013 8000", "+86-138-0013-8000", "１３８００１３８０００",
                                 "13800138000.0", "008613800138000", "+86 (138) 0013-8000"])
def test_phone_forms(raw: str) -> None:
    assert format_phone(raw, "CN", "international") == "+86 138 0013 8000"


def test_phone_formats_and_invalid() -> None:
    assert format_phone("138 0013 8000", "CN", "E164") == "+8613800138000"
    assert format_phone("138 0013 8000", "CN", "national") == "138 0013 8000"
    assert format_phone("(0)21 5888 1234", "CN", "international") == "+86 21 5888 1234"
    assert format_phone("020 7946 0958", "GB", "E164") == "+442079460958"
    assert format_phone("12345", "CN") is None
    assert format_phone("call me", "CN") is None
    assert phone("not a phone") == "not a phone"


@pytest.mark.parametrize("raw", ["2024-03-05", "2024/3/5", "2024.03.05", "2024年3月5日", "2024年03月05号",
                                 "20240305", "5 Mar 2024", "March 5, 2024", "Mar. 5th, 2024",
                                 "05-Mar-2024", "2024-03-05 10:30", "２０２４－０３－０５",
                                 45356, 45356.75, dt.date(2024, 3, 5), dt.datetime(2024, 3, 5, 8)])
def test_date_forms(raw: object) -> None:
    assert date_text(raw) == "2024-03-05"


def test_day_first_and_impossible_dates() -> None:
    assert date_text("03/05/2024") == "2024-03-05"
    assert date_text("05/03/2024", day_first=True) == "2024-03-05"
    assert date_text("13/04/2024") == "2024-04-13"  # only one reading is possible
    assert date_text("2024-02-30") is None
    assert date_text("31/02/2024", day_first=True) is None
    assert date_text("2023-02-29") is None
    assert date_text("2024-02-29") == "2024-02-29"


def test_iso_dates_are_checked_on_the_short_path_the_same_way() -> None:
    from sheetsync.rules.dates import _parse_text
    for text in ["2024-02-29", "2023-02-29", "2024-13-01", "2024-00-10", "1999-12-31", "0050-01-01", "9999-12-31"]:
        slow = _parse_text(text, False, (), False)
        assert date_text(text) == (slow.date().isoformat() if slow else None), text
    assert date_text("0050-01-01") == "2050-01-01"  # two-digit years stay on the long path
    assert date_text("2024-05-03", formats=["%Y-%d-%m"]) == "2024-03-05"  # a column's formats come first


def test_serials_only_in_range_and_not_as_text_by_default() -> None:
    assert date_text(12) is None
    assert date_text(99999) is None
    assert date_text("45356") is None  # an id-like text is not a date for the `date` normaliser
    assert parse_date("45356") == dt.date(2024, 3, 5)


def test_input_formats_first_and_datetimes() -> None:
    assert date_text("05.03.24", formats=["%d.%m.%y"]) == "2024-03-05"
    assert datetime_text("2024-03-05T10:30:00+08:00") == "2024-03-05 10:30:00"
    assert datetime_text("2024/3/5 9:05") == "2024-03-05 09:05:00"
    assert datetime_text(45356.5) == "2024-03-05 12:00:00"
    assert datetime_text("hello") is None


def test_fast_cn_mobile_path_agrees_with_phonenumbers() -> None:
    import random

    import phonenumbers

    from sheetsync.rules import normalise as n
    rnd = random.Random(7)
    shapes = ["{d}", "+86{d}", "+86 {d}", "+86-{d}", "0086{d}", "{a} {b} {c}", "{a}-{b}-{c}", "+86 {a} {b} {c}"]
    fast_hits = 0
    for _ in range(3000):
        d = "1" + "".join(rnd.choice("0123456789") for _ in range(10))
        text = rnd.choice(shapes).format(d=d, a=d[:3], b=d[3:7], c=d[7:])
        for fmt in ("E164", "international", "national"):
            fast = n._fast_cn_mobile(text, fmt)
            if fast is None:
                continue
            fast_hits += 1
            number = phonenumbers.parse(text, "CN")
            assert phonenumbers.is_valid_number(number), text
            assert fast == phonenumbers.format_number(number, n._FORMATS[fmt]), (text, fmt)
    assert fast_hits > 3000


def test_hidden_removed_counts_only_when_nothing_visible_changed() -> None:
    from sheetsync.rules.normalise import hidden_removed
    assert hidden_removed("Bob\u200bSmith", "Bob Smith") == 0  # a space appeared: visible
    assert hidden_removed("Bob\u200b Smith\u00a0", "Bob Smith") == 2
    assert hidden_removed("Bob\u00a0Smith", "Bob Smith") == 1
    assert hidden_removed("\ufeff张三\u200d", "张三") == 2
    assert hidden_removed("Bob ", "Bob") == 1
    assert hidden_removed("bob", "Bob") == 0
    assert hidden_removed("Bob\u200b  Smith", "Bob Smith") == 0  # two spaces became one: visible
    assert hidden_removed("１３８", "138") == 0
    assert hidden_removed("\u00a0张\u3000三\u200b ", "张\u3000三") == 3  # free text keeps U+3000
    assert hidden_removed("a b", "ab") == 0 and hidden_removed("ab", "a b") == 0
