"""Three-way reconcile of one row, field by field: base (last agreed), sheet (typed now), store (now).

Only the sheet changed: take it. Only the store changed: push it to the sheet. Both changed
differently: a conflict, settled by the layout's policy and always reported. Invalid values never
reach the store, and protected fields are reverted to the store's value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Literal, Mapping, NamedTuple

from ..model import Problem, WriteValue, canonical_text
from ..rules.normalise import count_controls, hidden_removed
from ..store import BaseRow

Policy = Literal["store", "sheet", "flag"]
NO_LIMIT = 1 << 62  # a CSV cell holds any length
#: which mark wins when one cell has several reasons to be marked
MARK_PRIORITY = ("invalid", "protected", "conflict", "duplicate", "corrected", "pushed")


@dataclass(slots=True)
class RowDecision:
    """What to do with one row: store writes, sheet writes, marks, problems, the next base."""

    ident: str
    insert: bool = False
    held_back: bool = False
    store_values: dict[str, WriteValue] = field(default_factory=dict)
    writes: dict[str, WriteValue] = field(default_factory=dict)
    marks: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    base_sheet: dict[str, str] = field(default_factory=dict)
    base_store: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {
        "corrected": 0, "invalid": 0, "conflicts": 0, "protected": 0, "pushed": 0})

    def mark(self, field_name: str, kind: str, params: dict[str, Any]) -> None:
        current = self.marks.get(field_name)
        if current is None or MARK_PRIORITY.index(kind) < MARK_PRIORITY.index(current[0]):
            self.marks[field_name] = (kind, params)


class RowInput(NamedTuple):
    """One row's three sides (a NamedTuple: a first sync makes 100k of them)."""

    ident: str
    cells: Mapping[str, Any]            # field -> rules.CellResult
    base: BaseRow | None
    record: Mapping[str, Any] | None    # the store record (may be soft-deleted) or None
    key_fields: tuple[str, ...]
    required: frozenset[str]
    protected: frozenset[str]
    policy: Policy = "flag"
    access: Any = None                  # layout.Access: read-only sheet, row scope
    max_chars: int = NO_LIMIT           # the most one cell of this sheet holds (model.MAX_CELL_CHARS)


def reconcile_row(row: RowInput) -> RowDecision:
    live = row.record is not None and not row.record.get("_deleted")
    if not live and _plain_new(row):
        return insert_row(row.ident, row.cells)
    decision = RowDecision(ident=row.ident, insert=not live)
    guarded = _guarded_fields(row, live)
    if guarded is None:
        return _refuse_new_row(decision, row)
    for name, cell in row.cells.items():
        if cell.outcome == "invalid":
            _invalid(decision, row, name, cell, live)
        elif not live and cell.outcome == "ok":  # the common case of a first sync, kept cheap
            text = canonical_text(cell.value)
            decision.store_values[name] = cell.value
            decision.base_sheet[name] = decision.base_store[name] = text
        else:
            _field(decision, row, name, cell, live, guarded)
    if decision.insert:
        blocking = set(row.key_fields) | set(row.required)
        bad = {n for n, c in row.cells.items() if c.outcome == "invalid"}
        bad |= {f for f in row.key_fields if f in row.cells and row.cells[f].value in (None, "")}
        if bad & blocking or not row.key_fields and not any(
                c.value not in (None, "") for c in row.cells.values()):
            decision.held_back = True
            decision.store_values = {}
            decision.base_store = {}
            decision.problems.append(Problem("held_back", None, {
                "key": row.ident, "fields": ", ".join(sorted(bad & blocking))}))
    return decision


def hold_back_taken_key(ident: str, key_field: str, typed: str, other_row: int | None, base: BaseRow) -> RowDecision:
    """A record's row whose key cell now shows the key of another row (`typed`), or nothing
    (`typed` empty): nothing of it is stored or written back, a note on the key cell says why,
    and the base stays what sheet and store agreed on, so once the key is typed back the row
    reads exactly as before. `base` is resolved."""
    code, params = ("key_taken", {"key": typed, "other_row": other_row}) if typed else ("key_missing", {"key": ident})
    decision = RowDecision(ident=ident, held_back=True, base_sheet=dict(base.sheet or {}),
                           base_store=dict(base.store or {}))
    decision.problems.append(Problem(code, key_field, params))
    decision.mark(key_field, "invalid", {"code": code, **params})
    return decision


def has_key(cells: Mapping[str, Any], key_fields: tuple[str, ...]) -> bool:
    """True when every key cell holds a value (a row without one cannot become a record)."""
    return all((c := cells.get(f)) is None or c.value not in (None, "") for f in key_fields)


def creates_freely(access: Any) -> bool:
    """True when a sheet under these access rules may create any new row (no read-only sheet,
    no row scope to check the row against)."""
    return access is None or not (access.read_only or access.row_scope is not None)


def _plain_new(row: RowInput) -> bool:
    """A new row whose every cell is fine as typed and that the sheet may create: most rows of a
    first sync, decided without the field-by-field walk."""
    if not creates_freely(row.access):
        return False
    if not row.key_fields and all(c.value in (None, "") for c in row.cells.values()):
        return False
    return all(c.outcome == "ok" for c in row.cells.values()) and has_key(row.cells, row.key_fields)


def insert_row(ident: str, cells: Mapping[str, Any]) -> RowDecision:
    """The decision for a new row whose every cell is fine as typed, on a sheet that may create
    rows (callers check that; reconcile_row does, and the engine for rows check_rows found clean)."""
    # the base: "the record's own values" (AS_STORED), kept without a copy of them
    return RowDecision(ident=ident, insert=True, store_values=dict(zip(cells, map(_value, cells.values()))),
                       base_sheet=AS_STORED, base_store=AS_STORED, counts=NO_COUNTS)


_value = attrgetter("value")


@dataclass
class NewRows:
    """Rows never seen before whose every cell is fine as typed, on a sheet that may create rows
    and with nothing else to say (no duplicate, no key clash): most of a first sync. Each becomes
    a record exactly as typed, with a base that is the record's own values, and needs no marks,
    writes or problems: what insert_row decides, kept column by column (field -> values in
    `idents` order) so 100k rows cost a few C-level passes instead of a decision object each."""

    idents: list[str] = field(default_factory=list)
    columns: dict[str, list[WriteValue]] = field(default_factory=dict)  # rules.checked.Checked.values_of


#: counts of a plain insert: nothing corrected, invalid, conflicting, protected or pushed
NO_COUNTS: Mapping[str, int] = MappingProxyType({"corrected": 0, "invalid": 0, "conflicts": 0, "protected": 0,
                                                 "pushed": 0})

#: base_sheet and base_store of a plain insert: sheet and store agree on exactly the values
#: inserted (read-only, so nothing can write into it by mistake)
AS_STORED: Mapping[str, str] = MappingProxyType({})


def cell_texts(cells: Mapping[str, Any]) -> dict[str, str]:
    """field -> text of each cell's value, as a base row keeps it."""
    return {n: canonical_text(c.value) for n, c in cells.items()}


def _guarded_fields(row: RowInput, live: bool) -> dict[str, dict[str, Any]] | None:
    """field -> why the sheet may not change it (protected column, read-only sheet, row scope);
    None when the row is new and the sheet may not create it."""
    guarded: dict[str, dict[str, Any]] = {f: {"code": "protected"} for f in row.protected}
    access = row.access
    if access is None:
        return guarded
    scope = access.row_scope
    if not live:
        if access.read_only:
            return None
        cell = row.cells.get(scope.field) if scope else None
        return None if scope and cell is not None and not scope.allows(cell.value) else guarded
    if access.read_only:
        return {f: {"code": "read_only"} for f in row.cells}
    if scope and scope.field in row.cells:
        why = {"code": "row_scope", "scope_field": scope.field, "scope": scope.describe()}
        if not scope.allows(row.record.get(scope.field)):
            return {f: why for f in row.cells}
        if not scope.allows(row.cells[scope.field].value):
            guarded[scope.field] = why
    return guarded


def _refuse_new_row(decision: RowDecision, row: RowInput) -> RowDecision:
    access = row.access
    scope = access.row_scope
    code = "read_only_new" if access.read_only else "row_scope_new"
    field_name = scope.field if scope and not access.read_only else next(iter(row.cells))
    params = {"key": row.ident, "scope_field": scope.field if scope else "", "scope": scope.describe() if scope else ""}
    decision.held_back = True
    decision.problems.append(Problem(code, field_name, params))
    decision.mark(field_name, "protected", {"code": code, **params})
    decision.base_sheet = {n: canonical_text(c.raw) for n, c in row.cells.items()}
    return decision


def _invalid(decision: RowDecision, row: RowInput, name: str, cell: Any, live: bool) -> None:
    decision.counts["invalid"] += 1
    decision.problems.extend(cell.problems)
    first = cell.problems[0] if cell.problems else Problem("invalid", name)
    decision.mark(name, "invalid", {"code": first.code, **dict(first.params), "field": name})
    store_text = canonical_text(row.record.get(name)) if live else ""
    decision.base_sheet[name] = canonical_text(cell.raw)
    decision.base_store[name] = store_text


def _field(decision: RowDecision, row: RowInput, name: str, cell: Any, live: bool,
           guarded: dict[str, dict[str, Any]]) -> None:
    raw_text, value_text = canonical_text(cell.raw), canonical_text(cell.value)
    base = row.base
    store_val = row.record.get(name) if live else None
    store_text = canonical_text(store_val)
    sheet_changed = base is None or raw_text != base.sheet.get(name)
    store_changed = live and (base is None or store_text != base.store.get(name, ""))
    if not live:
        _take_sheet(decision, name, cell, store_text, force=True)
    elif not sheet_changed:
        if store_changed and store_text != value_text:
            _push(decision, row, name, store_val, raw_text, "pushed", {"source": "store"})
        else:
            _take_sheet(decision, name, cell, store_text)
    elif value_text == store_text:
        _take_sheet(decision, name, cell, store_text)
    elif name in guarded and not _first_value(guarded[name], store_text):
        decision.counts["protected"] += 1
        _push(decision, row, name, store_val, raw_text, "protected", {"attempted": raw_text, **guarded[name]})
    elif not store_changed:
        _take_sheet(decision, name, cell, store_text)
    else:
        _conflict(decision, row, name, cell, store_val)


def _first_value(why: dict[str, Any], store_text: str) -> bool:
    """A protected field the store holds no value for (never validly set, e.g. its first value was
    invalid): the sheet's first valid value is no edit of a stored one, so it is taken; reverting
    it would blank the cell. Read-only sheets and row scopes stay strict."""
    return why.get("code") == "protected" and store_text == ""


def _take_sheet(decision: RowDecision, name: str, cell: Any, store_text: str, force: bool = False) -> None:
    value_text = canonical_text(cell.value)
    if force or value_text != store_text:
        decision.store_values[name] = cell.value
    if cell.outcome == "corrected":
        decision.counts["corrected"] += 1
        decision.writes[name] = cell.value
        old = canonical_text(cell.raw)
        params = {"old": old, "new": value_text, "rule": cell.rule or "normalise"}
        hidden = hidden_removed(old, value_text) if isinstance(cell.raw, str) else 0
        if "strip_controls" in params["rule"]:  # the old text cannot be shown: say what went, plainly
            params.update(code="controls_removed", count=count_controls(old))
        elif hidden:  # "changed from `Bob Smith` to `Bob Smith`" would look like nothing changed
            params.update(code="corrected_hidden", count=hidden)
        decision.mark(name, "corrected", params)
    decision.base_sheet[name] = value_text
    decision.base_store[name] = value_text


def _push(decision: RowDecision, row: RowInput, name: str, store_val: WriteValue, raw_text: str, kind: str,
          params: dict[str, Any]) -> None:
    """Write the store's value into the sheet cell (a store-side change, or a reverted edit)."""
    length = len(canonical_text(store_val))
    if length > row.max_chars:
        _too_long_to_push(decision, row, name, raw_text, length)
        return
    if kind == "pushed":
        decision.counts["pushed"] += 1
    decision.writes[name] = store_val
    decision.mark(name, kind, {"old": raw_text, "value": canonical_text(store_val), **params})
    decision.base_sheet[name] = canonical_text(store_val)
    decision.base_store[name] = canonical_text(store_val)


def _too_long_to_push(decision: RowDecision, row: RowInput, name: str, raw_text: str, length: int) -> None:
    """A cell of this sheet cannot hold the store's value (a CSV's 40,000 characters, Excel's limit
    32,767): the cell is marked and left alone, the value stays in the store, and the old base is
    kept so the next run sees the same (as for a flagged conflict) and never takes the cell's
    shorter text for an edit."""
    decision.counts["invalid"] += 1
    params = {"field": name, "length": length, "limit": row.max_chars}
    decision.problems.append(Problem("too_long_stored", name, params))
    decision.mark(name, "invalid", {"code": "too_long_stored", **params})
    decision.base_sheet[name] = row.base.sheet.get(name, raw_text) if row.base else raw_text
    decision.base_store[name] = row.base.store.get(name, "") if row.base else ""


def _conflict(decision: RowDecision, row: RowInput, name: str, cell: Any, store_val: WriteValue) -> None:
    decision.counts["conflicts"] += 1
    base_text = row.base.store.get(name, "") if row.base else ""
    params = {"sheet_value": canonical_text(cell.value), "store_value": canonical_text(store_val), "base_value": base_text,
              "policy": row.policy}
    if row.policy == "sheet":
        _take_sheet(decision, name, cell, canonical_text(store_val), force=True)
        params["kept"] = params["sheet_value"]
    elif row.policy == "store":
        _push(decision, row, name, store_val, canonical_text(cell.raw), "conflict", {})
        params["kept"] = params["store_value"]
    else:
        params["kept"] = params["store_value"]
        decision.problems.append(Problem("conflict", name, params))
        # keep the old base so the conflict is seen again until a person settles it
        if row.base is not None:
            decision.base_sheet[name] = row.base.sheet.get(name, "")
            decision.base_store[name] = row.base.store.get(name, "")
    decision.mark(name, "conflict", params)
