"""`sheetsync duplicates LAYOUT`: list open duplicate pairs, merge or keep apart a pair, re-scan.

A pair is resolved only by an admin's word: `--merge A B` keeps A (B fills A's empty fields,
history records it, B is soft-deleted), `--distinct A B` means never flag the pair again.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

from ..errors import UsageError


def add_duplicates_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand on cli/__init__.py's `add_subparsers()` object."""
    help_ = "open duplicate pairs of a layout; merge or keep apart a pair; full re-scan"
    sp = subparsers.add_parser("duplicates", help=help_, description=help_)
    sp.set_defaults(func=cmd_duplicates)
    sp.add_argument("layout", help="layout file, or a name in the layouts folder")
    out = sp.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON array (default: JSON lines)")
    out.add_argument("--table", action="store_true", help="print an aligned table for people")
    act = sp.add_mutually_exclusive_group()
    act.add_argument("--merge", nargs=2, metavar=("A", "B"),
                     help="keep record A; B fills A's empty fields; B is deleted (sheets follow on the next sync)")
    act.add_argument("--distinct", nargs=2, metavar=("A", "B"), help="A and B are different: never flag them again")
    act.add_argument("--rescan", action="store_true",
                     help="compare every stored record (slow on big tables); prints block sizes")
    sp.add_argument("--layouts-dir", default=None, help="layouts folder (default ./layouts or $SHEETSYNC_LAYOUTS)")
    return sp


def cmd_duplicates(args: argparse.Namespace) -> int:
    from .layouts import resolve_layouts
    from ..dedupe.step import open_pairs
    from ..layout import store_path
    from ..layout_load import load_layout
    from ..store import Store
    loaded = load_layout(resolve_layouts([args.layout], False, args.layouts_dir)[0])
    path = store_path(loaded)
    if not path.exists():
        raise UsageError(f"no store at {path}", hint=f"run `sheetsync sync {args.layout}` first")
    with Store(path) as store:
        if args.merge:
            return _merge(store, loaded, *args.merge)
        if args.distinct:
            return _distinct(store, loaded, *args.distinct)
        if args.rescan:
            return _rescan(store, loaded, args)
        pairs = open_pairs(store, loaded.name)
    _print_pairs(pairs, args)
    return 1 if pairs else 0


def _print_pairs(pairs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    public = [{k: q[k] for k in ("a", "b", "score", "reason")} for q in pairs]
    if args.json:
        print(json.dumps(public, ensure_ascii=False, indent=2))
    elif args.table:
        print(_table(pairs))
    else:
        for q in public:
            print(json.dumps(q, ensure_ascii=False))


def _table(pairs: list[dict[str, Any]]) -> str:
    if not pairs:
        return "no open duplicate pairs"
    wa = max(len("a"), *(len(q["a"]) for q in pairs))
    wb = max(len("b"), *(len(q["b"]) for q in pairs))
    lines = [f"{'score':>6}  {'a':<{wa}}  {'b':<{wb}}  reason"]
    lines += [f"{q['score']:>6.3f}  {q['a']:<{wa}}  {q['b']:<{wb}}  {q['reason']}" for q in pairs]
    return "\n".join(lines)


def _live(store: Any, table: str, a: str, b: str) -> dict[str, dict[str, Any]]:
    if a == b:
        raise UsageError(f"{a!r} twice: a pair needs two records", hint="name two different record keys")
    found = store.records(table, [a, b], include_deleted=False)
    missing = [k for k in (a, b) if k not in found]
    if missing:
        raise UsageError(f"no live record {missing[0]!r} in table {table!r}",
                         hint="use the keys `sheetsync duplicates LAYOUT` lists (a and b)")
    return found


def merged_values(keep: dict[str, Any], drop: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """The merge rule: keep's non-empty values win; drop fills keep's empty fields."""
    empty = lambda v: v is None or (isinstance(v, str) and not v.strip())  # noqa: E731
    return {f: drop.get(f) for f in fields if empty(keep.get(f)) and not empty(drop.get(f))}


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _merge(store: Any, loaded: Any, keep: str, drop: str) -> int:
    table = loaded.layout.table
    found = _live(store, table, keep, drop)
    fields = [f for f in loaded.layout.columns if f in store.tables().get(table, {})]
    values = merged_values(found[keep], found[drop], fields)
    from ..engine.lease import new_run_id
    run_id = new_run_id(time.time(), "merge")
    with store.transaction():
        store.merge_records(table, keep, drop, values, run_id, actor=_actor(), layout=loaded.name)
        store.close_duplicate_problems(loaded.name, keep, drop)
    filled = ", ".join(values) or "none"
    print(f"merged {drop} into {keep} (fields filled from {drop}: {filled}); {drop} deleted. "
          f"The sheet follows on the next sync.")
    return 0


def _distinct(store: Any, loaded: Any, a: str, b: str) -> int:
    _live(store, loaded.layout.table, a, b)
    with store.transaction():
        store.mark_distinct(loaded.layout.table, a, b, actor=_actor())
        closed = store.close_duplicate_problems(loaded.name, a, b)
    print(f"{a} and {b} are distinct: never flagged again ({closed} open problem(s) closed)")
    return 0


def _rescan(store: Any, loaded: Any, args: argparse.Namespace) -> int:
    from ..dedupe.step import rescan_with_stats
    started = time.perf_counter()
    found, stats = rescan_with_stats(store, loaded.layout)
    seconds = time.perf_counter() - started
    pairs = [{"a": p.a, "b": p.b, "score": p.score, "reason": p.reason} for p in found]
    pairs.sort(key=lambda q: (-q["score"], q["a"], q["b"]))
    _print_pairs(pairs, args)
    summary = [stats.summary(), f"  {len(pairs)} pairs flagged in {seconds:.1f} s"]
    sizes = store.block_sizes(loaded.layout.table, top=5)
    if sizes:
        summary.append("  largest indexed blocks: " + ", ".join(f"{b} ({n})" for b, n in sizes))
    print("\n".join(summary), file=sys.stdout if args.table else sys.stderr)
    return 1 if pairs else 0
