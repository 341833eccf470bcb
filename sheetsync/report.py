"""RunResult and open problems rendered for people: the report tab, the CLI summary and JSON.

The report tab is rewritten only when its content changed, so an untouched sheet costs no write.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping

from . import messages
from .model import ReportTab, RunResult, column_letter

_HEADERS = {
    "en": ("Cell", "Row", "Field", "Problem", "Message", "Record", "Open since (UTC)"),
    "zh": ("单元格", "行", "字段", "问题", "说明", "记录", "发现时间 (UTC)"),
}
_TITLE = {"en": "sheetsync: {n} open problem(s) in this sheet; fix the cells, the next sync clears them",
          "zh": "sheetsync：本表有 {n} 个待处理问题；修改单元格后，下次同步会自动清除标记"}


def problem_rows(problems: Iterable[Mapping[str, Any]], lang: str) -> list[tuple[str, ...]]:
    import time
    rows = []
    for p in problems:
        cell = f"{column_letter(p['col'])}{p['row']}" if p.get("col") and p.get("row") else ""
        params = {"field": p["field"], **p["params"]}
        opened = time.strftime("%Y-%m-%d %H:%M", time.gmtime(p["opened"])) if p.get("opened") else ""
        rows.append((cell, str(p.get("row") or ""), p["field"] or "", messages.title(p["code"], lang),
                     messages.render(p["code"], params, lang), p["ident"], opened))
    return rows


def report_tab(loaded: Any, problems: list[Mapping[str, Any]], result: RunResult, store: Any) -> ReportTab | None:
    """The report tab to write, or None when there is none or it would not change."""
    layout = loaded.layout
    if not layout.report_tab:
        return None
    lang = layout.language
    rows = [(_TITLE[lang].format(n=len(problems)),), _HEADERS[lang], *problem_rows(problems, lang)]
    tab = ReportTab(layout.report_tab, tuple(rows))
    if store.get_meta(loaded.name, "report_hash") == report_hash(tab):
        return None
    return tab


def report_hash(tab: ReportTab) -> str:
    data = json.dumps([tab.name, tab.rows], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


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
