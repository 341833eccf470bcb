"""Fast xlsx write-back: patch the synced sheet's XML, styles and notes inside the zip directly.

Only the patched cells' bytes change (plus appended styles, notes and the report tab); every other
zip member is copied raw, so nothing openpyxl would drop is lost. `Unsupported` means "use openpyxl".
This module orchestrates; the zip is in package.py, sheet and style bytes in sheetxml.py, notes
in notes.py.
"""
from __future__ import annotations

import datetime as dt
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from defusedxml import ElementTree as DET

from ...errors import SourceError
from ...model import Patch, ReportTab, column_letter, typed_value
from .. import default_mark_colours, is_our_note, merge_note, remove_note
from .guard import DATE1904, FORMULA_MARKS
from .notes import Notes
from .package import (MAIN_NS, REL_NS, P, Package, Unsupported, esc, insert_before_close, local,
                           root_tag, set_attr)
from .sheetxml import DEFAULT_DATE, DEFAULT_DATETIME, Sheet, Styles, serial, value_cell

__all__ = ["PatchResult", "Unsupported", "direct_patch_blocker", "patch_xlsx"]


@dataclass
class PatchResult:
    data: bytes
    applied: tuple[Patch, ...]
    deferred: tuple[Patch, ...]
    prior_fills: dict[tuple[int, int], str | None] = field(default_factory=dict)


# ---------------------------------------------------------------- workbook, report tab, recalc

def workbook_part(pkg: Package) -> str:
    part = next((t for _, k, t in pkg.rels("") if k.endswith("/officeDocument")), None)
    if not part or not pkg.has(part):
        raise Unsupported("no workbook part")
    return part


def sheet_paths(pkg: Package, book: str) -> list[tuple[str, str]]:
    """(name, zip path) of every worksheet, in tab order."""
    targets = {rid: target for rid, _, target in pkg.rels(book)}
    out = []
    for el in DET.fromstring(pkg.read(book)).iter():
        if local(el.tag) == "sheet":
            rid = el.get(f"{{{REL_NS}}}id")
            out.append((el.get("name", ""), targets.get(rid or "", "")))
    return out


def write_report(pkg: Package, book: str, report: ReportTab) -> None:
    """Rewrite the report tab's cells (all inline strings), creating the tab when it is missing."""
    path = dict(sheet_paths(pkg, book)).get(report.name)
    if path is None:
        path = pkg.free_name("xl/worksheets/sheet{}.xml")
        pkg.write(path, f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns='
                        f'"{MAIN_NS}">{_report_cols(report)}<sheetData/></worksheet>'.encode())
        rid = pkg.add_rel(book, "worksheet", path)
        pkg.add_content_type(path, "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml")
        body = pkg.read(book)
        ids = [int(i) for i in re.findall(rb'<' + P + rb'sheet\s[^>]*?sheetId="(\d+)"', body)]
        p = re.match(rb"<(" + P + rb")", root_tag(body))
        entry = (b"<" + (p.group(1) if p else b"") + b'sheet name="' + esc(report.name, True)
                 + b'" sheetId="%d" xmlns:r="' % (max(ids or [0]) + 1) + REL_NS.encode()
                 + b'" r:id="' + rid.encode() + b'"/>')
        pkg.write(book, insert_before_close(body, b"sheets", entry))
    sheet = Sheet(pkg.read(path))
    rows = []
    for r, row in enumerate(report.rows, start=1):
        cells = b"".join(value_cell(sheet.prefix, f"{column_letter(c)}{r}", 0, str(text))
                         for c, text in enumerate(row, start=1) if text not in (None, ""))
        if cells:
            rows.append(b"<" + sheet.prefix + b'row r="%d">' % r + cells + b"</" + sheet.prefix + b"row>")
    body = sheet.body[:sheet.start] + b"".join(rows) + sheet.body[sheet.end:]
    width = max((len(r) for r in report.rows), default=1) or 1
    ref = f"A1:{column_letter(width)}{max(len(report.rows), 1)}".encode()
    body = re.sub(rb'(<' + P + rb'dimension\s+ref=")[^"]*"', lambda m: m.group(1) + ref + b'"', body, count=1)
    pkg.write(path, body)


def _report_cols(report: ReportTab) -> str:
    """Column widths for a new report tab, so messages are readable without resizing (a tab that
    already exists keeps the widths a person gave it). CJK characters count double."""
    widths: dict[int, int] = {1: 14}
    for row in report.rows:  # the table's rows; title and summary lines overflow to the right
        if len([t for t in row if t not in (None, "")]) <= 2:
            continue
        for c, text in enumerate(row, start=1):
            size = sum(2 if ord(ch) > 0x2E80 else 1 for ch in str(text or ""))
            widths[c] = max(widths.get(c, 8), min(size + 2, 80))
    cols = "".join(f'<col min="{c}" max="{c}" width="{w}" customWidth="1"/>' for c, w in sorted(widths.items()))
    return f"<cols>{cols}</cols>" if cols else ""


def has_formulas(pkg: Package, book: str) -> bool:
    """Does any worksheet hold a formula? Only then is a recalculation on open worth asking for:
    a workbook without formulas would make Excel ask to save on every close."""
    if any(k.endswith("/calcChain") for _, k, _ in pkg.rels(book)):
        return True
    for _, path in sheet_paths(pkg, book):
        if path and pkg.has(path) and any(m in pkg.read(path) for m in FORMULA_MARKS):
            return True
    return False


def date1904(pkg: Package, book: str) -> bool:
    """Mac Excel's 1904 date system (`<workbookPr date1904="1"/>`): serials count from 1904."""
    return DATE1904.search(pkg.read(book)) is not None


def force_recalc(pkg: Package, book: str, drop_chain: bool) -> None:
    """Values changed under formulas: ask Excel to recalculate on open (as openpyxl's files do);
    a removed formula also drops calcChain.xml, which Excel rebuilds."""
    body = pkg.read(book)
    m = re.search(rb"<" + P + rb"calcPr\b[^>]*?/?>", body)
    if m:
        tag = m.group(0)
        body = body[:m.start()] + set_attr(tag, b"fullCalcOnLoad", b"1") + body[m.end():]
    else:
        p = re.match(rb"<(" + P + rb")", root_tag(body))
        later = re.compile(rb"<" + P + rb"(?:oleSize|customWorkbookViews|pivotCaches|smartTagPr|smartTagTypes|"
                           rb"webPublishing|fileRecoveryPr|webPublishObjects|extLst)\b|</" + P + rb"workbook>")
        sheets_end = body.find(b"sheets>")
        at = later.search(body, max(sheets_end, 0))
        assert at is not None
        body = body[:at.start()] + b"<" + (p.group(1) if p else b"") + b'calcPr fullCalcOnLoad="1"/>' + body[at.start():]
    pkg.write(book, body)
    chain = next((t for _, k, t in pkg.rels(book) if k.endswith("/calcChain")), "xl/calcChain.xml")
    if drop_chain and chain and pkg.has(chain):
        pkg.drop(chain)
        folder, base = posixpath.split(book)
        rels = posixpath.join(folder, "_rels", base + ".rels")
        pkg.write(rels, re.sub(rb"<" + P + rb'Relationship\s[^>]*?/calcChain"[^>]*/>', b"", pkg.read(rels)))
        pkg.write("[Content_Types].xml", re.sub(rb"<" + P + rb'Override\s[^>]*?PartName="/' + re.escape(chain.encode())
                                                + rb'"[^>]*/>', b"", pkg.read("[Content_Types].xml")))


# ---------------------------------------------------------------- the entry point

_NOT_MARKED: Any = object()


def direct_patch_blocker(data: bytes, sheet: str | None) -> str | None:
    """Why the direct patch cannot mark this workbook at all (threaded comments on the sheet, a
    VML drawing it cannot add notes to), found by adding a note to a throwaway copy (its sheet
    and zip are never rendered) when the sheet's relationships show either; None when it can.
    read() asks, so that what the openpyxl fallback would refuse is refused before the commit."""
    try:
        pkg = Package(data)
        path = dict(sheet_paths(pkg, workbook_part(pkg))).get(sheet or "")
        kinds = {k.rsplit("/", 1)[-1] for _, k, _ in pkg.rels(path)} if path else set()
        if "threadedComment" not in kinds and ("vmlDrawing" not in kinds or "comments" in kinds):
            return None  # nothing the notes could trip on: the sheet's XML need not be inflated
        _, path, ws, _, _, notes = _open(pkg, sheet, None, "")
        notes.set("A1", "probe")
        notes.render(ws)
    except Unsupported as exc:
        return str(exc)
    except Exception:  # anything else is the read's or the write-back's own error to report
        return None
    return None


def _open(pkg: Package, sheet: str | None, report: ReportTab | None, where: str) -> tuple:
    """(workbook part, sheet part, Sheet, styles part, Styles, Notes) of the sheet to patch."""
    book = workbook_part(pkg)
    sheets = sheet_paths(pkg, book)
    name = sheet or (sheets[0][0] if sheets else "")
    path = dict(sheets).get(name)
    if path is None or not pkg.has(path):
        raise SourceError(f"no sheet named {name!r}", where=where,
                          hint="sheets in this workbook: " + ", ".join(n for n, _ in sheets))
    if any(k.endswith("/threadedComment") for _, k, _ in pkg.rels(path)):  # elsewhere: copied raw
        raise Unsupported("threaded comments on the synced sheet")  # openpyxl's guarded path decides
    if report is not None and report.name == name:
        raise SourceError("the report tab has the same name as the synced sheet", where=where,
                          hint="set a different `report_tab` name in the layout")
    ws = Sheet(pkg.read(path))
    styles_path = next((t for _, k, t in pkg.rels(book) if k.endswith("/styles")), None)
    if styles_path is None:
        raise Unsupported("a workbook without styles.xml")
    return book, path, ws, styles_path, Styles(pkg.read(styles_path)), Notes(pkg, path, ws)


def patch_xlsx(data: bytes, sheet: str | None, patches: Sequence[Patch], report: ReportTab | None,
               where: str = "") -> PatchResult:
    """Apply patches (already checked against the read) and the report tab to workbook bytes."""
    pkg = Package(data)
    book, path, ws, styles_path, styles, notes = _open(pkg, sheet, report, where)
    merged = ws.merged()
    system1904 = date1904(pkg, book)
    applied, deferred, prior = [], [], {}
    for patch in patches:
        if any(r1 <= patch.row <= r2 and c1 <= patch.col <= c2 and (patch.row, patch.col) != (r1, c1)
               for r1, c1, r2, c2 in merged):
            deferred.append(patch)
            continue
        before = _apply_one(ws, styles, notes, patch, system1904)
        if before is not _NOT_MARKED:
            prior[(patch.row, patch.col)] = before
        applied.append(patch)
    if applied:
        pkg.write(path, ws.render(notes.render(ws)))
        pkg.write(styles_path, styles.render())
        if ws.values_written and (ws.formula_removed or has_formulas(pkg, book)):
            force_recalc(pkg, book, ws.formula_removed)
    if report is not None:
        write_report(pkg, book, report)
    return PatchResult(pkg.render(), tuple(applied), tuple(deferred), prior)


def _apply_one(ws: Sheet, styles: Styles, notes: Notes, patch: Patch, system1904: bool) -> Any:
    """One patch, with the same meaning as xlsx._apply_patch; returns the prior fill of a new mark."""
    ref = f"{column_letter(patch.col)}{patch.row}"
    if patch.write and not ws.cell(patch.row, patch.col).formula:  # a formula is never overwritten
        _write_value(ws, styles, patch, system1904)
    cell = ws.cell(patch.row, patch.col)
    old_note = notes.get(ref)
    if patch.clear:
        current = styles.fill_code(cell.style)
        ours = {patch.fill.upper()} if patch.fill else default_mark_colours()
        if current is not None and current.upper() in ours:
            ws.set(patch.row, patch.col, style=styles.with_fill(cell.style, _norm(patch.restore_fill)))
        if old_note != (left := remove_note(old_note, patch.note)):
            notes.set(ref, left)
        return _NOT_MARKED
    prior: Any = _NOT_MARKED
    if patch.fill:
        if not is_our_note(old_note):
            prior = styles.fill_code(cell.style)
        ws.set(patch.row, patch.col, style=styles.with_fill(cell.style, _norm(patch.fill)))
    if patch.note:
        notes.set(ref, merge_note(old_note, patch.note))
    return prior


def _write_value(ws: Sheet, styles: Styles, patch: Patch, system1904: bool) -> None:
    """The value as the column's type: a number stays a number cell in its number format; a
    date becomes a serial in the workbook's date system, shown with the cell's date format, else
    the column's (a dated cell nearby), else ISO (yyyy-mm-dd)."""
    value = typed_value(patch.value, patch.value_type)
    if not isinstance(value, dt.date):
        ws.set(patch.row, patch.col, value=value)
        return
    style = ws.cell(patch.row, patch.col).style
    if not styles.is_date(style):
        fmt = _column_date_format(ws, styles, patch.row, patch.col)
        style = styles.with_num_fmt(style, fmt or styles.format_id(
            DEFAULT_DATETIME if isinstance(value, dt.datetime) else DEFAULT_DATE))
    ws.set(patch.row, patch.col, value=serial(value, system1904), style=style)


def _column_date_format(ws: Sheet, styles: Styles, row: int, col: int, reach: int = 20) -> int | None:
    """The number format of the nearest dated cell in the same column (the column's format)."""
    for step in range(1, reach + 1):
        for r in (row - step, row + step):
            xf = ws.peek_style(r, col)
            if xf is not None and styles.is_date(xf):
                return styles.num_fmt(xf)
    return None


def _norm(code: str | None) -> str | None:
    return code.upper() if code and "|" not in code else code
