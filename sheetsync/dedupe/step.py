"""The sync's fuzzy dedupe step: new and changed rows against the store's block-key index.

Incremental: only the rows a run touches are keyed, looked up and scored; the store keeps the
index (and the fitted model), so an hourly sync never re-compares the whole table.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from . import DedupeConfig, Pair, default_model, scan_pairs, fit_model, score_pairs
from ..errors import UsageError
from ..layout import Layout
from ..model import Problem

if TYPE_CHECKING:  # pragma: no cover
    from .blocking import BlockStats, Rule
    from .scoring import FSModel
    from ..store import Store

#: live records before EM is fitted (fewer: prior weights, which are cautious)
FIT_MIN = 1000
#: records read to fit the model on a huge table (oldest first)
FIT_LIMIT = 200_000
#: refit once the table has grown this many times since the stored fit
REFIT_GROWTH = 2.0

Flags = dict[str, dict[str, tuple[dict[str, Any], Problem]]]


def config(layout: Layout) -> DedupeConfig | None:
    """The layout's fuzzy dedupe settings, or None when it has no `dedupe.block_on`."""
    if not layout.dedupe.block_on:
        return None
    return DedupeConfig.from_layout(layout.dedupe, {f: c.type for f, c in layout.columns.items()})


def fuzzy_duplicates(store: "Store", layout: Layout, sheet_rows: Mapping[str, int],
                     values: Mapping[str, Mapping[str, object]]) -> Flags:
    """ident -> field -> (mark params, Problem), the shape of engine/identify.flag_exact_duplicates.

    `values`: ident -> valid normalised values of the new and changed rows. Each is compared with
    the live stored records sharing a block key and with the other rows of `values`; pairs an
    admin resolved (distinct or merged) are dropped, exact keys are left to the exact step.
    """
    cfg = config(layout)
    if cfg is None:
        return {}
    cfg = replace(cfg, exact=[])  # exact keys: the exact step checks them against the whole store
    rules = ensure_index(store, layout.table, cfg)
    if not values:
        return {}
    new = {str(i): dict(v) for i, v in values.items()}
    blocks = {b for rec in new.values() for b in _keys(rec, rules)}
    found = store.candidates(layout.table, blocks, exclude=new, max_block=cfg.max_block)
    stored = store.records(layout.table, found, include_deleted=False) if found else {}
    pairs = score_pairs(new, stored, cfg, load_model(store, layout.table, cfg))
    return flags(pairs, new, sheet_rows, cfg, store.resolved_pairs(layout.table))


def flags(pairs: Iterable[Pair], new: Mapping[str, object], sheet_rows: Mapping[str, int],
          cfg: DedupeConfig, resolved: set[frozenset[str]]) -> Flags:
    """One mark per flagged row: its best-scoring pair, on the field that carried the evidence.
    Of two new rows, the later one in the sheet is flagged, pointing at the earlier one."""
    out: Flags = {}
    for p in sorted(pairs, key=lambda p: (-p.score, p.a, p.b)):
        if frozenset((p.a, p.b)) in resolved:
            continue
        ident, other = _direction(p, new, sheet_rows)
        if ident in out:
            continue
        fld = evidence_field(p, cfg)
        params = {"other_row": sheet_rows.get(other, "-"), "other_key": other,
                  "reason": p.reason, "score": round(float(p.score), 4)}
        out[ident] = {fld: (params, Problem("duplicate", fld, params))}
    return out


def _direction(p: Pair, new: Mapping[str, object], sheet_rows: Mapping[str, int]) -> tuple[str, str]:
    if p.a in new and p.b in new:
        far = 1 << 30
        return (p.a, p.b) if sheet_rows.get(p.a, far) >= sheet_rows.get(p.b, far) else (p.b, p.a)
    return (p.a, p.b) if p.a in new else (p.b, p.a)


def evidence_field(p: Pair, cfg: DedupeConfig) -> str:
    """The first compared field that agrees or nearly agrees (level >= 2), else the first one."""
    fields = list(cfg.fields)
    return next((f for f in fields if p.levels.get(f, 0) >= 2), fields[0])


def merge_duplicates(exact: Flags, fuzzy: Flags) -> Flags:
    """Exact and fuzzy flags together; the exact one wins a field, and a fuzzy pair already
    flagged exactly (same other record) is dropped, so one pair is one problem."""
    out = {ident: dict(fields) for ident, fields in exact.items()}
    for ident, fields in fuzzy.items():
        have = out.setdefault(ident, {})
        others = {params.get("other_key") for params, _ in have.values()}
        for fld, (params, problem) in fields.items():
            if fld not in have and params.get("other_key") not in others:
                have[fld] = (params, problem)
        if not have:
            del out[ident]
    return out


# -- the block-key index -------------------------------------------------------------------------

def _scope(table: str) -> str:
    return f"dedupe:{table}"


def _compile(store: "Store", table: str, texts: Iterable[str], fields: Iterable[str]) -> list["Rule"]:
    from .blocking import compile_rule
    known = sorted(set(store.tables().get(table, {})) | set(fields))
    return [compile_rule(t, known) for t in texts]


def _keys(record: Mapping[str, object], rules: Iterable["Rule"]) -> list[str]:
    """"rule:value" block keys, as dedupe.block_keys makes them (rules compiled once)."""
    out = []
    for rule in rules:
        value = rule.key(record)
        if value:
            out.append(f"{rule.text}:{value}")
    return out


def indexed_rules(store: "Store", table: str) -> list[str]:
    text = store.get_meta(_scope(table), "block_rules")
    return list(json.loads(text)) if text else []


def ensure_index(store: "Store", table: str, cfg: DedupeConfig) -> list["Rule"]:
    """The table's index covers the union of every layout's rules on it; new rules (or a store
    from before issue 4) rebuild it once from the live records. Returns the compiled rules."""
    have = indexed_rules(store, table)
    want = sorted(set(have) | set(cfg.block_on))
    rules = _compile(store, table, want, cfg.fields)
    if want != have:
        records = store.records(table, include_deleted=False)
        with store.transaction():
            store.clear_block_keys(table)
            store.put_many_block_keys(table, {k: _keys(r, rules) for k, r in records.items()})
            store.set_meta(_scope(table), "block_rules", json.dumps(want, ensure_ascii=False))
    return rules


def reindex_block_keys(store: "Store", layout: Layout, values: Iterable[str] | Mapping[str, object],
               deleted: Iterable[str] = ()) -> None:
    """Inside the commit: re-key the records just written (read back, so a partial update is
    keyed on the whole record) and drop the keys of deleted ones. Works for a layout without
    `block_on` too, so a table shared with a deduping layout stays indexed."""
    table = layout.table
    texts = indexed_rules(store, table)
    store.drop_block_keys(table, list(deleted))
    if not texts:
        return  # nothing indexed yet: the first fuzzy_duplicates builds the whole index
    keys = [str(k) for k in values]
    records = store.records(table, keys, include_deleted=False) if keys else {}
    rules = _compile(store, table, texts, layout.columns)
    store.put_many_block_keys(table, {k: _keys(records[k], rules) if k in records else [] for k in keys})


# -- model ---------------------------------------------------------------------------------------

def load_model(store: "Store", table: str, cfg: DedupeConfig) -> "FSModel | None":
    """The stored EM model; fitted (and stored) once the table has FIT_MIN live records, refitted
    when it has grown REFIT_GROWTH times. None when the admin fixed weights in the layout."""
    from .scoring import FSModel
    if cfg.weights:
        return None
    text = store.get_dedupe_model(table)
    model = FSModel.from_json(text) if text else None
    kinds = tuple(cfg.fields[f] for f in cfg.fields)
    if model is not None and (model.fields, model.kinds) != (tuple(cfg.fields), kinds):
        model = None  # the layout's fields changed since the fit
    live = store.count_live(table)
    fitted_on = store.dedupe_model_records(table) or 0
    if live >= FIT_MIN and (model is None or live >= REFIT_GROWTH * fitted_on):
        model = fit_model(store.sample_live(table, FIT_LIMIT), cfg)
        store.put_dedupe_model(table, model.to_json(), records=live)
    return model or default_model(cfg)


# -- full re-scan (the CLI's `duplicates --rescan`) ----------------------------------------------

def rescan_with_stats(store: "Store", layout: Layout) -> tuple[list[Pair], "BlockStats"]:
    """Every live record against every other in its blocks; pairs an admin resolved are dropped."""
    cfg = config(layout)
    if cfg is None:
        raise UsageError(f"layout for table {layout.table!r} has no dedupe.block_on",
                         hint="add dedupe: block_on: [phone_last4, email_local, ...] to the layout",
                         where="dedupe.block_on")
    records = store.records(layout.table, include_deleted=False)
    fit = len(records) >= FIT_MIN and not cfg.weights
    pairs, stats = scan_pairs(records, cfg, fit=fit)
    resolved = store.resolved_pairs(layout.table)
    return [p for p in pairs if frozenset((p.a, p.b)) not in resolved], stats


def rescan(store: "Store", layout: Layout) -> list[Pair]:
    return rescan_with_stats(store, layout)[0]


def open_pairs(store: Any, layout_name: str) -> list[dict[str, Any]]:
    """One entry per open pair (a row can carry the same pair on several fields), best first."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for p in store.problems(layout_name):
        if p["code"] != "duplicate":
            continue
        params = p["params"]
        pair = {"a": p["ident"], "b": str(params.get("other_key", "")),
                "score": float(params.get("score", 1.0)), "reason": str(params.get("reason", "")),
                "row": p["row"], "other_row": params.get("other_row")}
        have = best.get((pair["a"], pair["b"]))
        if have is None or pair["score"] > have["score"]:
            best[(pair["a"], pair["b"])] = pair
    return sorted(best.values(), key=lambda q: (-q["score"], q["a"], q["b"]))
