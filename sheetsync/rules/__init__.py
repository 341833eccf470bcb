"""The rules engine: compile a layout's columns into a RowChecker that normalises and validates rows.

Per cell: raw -> text (cell_to_text) -> normalisers -> type -> constraints -> CellResult.
Per row: required_if and compare checks across fields. Uniqueness across rows: unique_problems (the Unique rule).
No user text is ever evaluated; patterns are bounded-cost regexes (rules/pattern.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from operator import itemgetter
from typing import TYPE_CHECKING, Literal, Mapping, NamedTuple, Sequence

from ..model import MAX_CELL_CHARS, CellError, CellValue, Problem, WriteValue, canonical_text
from .base import Ctx, Invalid, Rule, TypeRule
from .checks import CHECKS, COLUMN_RULES, Compare, Required, RequiredIf, Unique, is_empty
from .normalise import (DEFAULT_NORMALISERS, TEXT_DEFAULTS, apply_chain, cell_to_text, is_clean,
                        normaliser_chain)
from .dates import column_order
from .types import TYPES, DatedType

if TYPE_CHECKING:
    from ..layout import Column, Layout

__all__ = ["CellResult", "RowResult", "RowChecker", "compile_rules", "unique_problems", "RULES"]

#: every rule class by its stable problem code
RULES: dict[str, type] = {**{cls.code: cls for cls in TYPES.values()}, **CHECKS}

#: memoised cells per field; a field past this (ids, phones: values that never repeat) starts over,
#: so memory stays bounded on a million-row sheet
_MEMO_LIMIT = 250_000
_NO_LIMIT = 1 << 62  # a CSV cell: any length


class CellResult(NamedTuple):
    """One cell, normalised and checked (a NamedTuple: a first sync makes one per distinct value
    of every column, and tuples are built several times faster than frozen dataclasses)."""

    field: str
    raw: CellValue
    value: WriteValue
    outcome: Literal["ok", "corrected", "invalid"]
    problems: tuple[Problem, ...] = ()
    rule: str | None = None


class RowResult(NamedTuple):
    """One row checked: its cells by field and all their problems (a NamedTuple, as CellResult)."""

    cells: Mapping[str, CellResult]
    problems: tuple[Problem, ...]
    clean: bool = False  # known to be every cell "ok" as typed (set by check_rows)

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
    """Normalise and validate rows of one layout; made once a run, so its memo of cells is too."""

    def __init__(self, layout: "Layout", rows: Sequence[Sequence[CellValue]] = (),
                 cols: Mapping[str, int] | None = None, date1904: bool = False) -> None:
        self.layout = layout
        self.date1904 = date1904  # the workbook counts serial days from 1904 (Mac Excel)
        self.fields: tuple[str, ...] = tuple(layout.columns)
        self._plans = {f: self._plan(f, c) for f, c in layout.columns.items()}
        self._date_orders(rows, cols or {})
        self._required_if = {f: r for f, c in layout.columns.items()
                             if (r := RequiredIf.from_column(c, layout))}
        self._compares = tuple(Compare.from_check(c.compare) for c in layout.checks)
        # field -> raw value's class -> raw value -> result: one run's memo. Classes are apart
        # because 1, 1.0 and True are equal dict keys but different cells.
        self._memo: dict[str, dict[type, dict]] = {f: {} for f in self.fields}
        self._cross = bool(self._required_if or self._compares)
        #: a longer cell could never be written back (Excel cuts it, Google refuses the write)
        self._max_chars = MAX_CELL_CHARS.get(layout.source.kind, _NO_LIMIT)
        self._flawed: set[str] = set()  # fields whose memo holds a result with problems
        self._altered: set[str] = set()  # ... or one that is not "ok" (corrected or invalid)

    def _plan(self, field: str, column: "Column") -> _Plan:
        layout = self.layout
        # width folding only where it means something: typed fields, ids (a pattern, the key, a
        # unique column) and lists of allowed values; not free text, where ，and （ are correct Chinese
        fold = (column.type != "string" or column.pattern is not None or bool(column.one_of)
                or column.unique or field in layout.key_fields)
        chain = normaliser_chain(column.normalise, column.region or layout.region,
                                 column.format or layout.phone_format, fold_width=fold)
        rules = tuple(r for cls in COLUMN_RULES if (r := cls.from_column(column, layout)))
        plain = all(name in DEFAULT_NORMALISERS or name in TEXT_DEFAULTS for name, _ in chain)
        type_rule = TYPES[column.type](column, layout)
        type_rule.date1904 = self.date1904
        return _Plan(Ctx(field, column, layout), chain, type_rule, Required.from_column(column, layout), rules, plain)

    def _date_orders(self, rows: Sequence[Sequence[CellValue]], cols: Mapping[str, int]) -> None:
        """Each date column without a day_first setting reads `03/04/2024` in the order its own
        dates show, over the whole sheet (not only the rows this run checks), so one column never
        reads one date day first and the next month first."""
        for field, plan in self._plans.items():
            rule = plan.type_rule
            if isinstance(rule, DatedType) and not rule.explicit and field in cols:
                rule.order = column_order(set(column_of(rows, cols[field])))

    def normalise(self, field: str, raw: CellValue) -> CellResult:
        """One cell, no cross-field checks (memoised as every cell of a run is: see column)."""
        return self.column(field, (raw,))[0]

    def column(self, field: str, raws: Sequence[CellValue]) -> list[CellResult]:
        """Every cell of one column. Each distinct value is worked out once a run (cities, tiers
        and dates repeat; a key normalised to identify its row is not redone to check it), so the
        per-cell cost of a first sync is one dict lookup."""
        memo = self._memo[field]
        classes = set(map(type, raws))
        if len(classes) == 1:  # one type of value (a CSV's text): one C-level pass of lookups
            cls = classes.pop()
            by_value = memo.get(cls)
            if by_value is None:
                by_value = memo[cls] = {}
            try:
                out = list(map(by_value.get, raws))
            except TypeError:  # unhashable values: the loop below copes
                pass
            else:
                if None not in out:  # every value known: no loop
                    return out
                get = by_value.get
                for i, result in enumerate(out):
                    if result is None:  # not known before this column: maybe since a row above
                        raw = raws[i]
                        out[i] = get(raw) or self._remember(field, by_value, raw)
                return out
        out = []
        append = out.append
        cls, by_value = None, None
        for raw in raws:
            if raw.__class__ is not cls:
                cls = raw.__class__
                by_value = memo.get(cls)
                if by_value is None:
                    by_value = memo[cls] = {}
            try:
                append(by_value[raw])  # type: ignore[index]
            except KeyError:
                append(self._remember(field, by_value, raw))  # type: ignore[arg-type]
            except TypeError:  # unhashable: not memoised
                append(self._unmemoised(field, raw))
        return out

    def _remember(self, field: str, by_value: dict, raw: CellValue) -> CellResult:
        if len(by_value) >= _MEMO_LIMIT:
            by_value.clear()
        result = by_value[raw] = self._unmemoised(field, raw)
        return result

    def _unmemoised(self, field: str, raw: CellValue) -> CellResult:
        result = self._normalise(field, raw)
        if result.outcome != "ok":  # check_rows looks at the cells of these fields only
            self._altered.add(field)
            if result.problems:
                self._flawed.add(field)
        return result

    def check_rows(self, rows: Sequence[Sequence[CellValue]], cols: Mapping[str, int]) -> list[RowResult]:
        """check() for many rows given as value tuples (`cols`: field -> 0-based index; a field
        without a column, or past a short row's end, is empty). Works column by column."""
        columns, odd = self.check_columns(rows, cols)
        fields = self.fields
        return [odd.get(i) or RowResult(dict(zip(fields, cells)), (), True) for i, cells in enumerate(zip(*columns))]

    def check_columns(self, rows: Sequence[Sequence[CellValue]], cols: Mapping[str, int]
                      ) -> tuple[list[list[CellResult]], dict[int, RowResult]]:
        """check_rows kept column by column (rules.checked.Checked holds them): each field's
        CellResults in `self.fields` order, and row index -> RowResult for every row that is not
        clean (a cell not "ok", or a cross-field check). Clean rows cost no object of their own."""
        fields = self.fields
        columns = [self.column(f, column_of(rows, cols.get(f))) for f in fields]
        if self._cross:
            return columns, {i: self._cross_checks(dict(zip(fields, cells))) for i, cells in enumerate(zip(*columns))}
        altered = [col for f, col in zip(fields, columns) if f in self._altered]
        unclean = sorted({i for col in altered for i, cell in enumerate(col) if cell.outcome != "ok"})
        odd = {}
        for i in unclean:
            cells = {f: column[i] for f, column in zip(fields, columns)}
            odd[i] = RowResult(cells, tuple(p for c in cells.values() for p in c.problems))
        return columns, odd

    def _normalise(self, field: str, raw: CellValue) -> CellResult:
        plan = self._plans[field]
        if raw.__class__ is str:  # the common cell (CellError, a str subclass, is not this)
            text: str | None = raw
        elif isinstance(raw, CellError):  # #REF!, #N/A, a formula never calculated: never a value,
            # never clears a stored one, never "missing"
            return _invalid(field, raw, Problem(raw.code, field, {"field": field, "value": str(raw)}))
        else:
            text = cell_to_text(raw)
        changed: list[str] = []
        if text is not None and not (plan.plain and is_clean(text)):
            text, changed = apply_chain(text, plan.chain)
        if not text:
            if plan.required:
                return _invalid(field, raw, plan.required.check(None, plan.ctx))
            return _result(field, raw, None, changed)
        if len(text) > self._max_chars:  # invalid: the store keeps its last valid value
            return _invalid(field, raw, Problem("too_long_cell", field, {
                "field": field, "length": len(text), "limit": self._max_chars}))
        try:
            value = plan.type_rule.convert(raw, text)
        except Invalid as bad:
            rule = plan.type_rule
            return _invalid(field, raw, rule.problem(plan.ctx, bad.code, value=_shown(raw), **bad.params))
        value_text = value if value.__class__ is str else canonical_text(value)
        as_typed = False
        if value_text != text:
            as_typed = not changed and plan.type_rule.same(raw, value)  # 880 for "880.00": kept as typed
            changed.append(plan.type_rule.name)
        if plan.constraints:
            problems = [p for r in plan.constraints if (p := r.check(value, plan.ctx))]
            if problems:
                return _invalid(field, raw, *problems)
        if as_typed:
            return CellResult(field, raw, value, "ok")
        if value_text == (raw if raw.__class__ is str else canonical_text(raw)):
            # the usual cell of a first sync's ids, phones and emails: tuple.__new__ skips the
            # NamedTuple's Python-level __new__
            return tuple.__new__(CellResult, (field, raw, value, "ok", (), None))  # type: ignore[return-value]
        return _result(field, raw, value, changed)

    def check(self, row: Mapping[str, CellValue]) -> RowResult:
        """Every layout field of one row (missing fields count as empty), cross-field rules too:
        check_rows for a single row given as field -> cell."""
        fields = self.fields
        return self.check_rows([tuple(row.get(f) for f in fields)], {f: i for i, f in enumerate(fields)})[0]

    def _cross_checks(self, cells: dict[str, CellResult]) -> RowResult:
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


def column_of(rows: Sequence[Sequence[CellValue]], c: int | None) -> list[CellValue]:
    """Cell `c` of every row (None past a short row's end, or everywhere when `c` is None: a
    field without a column)."""
    if c is None:
        return [None] * len(rows)
    try:
        return list(map(itemgetter(c), rows))
    except IndexError:
        return [r[c] if c < len(r) else None for r in rows]


def _shown(raw: CellValue) -> str:
    return canonical_text(raw)


def _result(field: str, raw: CellValue, value: WriteValue, changed: list[str]) -> CellResult:
    if canonical_text(value) == canonical_text(raw):
        return CellResult(field, raw, value, "ok")
    rule = ", ".join(dict.fromkeys(changed)) or "normalise"
    return CellResult(field, raw, value, "corrected", (), rule)


def _invalid(field: str, raw: CellValue, *problems: Problem | None) -> CellResult:
    return CellResult(field, raw, None, "invalid", tuple(p for p in problems if p))


def _fail(cell: CellResult, problem: Problem) -> CellResult:
    return CellResult(cell.field, cell.raw, None, "invalid", cell.problems + (problem,), cell.rule)


def compile_rules(layout: "Layout", rows: Sequence[Sequence[CellValue]] = (),
                  cols: Mapping[str, int] | None = None, date1904: bool = False) -> RowChecker:
    """The RowChecker for a layout (compiles types, normalisers, constraints and checks once);
    `rows` (value tuples, `cols`: field -> index) are the whole sheet, whose date columns show
    their day/month order; `date1904`: the sheet is a Mac Excel workbook whose serial day numbers
    count from 1904."""
    return RowChecker(layout, rows, cols, date1904)


def unique_problems(field: str, column: "Column", layout: "Layout", values: Mapping[str, object],
                    existing: Mapping[str, object]) -> dict[str, Problem]:
    """identity -> the `Unique` rule's problem, for each batch identity whose value another holds.

    `values`: this batch, identity -> normalised value; `existing`: the store, identity ->
    value (a batch identity's stored value is superseded by its batch value). A value held in
    the store by another identity flags every batch holder; within the batch the first holder
    keeps it and later ones are flagged. Empty values never collide. The check itself is the
    rule class (the one a `unique: true` column compiles to); this only fills its `taken` map.
    """
    rule = Unique.from_column(column, layout)
    if rule is None:
        return {}
    taken: dict[str, str] = {}
    for identity, value in existing.items():
        if identity not in values and not is_empty(value):  # type: ignore[arg-type]
            taken.setdefault(canonical_text(value), identity)  # type: ignore[arg-type]
    ctx = Ctx(field, column, layout, taken=taken)
    out: dict[str, Problem] = {}
    for identity, value in values.items():
        problem = rule.check(value, ctx)  # type: ignore[arg-type]
        if problem is not None:
            out[identity] = problem
        elif not is_empty(value):  # type: ignore[arg-type]
            taken[canonical_text(value)] = identity  # type: ignore[arg-type]
    return out
