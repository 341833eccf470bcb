"""What every rule shares: the context it runs in, the Problem it returns, the Invalid signal.

Rules are small classes with a stable `code` (stored with open problems, keyed in messages.py)
and a `title`; they never raise for bad data, they return a Problem (frictionless-style).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ..model import CellValue, Problem, WriteValue, canonical_text

if TYPE_CHECKING:  # no runtime import: sheetsync.layout imports this package for its checks
    from ..layout import Column, Layout


@dataclass(frozen=True)
class Ctx:
    """Where a rule runs: the field, its column options, the layout, and the row's valid values."""

    field: str
    column: "Column"
    layout: "Layout"
    row: Mapping[str, WriteValue] = field(default_factory=dict)
    taken: Mapping[str, str] = field(default_factory=dict)  # unique: value text -> holder


class Invalid(Exception):
    """Raised by a type's convert(): the text cannot be read as that type. Carries params, and a
    problem code of its own when the type's code would mislead (an ambiguous date is a date)."""

    def __init__(self, code: str | None = None, **params: Any) -> None:
        super().__init__(params)
        self.code, self.params = code, params


class Rule:
    """A check of one (typed, normalised) value; `check` returns a Problem or None."""

    code: ClassVar[str]
    title: ClassVar[str]

    def check(self, value: WriteValue, ctx: Ctx) -> Problem | None:
        raise NotImplementedError

    def problem(self, ctx: Ctx, code: str | None = None, **params: Any) -> Problem:
        return Problem(code or self.code, ctx.field, {"field": ctx.field, **params})

    @classmethod
    def from_column(cls, column: "Column", layout: "Layout") -> "Rule | None":
        """The rule this column asks for, or None when the column does not use it."""
        return None


class TypeRule(Rule):
    """A column type: convert(raw, text) gives the canonical value or raises Invalid."""

    name: ClassVar[str]
    date1904: bool = False  # a bare serial day number counts from 1904-01-01 (Mac Excel's system)

    def __init__(self, column: "Column", layout: "Layout") -> None:
        self.column = column
        self.layout = layout

    def convert(self, raw: CellValue, text: str) -> WriteValue:
        raise NotImplementedError

    def same(self, raw: CellValue, value: WriteValue) -> bool:
        """Does the cell already hold `value`, only written differently (880 for "880.00")?
        Then it is left as the person typed it: no correction, no write."""
        return False

    def check(self, value: WriteValue, ctx: Ctx) -> Problem | None:
        text = canonical_text(value)
        try:
            self.convert(value, text)
        except Invalid as bad:
            return self.problem(ctx, bad.code, value=text, **bad.params)
        return None
