"""RunResult and open problems rendered for people: the report tab, the CLI summary and JSON.

The report tab is rewritten only when its content changed, so an untouched sheet costs no write:
its summary names the last run that changed something, never the current no-op run.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import messages
from .model import ReportTab, RunResult, column_letter

_HEADERS = {
    "en": ("Cell", "Row", "Field", "Problem", "Message", "Record", "Open since (UTC)"),
    "zh": ("单元格", "行", "字段", "问题", "说明", "记录", "发现时间 (UTC)"),
}
_TITLE = {"en": "sheetsync: {n} open problem(s) in this sheet; fix the cells, the next sync clears them",
          "zh": "sheetsync：本表有 {n} 个待处理问题；修改单元格后，下次同步会自动清除标记"}
_SUMMARY = {
    "en": {"changed": "Last change", "never": "no change recorded yet", "status": "Status",
           "ok": "all rows valid", "problems": "{n} open problem(s) in {rows} row(s)",
           "counts": "{inserted} added, {updated} updated, {deleted} deleted, {corrected} corrected",
           "rows": "Rows in the store", "by_code": "Open problems by kind"},
    "zh": {"changed": "最近一次变更", "never": "尚无变更记录", "status": "状态",
           "ok": "所有行均有效", "problems": "{rows} 行中共有 {n} 个待处理问题",
           "counts": "新增 {inserted}，更新 {updated}，删除 {deleted}，更正 {corrected}",
           "rows": "数据库中的行数", "by_code": "按类型统计的待处理问题"},
}
#: run counts that mean "this run changed the store or the sheet"
CHANGE_KEYS = ("inserted", "updated", "deleted", "corrected")


def problem_rows(problems: Iterable[Mapping[str, Any]], lang: str) -> list[tuple[str, ...]]:
    rows = []
    for p in problems:
        cell = f"{column_letter(p['col'])}{p['row']}" if p.get("col") and p.get("row") else ""
        params = {"field": p["field"], **p["params"]}
        opened = time.strftime("%Y-%m-%d %H:%M", time.gmtime(p["opened"])) if p.get("opened") else ""
        rows.append((cell, str(p.get("row") or ""), p["field"] or "", messages.title(p["code"], lang),
                     messages.render(p["code"], params, lang), p["ident"], opened))
    return rows


def changed_something(counts: Mapping[str, Any] | None) -> bool:
    return bool(counts) and any((counts.get(k) or 0) > 0 for k in CHANGE_KEYS)


def last_change(store: Any, layout: str, result: RunResult | None = None,
                limit: int = 500) -> tuple[float | None, Mapping[str, Any] | None]:
    """(start time, counts) of the newest run that changed something, the current one included.

    A no-op run is skipped, so a summary built from this stays byte-equal across no-op runs.
    """
    runs = store.runs(layout, limit=limit)
    if result is not None and changed_something(result.to_json()):
        started = next((r["started"] for r in runs if r["run_id"] == result.run_id), None)
        return (started if started is not None else store.clock()), result.to_json()
    for run in runs:
        if result is not None and run["run_id"] == result.run_id:
            continue
        if changed_something(run["result"]):
            return run["started"], run["result"]
    return None, None


def quality_stats(store: Any, layout: str, problems: list[Mapping[str, Any]] | None = None) -> dict[str, int]:
    """Rows of the layout, rows with an open problem and open problems: the data-quality numbers.

    The engine records them with each run's result so the HTML report can chart quality over time.
    """
    problems = store.problems(layout) if problems is None else problems
    rows = store.base_count(layout)
    bad = len({p["ident"] for p in problems if p["ident"]})  # "": the whole sheet's (delete_guard)
    return {"rows": rows, "rows_with_problems": min(bad, rows) if rows else bad, "open_problems": len(problems)}


def summary_rows(store: Any, layout: str, lang: str, problems: list[Mapping[str, Any]],
                 result: RunResult | None = None) -> list[tuple[str, ...]]:
    """The summary block at the top of the report tab: last change, status, open problems by kind."""
    words = _SUMMARY[lang]
    when, counts = last_change(store, layout, result)
    if when is None or counts is None:
        changed = words["never"]
    else:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))
        changed = f"{stamp}: " + words["counts"].format(**{k: counts.get(k) or 0 for k in CHANGE_KEYS})
    stats = quality_stats(store, layout, problems)
    status = words["problems"].format(n=len(problems), rows=stats["rows_with_problems"]) if problems else words["ok"]
    rows = [(words["changed"], changed), (words["status"], status), (words["rows"], str(stats["rows"]))]
    by_code = Counter(p["code"] for p in problems)
    if by_code:
        text = "; ".join(f"{messages.title(c, lang)} ({c}): {n}" for c, n in sorted(by_code.items()))
        rows.append((words["by_code"], text))
    return rows


def report_tab(loaded: Any, problems: list[Mapping[str, Any]], result: RunResult, store: Any) -> ReportTab | None:
    """The report tab to write, or None when there is none or it would not change.

    Layout: a title row, the summary block, an empty row, the header, one row per open problem.
    """
    layout = loaded.layout
    if not layout.report_tab:
        return None
    lang = layout.language
    rows = [(_TITLE[lang].format(n=len(problems)),),
            *summary_rows(store, loaded.name, lang, problems, result), ("",),
            _HEADERS[lang], *problem_rows(problems, lang)]
    tab = ReportTab(layout.report_tab, tuple(rows))
    written = store.get_meta(loaded.name, "report_hash")
    if written == report_hash(tab):
        return None
    return ReportTab(tab.name, tab.rows, exists=written is not None)


def tab_problem_rows(tab: ReportTab) -> list[tuple[str, ...]]:
    """The problem rows of a report tab (below its header row), for tests and readers."""
    for i, row in enumerate(tab.rows):
        if row in (_HEADERS["en"], _HEADERS["zh"]):
            return list(tab.rows[i + 1:])
    return []


def report_hash(tab: ReportTab) -> str:
    data = json.dumps([tab.name, tab.rows], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class LayoutReport:
    """What `sheetsync report` shows of one layout: its recent runs (oldest first), open
    problems and current data-quality numbers."""

    name: str
    table: str
    language: str
    store: str
    runs: tuple[dict[str, Any], ...] = ()
    problems: tuple[dict[str, Any], ...] = ()
    stats: dict[str, int] = field(default_factory=dict)
    message: str = ""


def collect_report(path: Path, runs: int = 30) -> LayoutReport:
    """Read one layout's report data from its store (read-only; a missing store is 'never synced')."""
    from .layout import store_path
    from .layout_load import load_layout
    from .store import Store
    loaded = load_layout(path)
    db = store_path(loaded)
    base = dict(name=loaded.name, table=loaded.layout.table, language=loaded.layout.language, store=str(db))
    if not db.exists():
        return LayoutReport(**base, message="never synced")
    with Store(db) as store:
        history = tuple(reversed(store.runs(loaded.name, limit=runs)))
        problems = tuple(store.problems(loaded.name))
        stats = quality_stats(store, loaded.name, list(problems))
    return LayoutReport(**base, runs=history, problems=problems, stats=stats,
                        message="" if history else "never synced")


def collect_reports(paths: Iterable[Path], runs: int = 30) -> list[LayoutReport]:
    return [collect_report(p, runs) for p in paths]


def valid_share(stats: Mapping[str, Any] | None) -> float | None:
    """Share of rows without an open problem, or None when unknown (no rows, no numbers)."""
    if not stats or not stats.get("rows"):
        return None
    return max(0.0, 1.0 - (stats.get("rows_with_problems") or 0) / stats["rows"])


def reports_text(reports: Iterable[LayoutReport]) -> str:
    """The plain-text `sheetsync report`: one block per layout."""
    blocks = []
    for rep in reports:
        if not rep.runs:
            blocks.append(f"{rep.name}: {rep.message or 'never synced'} (store {rep.store})")
            continue
        last = rep.runs[-1]
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last["started"]))
        outcomes = Counter(r["outcome"] or "running" for r in rep.runs)
        share = valid_share(rep.stats)
        lines = [f"{rep.name} (table {rep.table}): last run {last['outcome'] or 'running'} at {when}",
                 f"  runs shown: {len(rep.runs)} ("
                 + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) + ")",
                 f"  rows: {rep.stats.get('rows', 0)}, valid: "
                 + (f"{share:.1%}" if share is not None else "-")
                 + f", open problems: {len(rep.problems)}"]
        by_code = Counter(p["code"] for p in rep.problems)
        for code, n in by_code.most_common():
            lines.append(f"    {n:>5}  {code}: {messages.title(code, rep.language)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def summary_text(result: RunResult, where: str = "") -> str:
    r = result
    lines = [f"{r.layout}: {r.outcome} in {r.seconds:.2f}s (run {r.run_id})",
             f"  rows read {r.rows_read}: {r.inserted} inserted, {r.updated} updated, {r.unchanged} unchanged, "
             f"{r.deleted} deleted, {r.held_back} held back",
             f"  cells: {r.corrected} corrected, {r.invalid} invalid, {r.duplicates} duplicates, "
             f"{r.conflicts} conflicts, {r.protected} protected edits reverted",
             f"  write-back: {r.patches_applied} patches applied, {r.patches_deferred} deferred"
             + (f", {r.replayed} replayed from an earlier run" if r.replayed else "")
             + (f", {r.api_calls} API calls" if r.api_calls else "")]
    if r.message:
        lines.append(f"  {r.message}")
    if where:
        lines.append(f"  {where}")
    return "\n".join(lines)
