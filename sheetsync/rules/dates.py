"""Dates and date-times typed every way people type them, to ISO text.

Accepted: date/datetime objects, Excel serial numbers (20000-80000, i.e. 1954-2119), ISO,
YYYY/MM/DD, YYYY.MM.DD, YYYYMMDD, 2024年3月5日, DD/MM/YYYY or MM/DD/YYYY (day_first), "5 Mar 2024",
"March 5, 2024", and a column's own strptime formats. An impossible date (2024-02-30) is None.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Iterable, Sequence

SERIAL_MIN, SERIAL_MAX = 20000, 80000
_EPOCH = dt.datetime(1899, 12, 30)  # Excel's day 0 (its 1900 leap-year bug folded in)
_TIME = r"(?:(?:[T ]|\s+)(\d{1,2})[:：时](\d{2})(?:[:：分](\d{2})(?:\.\d{1,6})?)?\s*秒?)?"
_ZONE = r"\s*(?:Z|[+-]\d{2}:?\d{2})?"
_YMD = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})" + _TIME + _ZONE)
_CJK = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?" + _TIME)
_COMPACT = re.compile(r"((?:19|20)\d{2})(\d{2})(\d{2})")
_AMBIG = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})" + _TIME)
_DMY_NAME = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?[\s-]+([A-Za-z]{3,9})\.?[\s,-]+(\d{4})" + _TIME)
_MDY_NAME = re.compile(r"([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})" + _TIME)
_NUMERIC = re.compile(r"\d{5}(?:\.\d+)?")
_ISO_DAY = re.compile(r"[1-9]\d{3}-\d{2}-\d{2}", re.ASCII)  # the canonical form, years 1000 on
_MONTHS = {name: i for i, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
     ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
     ("oct", "october"), ("nov", "november"), ("dec", "december")], start=1) for name in names}

Parts = tuple[int, int, int, int, int, int]


def from_serial(serial: float) -> dt.datetime | None:
    """An Excel serial day number (fraction = time of day), if in the sane range."""
    if not SERIAL_MIN <= serial <= SERIAL_MAX:
        return None
    return (_EPOCH + dt.timedelta(days=serial)).replace(microsecond=0)


def parse_datetime(value: object, *, day_first: bool = False, formats: Sequence[str] = (),
                   serials: bool = True) -> dt.datetime | None:
    """Any accepted input as a naive datetime (a time zone is dropped, wall time kept)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None, microsecond=0)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return from_serial(float(value)) if serials else None
    if not isinstance(value, str):
        return None
    return _parse_text(value, day_first, formats, serials)


def parse_date(value: object, *, day_first: bool = False, formats: Sequence[str] = (),
               serials: bool = True) -> dt.date | None:
    moment = parse_datetime(value, day_first=day_first, formats=formats, serials=serials)
    return moment.date() if moment else None


def date_text(value: object, *, day_first: bool = False, formats: Sequence[str] = ()) -> str | None:
    """ISO YYYY-MM-DD, or None. Used by the `date` normaliser (no serials: text may be an id)."""
    if not formats and value.__class__ is str and _ISO_DAY.fullmatch(value):  # already ISO: check it
        try:
            dt.date.fromisoformat(value)
        except ValueError:  # 2024-02-30
            return None
        return value
    day = parse_date(value, day_first=day_first, formats=formats, serials=not isinstance(value, str))
    return day.isoformat() if day else None


def datetime_text(value: object, **kw: object) -> str | None:
    moment = parse_datetime(value, **kw)  # type: ignore[arg-type]
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else None


def _parse_text(text: str, day_first: bool, formats: Sequence[str], serials: bool) -> dt.datetime | None:
    text = text.strip()
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).strip()
    for fmt in formats:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    if serials and _NUMERIC.fullmatch(text):
        return from_serial(float(text))
    for parts in _candidates(text, day_first):
        try:
            return dt.datetime(*parts)
        except ValueError:
            continue
    return None


def readings(text: str) -> tuple[str | None, str | None] | None:
    """(day-first, month-first) ISO readings of a `DD/MM/YYYY`-or-`MM/DD/YYYY` text (None where
    that order gives no real date); None for every other form, which has one reading only."""
    text = text.strip()
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).strip()
    m = _AMBIG.fullmatch(text)
    if m is None:
        return None
    a, b, year = m.group(1), m.group(2), m.group(3)
    out = []
    for parts in (_parts(year, b, a, ()), _parts(year, a, b, ())):
        try:
            out.append(dt.date(*parts[:3]).isoformat())
        except ValueError:
            out.append(None)
    return out[0], out[1]


def column_order(texts: Iterable[object]) -> bool | None:
    """Day first (True) or month first (False), as a column's own dates show it: `31/10/2017`
    can only be day first, `12/25/2017` only month first. None when its dates show neither, or
    both (people typing both ways): its ambiguous dates are then flagged, not guessed."""
    day = month = False
    for text in texts:
        got = readings(text) if isinstance(text, str) else None
        if got and got[0] != got[1]:
            day |= got[1] is None and got[0] is not None
            month |= got[0] is None and got[1] is not None
            if day and month:
                return None
    return True if day else False if month else None


def order_problem(text: str, day_first: bool | None) -> tuple[str, dict[str, str]] | None:
    """Why `text` cannot be read in the column's date order: ("date_ambiguous", both readings)
    when the order is unknown and both are real dates; ("date_order", ...) when the text is only
    a date in the other order. None when it reads one way only, or both ways alike."""
    got = readings(text)
    if not got or got[0] == got[1] or None in got and day_first is None:
        return None
    if day_first is None:
        return "date_ambiguous", {"day_first": got[0] or "", "month_first": got[1] or ""}
    if got[0 if day_first else 1] is None:
        return "date_order", {"order": "DD/MM/YYYY" if day_first else "MM/DD/YYYY"}
    return None


def _candidates(text: str, day_first: bool) -> list[Parts]:
    """Every reading of the text as (y, m, d, H, M, S), preferred first."""
    if m := _YMD.fullmatch(text) or _CJK.fullmatch(text) or _COMPACT.fullmatch(text):
        return [_parts(m.group(1), m.group(2), m.group(3), m.groups()[3:6])]
    if m := _AMBIG.fullmatch(text):
        a, b, year = m.group(1), m.group(2), m.group(3)
        day_month = _parts(year, b, a, m.groups()[3:6])
        month_day = _parts(year, a, b, m.groups()[3:6])
        # the other order only when the preferred one is impossible (13/04 is unambiguous)
        return [day_month, month_day] if day_first else [month_day, day_month]
    if m := _DMY_NAME.fullmatch(text):
        month = _MONTHS.get(m.group(2).lower())
        return [_parts(m.group(3), month, m.group(1), m.groups()[3:6])] if month else []
    if m := _MDY_NAME.fullmatch(text):
        month = _MONTHS.get(m.group(1).lower())
        return [_parts(m.group(3), month, m.group(2), m.groups()[3:6])] if month else []
    return []


def _parts(year: str, month: object, day: str, time: Sequence[str | None]) -> Parts:
    y = int(year)
    if y < 100:
        y += 2000 if y < 70 else 1900
    clock = [int(t) if t else 0 for t in (list(time) + [None, None, None])[:3]]
    return (y, int(month), int(day), clock[0], clock[1], clock[2])  # type: ignore[arg-type]
