"""Constraint rules on a normalised, typed value: required, pattern, limits, one_of, unique, compare.

Each is a small class with a stable `code`, typed options built from the layout by
`from_column`, and `check(value, ctx) -> Problem | None`. Column types are in rules/types.py.
"""
from __future__ import annotations

import operator
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable

from ..model import Problem, WriteValue, canonical_text
from .base import Ctx, Rule
from .dates import parse_date
from .pattern import compile_pattern

if TYPE_CHECKING:
    from ..layout import Column, CompareCheck, Layout


def is_empty(value: WriteValue) -> bool:
    return value is None or value == ""


class Required(Rule):
    code, title = "required", "Required"

    def check(self, value: WriteValue, ctx: Ctx) -> Problem | None:
        return self.problem(ctx) if is_empty(value) else None

    @classmethod
    def from_column(cls, column: "Column", layout: "Layout") -> "Rule | None":
        return cls() if column.required else None


class RequiredIf(Rule):
    """Required when another field equals a value, is one of several, or is filled in."""

    code, title = "required_if", "Required when"

    def __init__(self, other: str, equals: Any = None, one_of: list | None = None,
                 not_empty: bool = False) -> None:
        self.other = other
        self.when = {canonical_text(v).casefold() for v in (one_of or [])}
        if equals is not None:
            self.when.add(canonical_text(equals).casefold())
        self.not_empty = not_empty or not self.when

    def applies(self, other_value: WriteValue) -> bool:
        if is_empty(other_value):
            return False
        return self.not_empty or canonical_text(other_value).casefold() in self.when

    def check(self, value: WriteValue, ctx: Ctx) -> Problem | None:
        if self.other not in ctx.row or not is_empty(value):
            return None
        other_value = ctx.row[self.other]
        if not self.applies(other_value):
            return None
        return self.problem(ctx, other=self.other, other_value=canonical_text(other_value))

    @classmethod
    def from_column(cls, column: "Column", layout: "Layout") -> "Rule | None":
        r = column.required_if
        return cls(r.field, r.equals, r.one_of, r.not_empty) if r else None


class Pattern(Rule):
    """Full match of the value's text, in linear time whatever the pattern (RE2, rules/pattern.py)."""

    code, title = "pattern", "Format"

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.fullmatch = compile_pattern(pattern).fullmatch

    def check(self, value: WriteValue, ctx: Ctx) -> Problem | None:
        text = canonical_text(value)
        if not text or self.fullmatch(text):
            return None
        return self.problem(ctx, value=text, pattern=self.pattern)

    @classmethod
    def from_column(cls, column: "Column", layout: "Layout") -> "Rule | None":
        return cls(column.pattern) if column.pattern else None


def _as_number(value: WriteValue) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        return None


class _Limit(Rule):
    """Base of min/max/min_date/max_date/min_length/max_length: compare a measure to a limit."""

    option: str
    below: bool  # True: a problem when the measure is below the limit

    def __init__(self, limit: Any) -> None:
        self.limit = limit

    def measure(self, value: WriteValue) -> Any:
        return _as_number(value)

    def check(self, value: WriteValue, ctx: Ctx) -> Problem | None:
        if is_empty(value):
            return None
        got = self.measure(value)
        if got is None or (got >= self.limit if self.below else got <= self.limit):
            return None
        params = {"value": canonical_text(value), "limit": self.shown()}
        if isinstance(got, int):
            params["length"] = got
        return self.problem(ctx, **params)

    def shown(self) -> Any:
        """The limit as plain JSON (problems are stored): 0 not Decimal('0')."""
        limit = self.limit
        if isinstance(limit, Decimal):
            return int(limit) if limit == limit.to_integral() else float(limit)
        return limit

    @classmethod
    def from_column(cls, column: "Column", layout: "Layout") -> "Rule | None":
        limit = getattr(column, cls.option)
        return None if limit is None else cls(cls.prepare(limit))

    @classmethod
    def prepare(cls, limit: Any) -> Any:
        return Decimal(str(limit))


class Min(_Limit):
    code, title, option, below = "min", "Minimum", "min", True


class Max(_Limit):
    code, title, option, below = "max", "Maximum", "max", False


class _DateLimit(_Limit):
    def measure(self, value: WriteValue) -> Any:
        return str(value)[:10]

    @classmethod
    def prepare(cls, limit: Any) -> Any:
        day = parse_date(limit)
        if day is None:
            raise ValueError(f"not a date: {limit!r}")
        return day.isoformat()


class MinDate(_DateLimit):
    code, title, option, below = "min_date", "Earliest date", "min_date", True


class MaxDate(_DateLimit):
    code, title, option, below = "max_date", "Latest date", "max_date", False


class _LengthLimit(_Limit):
    def measure(self, value: WriteValue) -> Any:
        return len(canonical_text(value))

    @classmethod
    def prepare(cls, limit: Any) -> Any:
        return int(limit)


class MinLength(_LengthLimit):
    code, title, option, below = "min_length", "Minimum length", "min_length", True


class MaxLength(_LengthLimit):
    code, title, option, below = "max_length", "Maximum length", "max_length", False


class OneOf(Rule):
    """The value must be one of a list (case-insensitive, after normalising both sides)."""

    code, title = "one_of", "Allowed values"

    def __init__(self, options: list[str]) -> None:
        self.options = list(options)
        self.folded = {canonical_text(o).casefold() for o in options}

    def check(self, value: WriteValue, ctx: Ctx) -> Problem | None:
        if is_empty(value) or canonical_text(value).casefold() in self.folded:
            return None
        return self.problem(ctx, value=canonical_text(value), expected=", ".join(self.options))

    @classmethod
    def from_column(cls, column: "Column", layout: "Layout") -> "Rule | None":
        return cls(column.one_of) if column.one_of else None


class Unique(Rule):
    """No two records share the value; `ctx.taken` maps value text -> the identity holding it."""

    code, title = "unique", "Unique"

    def check(self, value: WriteValue, ctx: Ctx) -> Problem | None:
        if is_empty(value):
            return None
        other = ctx.taken.get(canonical_text(value))
        return self.problem(ctx, value=canonical_text(value), other=other) if other else None

    @classmethod
    def from_column(cls, column: "Column", layout: "Layout") -> "Rule | None":
        return cls() if column.unique else None


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">=": operator.ge, ">": operator.gt,
}


def comparable(a: WriteValue, b: WriteValue) -> tuple[Any, Any] | None:
    """Numbers as numbers (decimal text too), ISO dates as text; mixed kinds do not compare."""
    na, nb = _as_number(a), _as_number(b)
    if na is not None and nb is not None:
        return na, nb
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    return None


class Compare(Rule):
    """`left op right` on the row's typed values; the problem is attached to `left`."""

    code, title = "compare", "Comparison"

    def __init__(self, left: str, op: str, right: str, message: str | None = None) -> None:
        self.left, self.op, self.right, self.message = left, op, right, message

    def check(self, value: WriteValue, ctx: Ctx) -> Problem | None:
        other = ctx.row.get(self.right)
        if is_empty(value) or is_empty(other):
            return None
        pair = comparable(value, other)
        if pair is None or _OPS[self.op](*pair):
            return None
        params: dict[str, Any] = dict(left=self.left, op=self.op, right=self.right,
                                      left_value=canonical_text(value),
                                      right_value=canonical_text(other))
        if self.message:
            params["message"] = self.message
        return self.problem(ctx, **params)

    @classmethod
    def from_check(cls, check: "CompareCheck") -> "Compare":
        return cls(check.left, check.op, check.right, check.message)


#: constraints built per column, in the order they run (required/required_if run separately)
COLUMN_RULES: tuple[type[Rule], ...] = (Pattern, Min, Max, MinDate, MaxDate, MinLength,
                                        MaxLength, OneOf)

CHECKS: dict[str, type[Rule]] = {cls.code: cls for cls in (
    Required, RequiredIf, Pattern, Min, Max, MinDate, MaxDate, MinLength, MaxLength, OneOf,
    Unique, Compare)}
