"""The rules engine: compile a layout's columns into a RowChecker that normalises and validates rows.

Per cell: raw -> text (cell_to_text) -> normalisers -> type -> constraints -> CellResult.
Per row: required_if and compare checks across fields. Uniqueness across rows: unique_violations.
No user text is ever evaluated; patterns are bounded-cost regexes (rules/pattern.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Mapping

from ..model import CellError, CellValue, Problem, WriteValue, canonical_text
from .base import Ctx, Invalid, Rule, TypeRule
from .checks import CHECKS, COLUMN_RULES, Compare, Required, RequiredIf, is_empty
from .normalise import DEFAULT_NORMALISERS, apply_chain, cell_to_text, is_clean, normaliser_chain
from .types import TYPES

if TYPE_CHECKING:
    from ..layout import Column, Layout

__all__ = ["CellResult", "RowResult", "RowChecker", "compile_rules", "unique_violations", "RULES"]

#: every rule class by its stable problem code
RULES: dict[str, type] = {**{cls.code: cls for cls in TYPES.values()}, **CHECKS}

_CACHE_LIMIT = 200_000
_SAMPLE = 2000  # cache misses of a field after which its hit rate is judged


def _text(value: object) -> str:
    """canonical_text without the call for the common case of text."""
    return value if value.__class__ is str else canonical_text(value)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class CellResult:
    field: str
    raw: CellValue
    value: WriteValue
    outcome: Literal["ok", "corrected", "invalid"]
    problems: tuple[Problem, ...] = ()
    rule: str | None = None


@dataclass(frozen=True)
class RowResult:
    cells: Mapping[str, CellResult]
    problems: tuple[Problem, ...]

    @property
    def valid(self) -> dict[str, WriteValue]:
        return {f: c.value for f, c in self.cells.items() if c.outcome != "invalid"}

    @property
    def invalid_fields(self) -> set[str]:
        return {f for f, c in self.cells.items() if c.outcome == "invalid"}


@dataclass(frozen=True)
class _Plan:
    """Everything compiled for one field."""

    ctx: Ctx
    chain: tuple
    type_rule: TypeRule
    required: Rule | None
    constraints: tuple[Rule, ...]
    plain: bool  # only default normalisers: clean ASCII text skips them


class RowChecker:
    """Normalise and validate rows of one layout. Results of single cells are cached."""

    def __init__(self, layout: "Layout") -> None:
        self.layout = layout
        self.fields: tuple[str, ...] = tuple(layout.columns)
        self._plans = {f: self._plan(f, c) for f, c in layout.columns.items()}
        self._required_if = {f: r for f, c in layout.columns.items()
                             if (r := RequiredIf.from_column(c, layout))}
        self._compares = tuple(Compare.from_check(c.compare) for c in layout.checks)
        self._cache: dict[tuple, CellResult] = {}
        self._misses: dict[str, int] = {}
        self._no_cache: set[str] = set()

    def _plan(self, field: str, column: "Column") -> _Plan:
        layout = self.layout
        chain = normaliser_chain(column.normalise, column.region or layout.region,
                                 column.format or layout.phone_format)
        rules = tuple(r for cls in COLUMN_RULES if (r := cls.from_column(column, layout)))
        plain = all(name in DEFAULT_NORMALISERS for name, _ in chain)
        return _Plan(Ctx(field, column, layout), chain, TYPES[column.type](column, layout),
                     Required.from_column(column, layout), rules, plain)

    def normalise(self, field: str, raw: CellValue) -> CellResult:
        """One cell, no cross-field checks. Repeated values (cities, tiers, dates) are cached;
        a field whose values rarely repeat (ids, phones) stops caching after a sample."""
        if field in self._no_cache:
            return self._normalise(field, raw)
        key = (field, raw.__class__, raw)
        try:
            return self._cache[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value from a custom connector: no caching
            return self._normalise(field, raw)
        misses = self._misses[field] = self._misses.get(field, 0) + 1
        if misses == _SAMPLE and sum(1 for k in self._cache if k[0] == field) > _SAMPLE * 0.9:
            self._no_cache.add(field)
            self._cache = {k: v for k, v in self._cache.items() if k[0] != field}
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        result = self._cache[key] = self._normalise(field, raw)
        return result

    def _normalise(self, field: str, raw: CellValue) -> CellResult:
        plan = self._plans[field]
        if isinstance(raw, CellError):  # #REF!, #N/A: never a value, never clears a stored one
            return _invalid(field, raw, Problem("cell_error", field, {"field": field, "value": str(raw)}))
        text = cell_to_text(raw)
        changed: list[str] = []
        if text is not None and not (plan.plain and is_clean(text)):
            text, changed = apply_chain(text, plan.chain)
        if not text:
            if plan.required:
                return _invalid(field, raw, plan.required.check(None, plan.ctx))
            return _result(field, raw, None, changed)
        try:
            value = plan.type_rule.convert(raw, text)
        except Invalid as bad:
            rule = plan.type_rule
            return _invalid(field, raw, rule.problem(plan.ctx, value=_shown(raw), **bad.params))
        if _text(value) != text:
            changed.append(plan.type_rule.name)
        problems = tuple(p for r in plan.constraints if (p := r.check(value, plan.ctx)))
        if problems:
            return _invalid(field, raw, *problems)
        return _result(field, raw, value, changed)

    def check(self, row: Mapping[str, CellValue]) -> RowResult:
        """Every layout field of one row (missing fields count as empty), cross-field rules too."""
        cells = {f: self.normalise(f, row.get(f)) for f in self.fields}
        values = {f: c.value for f, c in cells.items() if c.outcome != "invalid"}
        for field, rule in self._required_if.items():
            cell = cells[field]
            if cell.outcome != "invalid":
                ctx = replace(self._plans[field].ctx, row=values)
                if problem := rule.check(cell.value, ctx):
                    cells[field] = _fail(cell, problem)
        for compare in self._compares:
            left = cells.get(compare.left)
            if left is not None and left.outcome != "invalid" and compare.right in values:
                ctx = replace(self._plans[compare.left].ctx, row=values)
                if problem := compare.check(left.value, ctx):
                    cells[compare.left] = _fail(left, problem)
        problems = tuple(p for c in cells.values() for p in c.problems)
        return RowResult(cells, problems)


def _shown(raw: CellValue) -> str:
    return canonical_text(raw)


def _result(field: str, raw: CellValue, value: WriteValue, changed: list[str]) -> CellResult:
    if _text(value) == _text(raw):
        return CellResult(field, raw, value, "ok")
    rule = ", ".join(dict.fromkeys(changed)) or "normalise"
    return CellResult(field, raw, value, "corrected", (), rule)


def _invalid(field: str, raw: CellValue, *problems: Problem | None) -> CellResult:
    return CellResult(field, raw, None, "invalid", tuple(p for p in problems if p))


def _fail(cell: CellResult, problem: Problem) -> CellResult:
    return CellResult(cell.field, cell.raw, None, "invalid", cell.problems + (problem,), cell.rule)


def compile_rules(layout: "Layout") -> RowChecker:
    """The RowChecker for a layout (compiles types, normalisers, constraints and checks once)."""
    return RowChecker(layout)


def unique_violations(field: str, values: Mapping[str, object],
                      existing: Mapping[str, object]) -> dict[str, str]:
    """identity -> identity of another holder of the same value, for each batch identity.

    `values`: this batch, identity -> normalised value; `existing`: the store, identity ->
    value (a batch identity's stored value is superseded by its batch value). A value held in
    the store by another identity flags every batch holder; within the batch the first holder
    keeps it and later ones are flagged. Empty values never collide. `field` is for symmetry
    with the other rule entry points and error messages.
    """
    holders: dict[str, str] = {}
    for identity, value in existing.items():
        if identity not in values and not is_empty(value):  # type: ignore[arg-type]
            holders.setdefault(canonical_text(value), identity)  # type: ignore[arg-type]
    out: dict[str, str] = {}
    for identity, value in values.items():
        if is_empty(value):  # type: ignore[arg-type]
            continue
        text = canonical_text(value)  # type: ignore[arg-type]
        holder = holders.setdefault(text, identity)
        if holder != identity:
            out[identity] = holder
    return out
