"""`sheetsync report --html`: one self-contained page (inline CSS and SVG, no script, no fonts
or CDN) per store state, readable by a manager: runs over time, data quality, open problems.

Every text that came from a sheet or a layout is escaped; nothing here executes.
"""
from __future__ import annotations

import html
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import messages
from .model import column_letter
from .report import LayoutReport, valid_share

OUTCOME_COLOURS = {"ok": "#2e9d5b", "problems": "#e0a526", "partial": "#e8731a", "failed": "#d63a3a",
                   None: "#9aa3ad"}
MAX_TABLE_ROWS = 500
WORDS = {
    "en": {"last": "Last sync", "rows": "Rows", "valid": "Valid rows", "open": "Open problems",
           "runs": "Sync runs", "runs_note": "rows per run, coloured by outcome; line: open problems",
           "quality": "Data quality", "quality_note": "share of rows without an open problem",
           "by_code": "Open problems by rule", "table": "Open problems", "none": "No open problems.",
           "row": "row {n}", "cols": ("Cell", "Field", "Problem", "Message", "Record", "Open since"),
           "more": "{n} more not shown: see the report tab in the sheet", "never": "Never synced",
           "ok": "ok", "problems": "problems", "partial": "partial", "failed": "failed", "running": "running"},
    "zh": {"last": "最近同步", "rows": "行数", "valid": "有效行", "open": "待处理问题",
           "runs": "同步记录", "runs_note": "每次同步的行数，颜色表示结果；折线：待处理问题",
           "quality": "数据质量", "quality_note": "没有待处理问题的行所占比例",
           "by_code": "按规则统计的待处理问题", "table": "待处理问题", "none": "没有待处理问题。",
           "row": "第 {n} 行", "cols": ("单元格", "字段", "问题", "说明", "记录", "发现时间"),
           "more": "另有 {n} 条未列出：请查看表格中的报告页", "never": "尚未同步",
           "ok": "正常", "problems": "有问题", "partial": "部分完成", "failed": "失败", "running": "进行中"},
}
CSS = """
*{box-sizing:border-box}body{margin:0;background:#f4f6f8;color:#1f2933;
font:15px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC","WenQuanYi Zen Hei",sans-serif}
header{background:#1f3a5f;color:#fff;padding:20px max(32px,calc(50% - 588px))}header h1{margin:0;font-size:24px}
header p{margin:4px 0 0;opacity:.8}main{padding:8px 32px 32px;max-width:1240px;margin:0 auto}
section.layout{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.1);margin:20px 0;padding:20px 24px}
h2{margin:0 0 14px;font-size:20px}h2 small{color:#616e7c;font-weight:normal;font-size:14px;margin-left:8px}
h3{font-size:16px;margin:22px 0 8px}.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{flex:1 1 180px;border:1px solid #e4e7eb;border-radius:8px;padding:10px 14px}
.card .label{color:#616e7c;font-size:13px}.card .value{font-size:26px;font-weight:600}
.card .sub{color:#616e7c;font-size:13px}.badge{display:inline-block;padding:1px 9px;border-radius:10px;
color:#fff;font-size:13px;font-weight:600;vertical-align:middle}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px;margin-top:16px}
figure{margin:0;border:1px solid #e4e7eb;border-radius:8px;padding:10px 12px}
figcaption{font-weight:600}figcaption span{display:block;font-weight:normal;color:#616e7c;font-size:12px}
svg{width:100%;height:auto;display:block}svg text{font-size:13px;fill:#52606d}
.legend{font-size:12px;color:#52606d;margin-top:4px}.legend i{display:inline-block;width:10px;height:10px;
border-radius:2px;margin:0 4px 0 10px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;font-size:14px}th,td{text-align:left;padding:6px 8px;
border-bottom:1px solid #e4e7eb;vertical-align:top}th{background:#f0f3f6;font-weight:600}
td.cell{font-family:Menlo,Consolas,monospace;white-space:nowrap}td.when{white-space:nowrap;color:#52606d}td.title{white-space:nowrap}td.msg{word-break:break-word}
tr:nth-child(even) td{background:#fafbfc}.muted{color:#616e7c}
"""


def esc(value: Any) -> str:
    """Escape untrusted text for HTML text and attribute values (quotes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def _stamp(ts: float | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    return time.strftime(fmt, time.gmtime(ts)) if ts is not None else "-"


def run_rows(run: Mapping[str, Any]) -> int:
    """Rows the layout had at a run: the recorded number, else what the run saw or skipped."""
    r = run.get("result") or {}
    if r.get("rows") is not None:
        return int(r["rows"])
    return max(int(r.get("rows_read") or 0), int(r.get("unchanged") or 0) + int(r.get("inserted") or 0)
               + int(r.get("updated") or 0))


def quality_points(rep: LayoutReport) -> list[tuple[str, float]]:
    """(label, share of valid rows) per run that recorded its quality numbers, then 'now'."""
    points = []
    for run in rep.runs:
        share = valid_share(run.get("result"))
        if share is not None:
            points.append((_stamp(run["started"], "%m-%d %H:%M"), share))
    now = valid_share(rep.stats)
    if now is not None and (not points or points[-1][1] != now or len(points) == 1):
        points.append(("now", now))
    return points


# -- SVG charts --------------------------------------------------------------------------------

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 420, 210, 46, 26, 14, 10


def _frame(top: float, fmt: str = "{:,.0f}") -> list[str]:
    """Axes with three gridlines labelled 0, top/2, top."""
    parts = []
    for i in range(3):
        y = H - PAD_B - i * (H - PAD_B - PAD_T) / 2
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        parts.append(f'<text x="{PAD_L - 5}" y="{y + 4:.1f}" text-anchor="end">{esc(fmt.format(top * i / 2))}</text>')
    return parts


def _svg(parts: Iterable[str], label: str) -> str:
    return (f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{esc(label)}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


def runs_chart(rep: LayoutReport, words: Mapping[str, Any]) -> str:
    runs = list(rep.runs)
    if not runs:
        return f'<p class="muted">{esc(words["never"])}</p>'
    top = max(max(run_rows(r) for r in runs), 1)
    top = _nice(top)
    span = (W - PAD_L - PAD_R) / len(runs)
    bar = max(min(span * 0.7, 28), 2)
    parts = _frame(top)
    line = []
    for i, run in enumerate(runs):
        r = run.get("result") or {}
        rows = run_rows(run)
        h = (H - PAD_B - PAD_T) * rows / top
        x = PAD_L + i * span + (span - bar) / 2
        colour = OUTCOME_COLOURS.get(run["outcome"], OUTCOME_COLOURS[None])
        tip = (f'{_stamp(run["started"])}: {words.get(run["outcome"] or "running", run["outcome"])}, '
               f'{rows:,} rows, +{r.get("inserted", 0)} ~{r.get("updated", 0)} -{r.get("deleted", 0)}')
        parts.append(f'<rect x="{x:.1f}" y="{H - PAD_B - h:.1f}" width="{bar:.1f}" height="{max(h, 1):.1f}" '
                     f'rx="2" fill="{colour}"><title>{esc(tip)}</title></rect>')
        if r.get("open_problems") is not None:
            y = H - PAD_B - (H - PAD_B - PAD_T) * min(r["open_problems"], top) / top
            line.append(f"{x + bar / 2:.1f},{y:.1f}")
    if len(line) > 1:
        parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#1f3a5f" stroke-width="2"/>')
    parts += _time_labels([r["started"] for r in runs], span)
    return _svg(parts, words["runs"]) + _legend(runs, words)


def _time_labels(stamps: Sequence[float], span: float) -> list[str]:
    first, last = stamps[0], stamps[-1]
    out = [f'<text x="{PAD_L}" y="{H - 6}">{esc(_stamp(first, "%Y-%m-%d %H:%M"))}</text>']
    if len(stamps) > 1:
        out.append(f'<text x="{W - PAD_R}" y="{H - 6}" text-anchor="end">{esc(_stamp(last, "%Y-%m-%d %H:%M"))}</text>')
    return out


def _legend(runs: list[dict[str, Any]], words: Mapping[str, Any]) -> str:
    seen = Counter(r["outcome"] for r in runs)
    items = "".join(f'<i style="background:{OUTCOME_COLOURS.get(o, OUTCOME_COLOURS[None])}"></i>'
                    f'{esc(words.get(o or "running", o))} {n}' for o, n in seen.items())
    return f'<div class="legend">{items}</div>'


def quality_chart(rep: LayoutReport, words: Mapping[str, Any]) -> str:
    points = quality_points(rep)
    if not points:
        return f'<p class="muted">{esc(words["never"])}</p>'
    parts = _frame(1.0, "{:.0%}")
    span = (W - PAD_L - PAD_R - 20) / max(len(points) - 1, 1)
    xy = [(PAD_L + 10 + i * span, H - PAD_B - (H - PAD_B - PAD_T) * share) for i, (_, share) in enumerate(points)]
    if len(xy) > 1:
        area = f"{xy[0][0]:.1f},{H - PAD_B} " + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy) + f" {xy[-1][0]:.1f},{H - PAD_B}"
        parts.append(f'<polygon points="{area}" fill="#2e9d5b" fill-opacity=".12"/>')
        parts.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in xy)}" fill="none" '
                     f'stroke="#2e9d5b" stroke-width="2.5"/>')
    for (x, y), (label, share) in zip(xy, points):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#2e9d5b"><title>{esc(label)}: '
                     f'{share:.1%}</title></circle>')
    x, y = xy[-1]
    anchor, dx = ("end", -6) if len(xy) > 1 else ("start", 8)
    parts.append(f'<text x="{x + dx:.1f}" y="{max(y - 8, PAD_T + 12):.1f}" text-anchor="{anchor}" '
                 f'style="font-size:15px;font-weight:600;fill:#1f2933">{points[-1][1]:.1%}</text>')
    parts.append(f'<text x="{PAD_L + 10}" y="{H - 6}">{esc(points[0][0])}</text>')
    if len(points) > 1:
        parts.append(f'<text x="{W - PAD_R}" y="{H - 6}" text-anchor="end">{esc(points[-1][0])}</text>')
    return _svg(parts, words["quality"])


def codes_chart(rep: LayoutReport, words: Mapping[str, Any]) -> str:
    by_code = Counter(p["code"] for p in rep.problems).most_common(8)
    if not by_code:
        return f'<p class="muted">{esc(words["none"])}</p>'
    top = by_code[0][1]
    row_h = min(22, (H - 10) / len(by_code))
    label_w = 180
    parts = []
    for i, (code, n) in enumerate(by_code):
        y = 6 + i * row_h
        w = (W - label_w - 50) * n / top
        title = messages.title(code, rep.language)
        parts.append(f'<text x="{label_w - 6}" y="{y + row_h * 0.62:.1f}" text-anchor="end">{esc(_clip(title, 22))}'
                     f'<title>{esc(code)}</title></text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2:.1f}" width="{max(w, 2):.1f}" height="{row_h - 5:.1f}" rx="2" '
                     f'fill="#5b7db1"><title>{esc(code)}: {n}</title></rect>')
        parts.append(f'<text x="{label_w + w + 5:.1f}" y="{y + row_h * 0.62:.1f}">{n:,}</text>')
    return _svg(parts, words["by_code"])


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _nice(n: float) -> float:
    """Round an axis top up to 1, 2 or 5 times a power of ten."""
    step = 10 ** (len(str(int(n))) - 1)
    for m in (1, 2, 5, 10):
        if n <= m * step:
            return m * step
    return n


# -- page ----------------------------------------------------------------------------------------

def _cards(rep: LayoutReport, words: Mapping[str, Any]) -> str:
    if rep.runs:
        last = rep.runs[-1]
        outcome = last["outcome"]
        colour = OUTCOME_COLOURS.get(outcome, OUTCOME_COLOURS[None])
        last_html = (f'<div class="value"><span class="badge" style="background:{colour}">'
                     f'{esc(words.get(outcome or "running", outcome))}</span></div>'
                     f'<div class="sub">{esc(_stamp(last["started"]))}</div>')
    else:
        last_html = f'<div class="value muted">{esc(words["never"])}</div>'
    share = valid_share(rep.stats)
    rows = rep.stats.get("rows")
    cards = [(words["last"], last_html),
             (words["rows"], f'<div class="value">{"-" if rows is None else f"{rows:,}"}</div>'),
             (words["valid"], f'<div class="value">{"-" if share is None else f"{share:.1%}"}</div>'),
             (words["open"], f'<div class="value">{len(rep.problems):,}</div>')]
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{esc(label)}</div>{body}</div>' for label, body in cards) + "</div>"


def problems_table(rep: LayoutReport, words: Mapping[str, Any]) -> str:
    if not rep.problems:
        return f'<p class="muted">{esc(words["none"])}</p>'
    head = "".join(f"<th>{esc(c)}</th>" for c in words["cols"])
    body = []
    for p in rep.problems[:MAX_TABLE_ROWS]:
        cell = f"{column_letter(p['col'])}{p['row']}" if p.get("col") and p.get("row") else \
            (words["row"].format(n=p["row"]) if p.get("row") else "")
        message = messages.render(p["code"], {"field": p["field"], **p["params"]}, rep.language)
        cells = [("cell", cell), ("", p["field"]), ("title", messages.title(p["code"], rep.language)),
                 ("msg", message), ("", p["ident"]), ("when", _stamp(p.get("opened"), "%Y-%m-%d %H:%M"))]
        body.append("<tr>" + "".join(f'<td class="{k}">{esc(v)}</td>' if k else f"<td>{esc(v)}</td>"
                                     for k, v in cells) + "</tr>")
    more = len(rep.problems) - MAX_TABLE_ROWS
    tail = f'<p class="muted">{esc(words["more"].format(n=more))}</p>' if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{tail}"


def layout_section(rep: LayoutReport) -> str:
    words = WORDS.get(rep.language, WORDS["en"])
    figs = [(words["runs"], words["runs_note"], runs_chart(rep, words)),
            (words["quality"], words["quality_note"], quality_chart(rep, words)),
            (words["by_code"], "", codes_chart(rep, words))]
    charts = "".join(f"<figure><figcaption>{esc(t)}<span>{esc(n)}</span></figcaption>{body}</figure>"
                     for t, n, body in figs)
    return (f'<section class="layout" lang="{esc(rep.language)}"><h2>{esc(rep.name)}<small>{esc(rep.table)}'
            f'</small></h2>{_cards(rep, words)}<div class="charts">{charts}</div>'
            f'<h3>{esc(words["table"])} ({len(rep.problems):,})</h3>{problems_table(rep, words)}</section>')


def render_html(reports: Sequence[LayoutReport], generated: float | None = None) -> str:
    """The whole page as one string: inline CSS and SVG only."""
    when = _stamp(generated if generated is not None else time.time())
    sections = "".join(layout_section(r) for r in reports) or '<p class="muted">No layouts.</p>'
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>sheetsync report</title><style>{CSS}</style></head><body>"
            f"<header><h1>sheetsync report</h1><p>Generated {esc(when)} · {len(reports)} layout(s)</p></header>"
            f"<main>{sections}</main></body></html>\n")


def write_html(reports: Sequence[LayoutReport], path: Path, generated: float | None = None) -> Path:
    """Write the page atomically (a half-written report is never served)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(reports, generated), encoding="utf-8")
    os.replace(tmp, path)
    return path
