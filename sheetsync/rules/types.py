"""Column types: each turns a raw cell (or its normalised text) into one canonical value.

string, integer, number, decimal, boolean, date, datetime, enum, email, phone, url. A value
that cannot be read raises Invalid; the RowChecker turns that into a `type.<name>` Problem.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from rapidfuzz import fuzz, process

from ..model import CellValue, WriteValue
from .base import Invalid, TypeRule
from .dates import date_text, datetime_text, order_problem
from .normalise import format_phone

if TYPE_CHECKING:
    from ..layout import Column, Layout

_INT = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.0*)?")
_NUM = re.compile(r"[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{{2,63}}")
_BARE_HOST = re.compile(r"[\w-]+(?:\.[\w-]+)+(?::\d+)?(?:[/?#]\S*)?")
_HOST = re.compile(r"(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,63}|localhost|\d{1,3}(?:\.\d{1,3}){3}")
TRUE_WORDS = ("true", "yes", "y", "1", "t", "on", "是", "对", "真", "✓", "√")
FALSE_WORDS = ("false", "no", "n", "0", "f", "off", "否", "错", "假", "✗", "×")


def _is_number(raw: CellValue) -> bool:
    return isinstance(raw, (int, float)) and not isinstance(raw, bool)


class StringType(TypeRule):
    name, code, title = "string", "type.string", "Text"

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        return text


class IntegerType(TypeRule):
    """1200, "1,200", "１２００" (after NFKC) and 1200.0 are 1200; 12.5 is not an integer."""

    name, code, title = "integer", "type.integer", "Whole number"

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        if _is_number(raw):
            if isinstance(raw, float) and not raw.is_integer():
                raise Invalid()
            return int(raw)
        if not _INT.fullmatch(text):
            raise Invalid()
        return int(text.replace(",", "").split(".", 1)[0])


class NumberType(TypeRule):
    name, code, title = "number", "type.number", "Number"

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        if _is_number(raw):
            number = float(raw)
        elif _NUM.fullmatch(text):
            number = float(text.replace(",", ""))
        else:
            raise Invalid()
        if number != number or number in (float("inf"), float("-inf")):
            raise Invalid()
        return number


class DecimalType(TypeRule):
    """Exact decimal text (money): kept as str, rounded half-up to `decimals` places if set."""

    name, code, title = "decimal", "type.decimal", "Decimal number"

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        source = repr(float(raw)) if isinstance(raw, float) else text
        if not _NUM.fullmatch(source):
            raise Invalid(decimals=self.column.decimals)
        try:
            number = Decimal(source.replace(",", ""))
        except InvalidOperation:
            raise Invalid(decimals=self.column.decimals) from None
        if self.column.decimals is not None:
            number = number.quantize(Decimal(1).scaleb(-self.column.decimals), ROUND_HALF_UP)
        return format(number, "f")

    def same(self, raw: CellValue, value: WriteValue) -> bool:
        """880 and "880" are "880.00": the same amount, kept as typed (a number cell stays a
        number, a CSV keeps its text); only a rounding that changes the amount is a correction."""
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)) or not isinstance(value, str):
            return False
        source = repr(float(raw)) if isinstance(raw, float) else str(raw).strip()
        try:
            return bool(_NUM.fullmatch(source)) and Decimal(source.replace(",", "")) == Decimal(value)
        except InvalidOperation:
            return False


class BooleanType(TypeRule):
    name, code, title = "boolean", "type.boolean", "Yes/no"

    def __init__(self, column: "Column", layout: "Layout") -> None:
        super().__init__(column, layout)
        self.true = {w.casefold() for w in (*TRUE_WORDS, *column.true_values)}
        self.false = {w.casefold() for w in (*FALSE_WORDS, *column.false_values)}

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        if isinstance(raw, bool):
            return raw
        word = text.casefold()
        if word in self.true:
            return True
        if word in self.false:
            return False
        raise Invalid()


#: days from 1899-12-30 to 1904-01-01: a 1904-system serial plus this is the same day's 1900 serial
DAYS_1904 = 1462


def _dated(raw: CellValue, date1904: bool) -> CellValue:
    """A bare serial number in the 1900 system (what the date parser counts in)."""
    if date1904 and _is_number(raw):
        return float(raw) + DAYS_1904  # type: ignore[arg-type]
    return raw


class DatedType(TypeRule):
    """What date and datetime share: the column's day/month order. Set in the layout (the
    column's `day_first`, else the layout's), else decided by the RowChecker from the column's
    own dates (`order`); without one, a date that reads two ways is flagged, never guessed."""

    def __init__(self, column: "Column", layout: "Layout") -> None:
        super().__init__(column, layout)
        self.order: bool | None = column.day_first if column.day_first is not None else layout.day_first
        self.explicit = self.order is not None or bool(column.input_formats)

    def _checked_order(self, value: object) -> None:
        if isinstance(value, str) and not self.column.input_formats:
            problem = order_problem(value, self.order)
            if problem is not None:
                raise Invalid(problem[0], **problem[1])


class DateType(DatedType):
    name, code, title = "date", "type.date", "Date"

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        raw = _dated(raw, self.date1904)
        value = raw if isinstance(raw, (dt.date, int, float)) and not isinstance(raw, bool) else text
        self._checked_order(value)
        out = date_text(value, day_first=bool(self.order), formats=self.column.input_formats)
        if out is None and isinstance(value, str) and _NUM.fullmatch(value):
            out = date_text(float(value) + (DAYS_1904 if self.date1904 else 0))  # a serial typed as text
        if out is None:
            raise Invalid()
        return out


class DatetimeType(DatedType):
    name, code, title = "datetime", "type.datetime", "Date and time"

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        raw = _dated(raw, self.date1904)
        value = raw if isinstance(raw, (dt.date, int, float)) and not isinstance(raw, bool) else text
        self._checked_order(value)
        out = datetime_text(value, day_first=bool(self.order), formats=self.column.input_formats)
        if out is None:
            raise Invalid()
        return out


def fold(text: str) -> str:
    """Case, width and spacing-insensitive form used to match enum values and headers."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


class EnumType(TypeRule):
    """Canonical values, synonyms, and near-miss correction when exactly one value is close."""

    name, code, title = "enum", "type.enum", "Allowed value"
    MARGIN = 5.0  # points between the best and second target below which a near miss is ambiguous

    def __init__(self, column: "Column", layout: "Layout") -> None:
        super().__init__(column, layout)
        self.values = list(column.values or [])
        self.table = {fold(v): v for v in self.values}
        for typed, target in column.synonyms.items():
            self.table.setdefault(fold(typed), target)
        self.cutoff = column.fuzzy * 100

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        key = fold(text)
        if key in self.table:
            return self.table[key]
        ranked = self._ranked(key)
        close = [(t, s) for t, s in ranked if s >= self.cutoff]
        if close and self.cutoff < 100 and (len(close) == 1 or close[0][1] - close[1][1] >= self.MARGIN):
            return close[0][0]
        near = close or [(t, s) for t, s in ranked if s >= 50][:3]
        raise Invalid(expected=", ".join(self.values), suggestions=[t for t, _ in near])

    def _ranked(self, key: str) -> list[tuple[str, float]]:
        best: dict[str, float] = {}
        for choice, score, _ in process.extract(key, list(self.table), scorer=fuzz.ratio, limit=None):
            target = self.table[choice]
            best[target] = max(best.get(target, 0.0), score)
        return sorted(best.items(), key=lambda ts: -ts[1])


class EmailType(TypeRule):
    """One @, no spaces, a domain with a dot; the whole address lower-cased."""

    name, code, title = "email", "type.email", "Email"

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        address = text.strip()
        if address.lower().startswith("mailto:"):
            address = address[7:]
        if len(address) > 254 or not _EMAIL.fullmatch(address):
            raise Invalid()
        return address.lower()


class PhoneType(TypeRule):
    """phonenumbers with the column's (else the layout's) region and output format."""

    name, code, title = "phone", "type.phone", "Phone number"

    def __init__(self, column: "Column", layout: "Layout") -> None:
        super().__init__(column, layout)
        self.region = (column.region or layout.region).upper()
        self.format = column.format or layout.phone_format

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        out = format_phone(text, self.region, self.format)
        if out is None:
            raise Invalid(region=self.region)
        return out


class UrlType(TypeRule):
    """http/https with a host; a bare `www.acme.cn` gets `https://`."""

    name, code, title = "url", "type.url", "Web address"

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        if any(c.isspace() for c in text):
            raise Invalid()
        if "://" not in text and _BARE_HOST.fullmatch(text):
            text = "https://" + text
        try:
            parts = urlsplit(text)
            host = parts.hostname or ""
        except ValueError:
            raise Invalid() from None
        if parts.scheme.lower() not in ("http", "https") or not _HOST.fullmatch(host):
            raise Invalid()
        netloc = parts.netloc.rsplit("@", 1)
        netloc[-1] = netloc[-1].lower()
        return urlunsplit((parts.scheme.lower(), "@".join(netloc), parts.path, parts.query,
                           parts.fragment))


TYPES: dict[str, type[TypeRule]] = {cls.name: cls for cls in (
    StringType, IntegerType, NumberType, DecimalType, BooleanType, DateType, DatetimeType,
    EnumType, EmailType, PhoneType, UrlType)}
