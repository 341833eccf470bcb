"""Real-world workbooks (tests/workbooks/, origins in SOURCES.tsv) synced with a layout made from
each one's own header row, then checked part by part: schema-valid, other parts byte-identical,
cell types, number formats and formulas kept, and a second sync writes nothing.
"""
from __future__ import annotations

import csv
import datetime as dt
import shutil
import sqlite3
import statistics
import subprocess
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

import workbook_parts as wp

HERE = Path(__file__).parent
WORKBOOKS = HERE / "workbooks"
SOURCES = list(csv.DictReader((WORKBOOKS / "SOURCES.tsv").open(encoding="utf-8"), delimiter="\t"))
REPORT_TAB = "sheetsync"

# Workbooks whose sync still fails, each with its exact failure: strict xfail, so each flips to a
# pass (and must leave this list) when the fix lands. Empty now: the formula, header-picture and
# Strict cases left it when i13-typed and i13-text-parts merged; threaded comments on the synced
# sheet and WPS's VML shape are refused before the commit since the read probes the write-back.
KNOWN: dict[str, str] = {}
# Workbooks sheetsync must refuse, and a word the refusal must use to say why.
REFUSED = {"poi-SampleSS.strict.xlsx": "Strict", "calamine-issue_530.xlsx": "backslashes",
           "poi-49609.xlsx": "backslashes", "poi-64759.xlsx": "threaded comments",
           "poi-right-to-left.xlsx": "threaded comments", "poi-stress020.xlsx": "cached formula results"}


def case_id(entry: dict[str, str]) -> str:
    """The file's name; with the sheet too for a workbook synced on two of its sheets."""
    twice = sum(e["file"] == entry["file"] for e in SOURCES) > 1
    return f"{entry['file']}[{entry['sheet']}]" if twice else entry["file"]


def _case(entry: dict[str, str]) -> Any:
    reason = KNOWN.get(case_id(entry))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(entry, id=case_id(entry), marks=marks)


# -- the layout: made from the workbook's header row ---------------------------------------------

@dataclass
class Plan:
    """The generated layout and what it must do to this workbook."""

    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    corrects: dict[str, str] = field(default_factory=dict)  # cell ref -> the corrected text
    invalid: int = 0                                         # cells the rules must mark invalid
    key: list[str] = field(default_factory=list)


def _kind(values: list[Any]) -> str | None:
    """One type shared by every non-empty value of a column, else None."""
    kinds = {("bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float))
              else "datetime" if isinstance(v, dt.datetime) else "date" if isinstance(v, dt.date)
              else "text" if isinstance(v, str) else "other") for v in values}
    return kinds.pop() if len(kinds) == 1 else None


def _letter(col: int) -> str:
    out = ""
    while col:
        col, rem = divmod(col - 1, 26)
        out = chr(65 + rem) + out
    return out


def make_plan(grid: list[list[Any]], header_row: int, formulas: set[str]) -> Plan:
    """The layout for a workbook, from its header row: the key is the column with the most
    distinct filled values (rows without one, or repeating one, are held back), the text column
    with most lower-case letters is upper-cased (corrections), another text column gets a length
    pattern its longest values fail, number and date columns a maximum at their median (invalid
    marks on typed cells), booleans are typed, mixed columns plain text. A header that appears
    twice is left out, unless the row has no other: then sheetsync must refuse the layout."""
    from sheetsync.text import fold_header as fold
    header = grid[header_row - 1] if len(grid) >= header_row else []
    folded = [fold(h) if isinstance(h, str) else "" for h in header]
    unique = [j for j, f in enumerate(folded) if f and folded.count(f) == 1]
    usable = unique or [folded.index(f) for f in dict.fromkeys(folded) if f][:1]
    body = {i: r for i, r in enumerate(grid[header_row:], header_row + 1) if any(v not in ("", None) for v in r)}
    cells = {j: [(i, r[j]) for i, r in body.items() if j < len(r) and r[j] not in ("", None)] for j in usable}
    plan = Plan()
    if not usable:
        return plan
    key, kept = _key(cells)
    plan.key = [f"corpus_field_{key + 1}"]
    plan.columns[plan.key[0]] = {"header": header[key], "normalise": ["none"]}
    texts = []
    for j in usable:
        name, title, mine = f"corpus_field_{j + 1}", header[j], [(i, v) for i, v in cells[j] if i in kept]
        kind = _kind([v for _, v in cells[j]])
        if kind == "text":  # the key may be upper-cased, never given a rule that rejects it
            texts.append((sum(v != v.upper() for _, v in mine), name, j, title, mine))
        elif j == key:
            continue
        elif kind == "number":
            limit = statistics.median(v for _, v in cells[j])
            plan.columns[name] = {"header": title, "type": "number", "max": float(limit)}
            plan.invalid += sum(v > limit for _, v in mine)
        elif kind in ("date", "datetime"):
            limit = sorted(v for _, v in cells[j])[len(cells[j]) // 2]
            plan.columns[name] = {"header": title, "type": kind, "max_date": limit.isoformat()}
            plan.invalid += sum(v > limit for _, v in mine)
        else:
            plan.columns[name] = {"header": title, "type": "boolean"} if kind == "bool" else {"header": title}
    _text_rules(plan, sorted(texts, key=lambda t: -t[0]), formulas, plan.key[0])
    return plan


def _key(cells: dict[int, list[tuple[int, Any]]]) -> tuple[int, set[int]]:
    """The key column (most distinct filled values, the leftmost on a tie) and the rows a sync
    stores: those whose key is filled and not taken by a row above."""
    key = max(cells, key=lambda j: (len({canonical(v) for _, v in cells[j]}), -j))
    first: dict[str, int] = {}
    for i, v in cells[key]:
        first.setdefault(canonical(v), i)
    return key, set(first.values())


def canonical(value: Any) -> str:
    from sheetsync.model import canonical_text
    return canonical_text(value)


def _text_rules(plan: Plan, texts: list[tuple], formulas: set[str], key: str) -> None:
    """Upper-case the first text column (when it has lower case), a length pattern on the next
    that is not the key, the rest plain."""
    if texts and texts[0][0]:
        _, name, j, title, cells = texts.pop(0)
        plan.columns[name] = {"header": title, "normalise": ["upper"]}
        plan.corrects = {f"{_letter(j + 1)}{i}": v.upper() for i, v in cells
                         if v != v.upper() and f"{_letter(j + 1)}{i}" not in formulas}
    texts = [t for t in texts if t[1] != key]
    for n, (_, name, j, title, cells) in enumerate(texts):
        plan.columns[name] = {"header": title, "normalise": ["none"]}
        if n == 0 and cells:
            lengths = sorted(len(v) for _, v in cells)
            limit = lengths[len(lengths) // 2] if lengths[0] < lengths[-1] else lengths[-1] - 1
            plan.columns[name]["pattern"] = f"(?s).{{0,{limit}}}"
            plan.invalid += sum(len(v) > limit for _, v in cells)


# -- one sync of one workbook, shared by the tests below --------------------------------------------

@dataclass
class Synced:
    entry: dict[str, str]
    folder: Path
    original: bytes
    plan: Plan | None = None
    result: bytes | None = None
    second: bytes | None = None
    runs: list[Any] = field(default_factory=list)
    refusal: str | None = None
    records: int = 0
    committed: int = 0


_SYNCED: dict[str, Synced] = {}


def synced(entry: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Synced:
    """Sync the workbook twice (once per session; the LibreOffice test reuses the result)."""
    name = case_id(entry)
    if name not in _SYNCED:
        _SYNCED[name] = _sync(entry, tmp_path_factory.mktemp("corpus"))
    return _SYNCED[name]


def _sync(entry: dict[str, str], folder: Path) -> Synced:
    import python_calamine as pc
    from sheetsync.engine import sync_once
    from sheetsync.errors import SheetsyncError
    book = folder / entry["file"]
    shutil.copyfile(WORKBOOKS / entry["file"], book)
    out = Synced(entry, folder, book.read_bytes())
    layout = folder / "corpus.yaml"
    grid: list[list[Any]] = []
    formulas: set[str] = set()
    try:  # a workbook this test cannot parse (Strict Open XML) gets an empty plan: it must be refused
        grid = pc.CalamineWorkbook.from_path(str(book)).get_sheet_by_name(entry["sheet"]).to_python(
            skip_empty_area=False)
        pk = wp.parts(out.original)
        formulas = {ref for ref, c in wp.cells(pk, wp.sheet_paths(pk)[entry["sheet"]]).items() if c["formula"]}
    except (KeyError, ValueError, OSError, pc.CalamineError):
        pass
    out.plan = make_plan(grid, int(entry["header_row"]), formulas)
    source = {"kind": "xlsx", "path": book.name, "sheet": entry["sheet"], "header_row": int(entry["header_row"])}
    columns = out.plan.columns or {"unmatched": {"header": "no column of this workbook"}}  # one is required
    layout.write_text(yaml.safe_dump({"table": "corpus", "source": source, "columns": columns,
                                      "key": out.plan.key or sorted(columns), "store": "sheetsync.db"},
                                     allow_unicode=True, sort_keys=False), encoding="utf-8")
    try:
        out.runs.append(sync_once(layout))
        out.result = book.read_bytes()
        out.runs.append(sync_once(layout))
        out.second = book.read_bytes()
    except SheetsyncError as exc:
        out.refusal = str(exc)
    out.records, out.committed = _committed(folder / "sheetsync.db")
    return out


def _committed(db: Path) -> tuple[int, int]:
    """(records, everything a run commits: records, history and outbox rows) in the store."""
    if not db.exists():
        return 0, 0
    with closing(sqlite3.connect(db)) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        count = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] if t in tables else 0
                 for t in ("corpus", "_sheetsync_history", "_sheetsync_outbox")}
    return count["corpus"], sum(count.values())


# -- the checks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", [_case(e) for e in SOURCES])
def test_real_workbook_synced_faithfully(entry: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    s = synced(entry, tmp_path_factory)
    if s.refusal is not None or entry["file"] in REFUSED:
        _assert_clean_refusal(s)
        return
    run = s.runs[0]
    assert run.outcome in ("ok", "problems"), (run.outcome, run.message)
    assert s.records == run.rows_read - run.held_back > 0  # held back: no mapped cell with a valid value
    old, new = wp.parts(s.original), wp.parts(s.result)
    sheet = wp.sheet_paths(old)[entry["sheet"]]
    assert wp.sheet_paths(new)[entry["sheet"]] == sheet
    _assert_marks(s, new, sheet)
    _assert_parts(old, new, sheet)
    _assert_cells(old, new, sheet, s.plan)
    assert s.second == s.result, "the second sync of an untouched workbook changed its bytes"
    assert s.runs[1].patches_applied == 0


def _assert_clean_refusal(s: Synced) -> None:
    """A refused workbook counts only when nothing was committed and the message says where."""
    assert (s.folder / s.entry["file"]).read_bytes() == s.original
    assert s.committed == 0, f"refused after committing {s.committed} rows: {s.refusal}"
    assert s.refusal is not None, "this workbook must be refused"
    assert s.entry["file"] in s.refusal and "hint:" in s.refusal, s.refusal
    assert REFUSED.get(s.entry["file"], "") in s.refusal, s.refusal


def _assert_marks(s: Synced, new: dict[str, bytes], sheet: str) -> None:
    """The corrections are in the cells, and a note from sheetsync sits on every marked cell."""
    from sheetsync.connectors import is_our_note
    run, plan = s.runs[0], s.plan
    assert plan is not None
    assert run.corrected >= len(plan.corrects) and run.invalid >= plan.invalid, (run.corrected, run.invalid)
    values = _texts(s)
    for ref, text in plan.corrects.items():
        assert values.get(ref) == text, (ref, values.get(ref), text)
    notes = _notes(new, sheet)
    ours = sum(is_our_note(t) for t in notes.values())
    assert ours >= len(plan.corrects) + plan.invalid, (ours, len(plan.corrects), plan.invalid)
    assert REPORT_TAB in wp.sheet_paths(new)


def _texts(s: Synced) -> dict[str, str]:
    import python_calamine as pc
    grid = pc.CalamineWorkbook.from_path(str(s.folder / s.entry["file"])).get_sheet_by_name(
        s.entry["sheet"]).to_python(skip_empty_area=False)
    return {f"{_letter(c)}{r}": v for r, row in enumerate(grid, 1) for c, v in enumerate(row, 1)
            if isinstance(v, str) and v}


def _notes(pk: dict[str, bytes], sheet: str) -> dict[str, str]:
    """Cell ref -> note text, from the sheet's legacy comments part."""
    for kind, path in wp.rels(pk, sheet).values():
        if kind == "comments" and path in pk:
            return {c.get("ref"): "".join(t.text or "" for t in c.iter(f"{{{wp.MAIN}}}t"))
                    for c in wp.xml(pk[path]).iter(f"{{{wp.MAIN}}}comment")}
    return {}


def _ours(new: dict[str, bytes], sheet: str) -> set[str]:
    """The parts a sync may write: the synced sheet, its notes and their drawing, styles, the
    workbook (report tab, recalculation), the report tab and the package's indexes."""
    book = wp.workbook_part(new)
    mine = {sheet, wp.rels_part(sheet), wp.styles_part(new), book, wp.rels_part(book), "[Content_Types].xml"}
    mine |= {p for k, p in wp.rels(new, sheet).values() if k in ("comments", "vmlDrawing")}
    mine.add(wp.sheet_paths(new)[REPORT_TAB])
    return mine


def _assert_parts(old: dict[str, bytes], new: dict[str, bytes], sheet: str) -> None:
    assert set(old) <= set(new), f"parts dropped: {sorted(set(old) - set(new))}"
    mine = _ours(new, sheet)
    changed = sorted(p for p in new if p not in mine and old.get(p) != new[p])
    assert not changed, f"parts not sheetsync's changed or appeared: {changed}"
    for part in sorted(mine & set(new)):
        if old.get(part) == new[part]:
            continue
        same = wp.rows(old[part]) if part == sheet else set()
        after = wp.schema_errors(part, new[part], same)  # rows sheetsync left alone are not revalidated
        if after:  # the original's own errors are not sheetsync's doing
            before = (wp.schema_errors(part, old[part]) or set()) if part in old else set()
            assert after <= before, f"{part}: new schema errors {sorted(after - before)[:3]}"


def _assert_cells(old: dict[str, bytes], new: dict[str, bytes], sheet: str, plan: Plan | None) -> None:
    """Every value cell keeps its kind (text/number/bool/error) and number format, formulas stay."""
    before, after = wp.cells(old, sheet), wp.cells(new, sheet)
    for ref, cell in before.items():
        now = after.get(ref)
        assert now is not None, f"{ref}: the cell's value is gone"
        assert now["formula"] == cell["formula"], (ref, cell["formula"], now["formula"])
        assert now["kind"] == cell["kind"], (ref, cell["kind"], now["kind"])
        assert now["format"] == cell["format"], (ref, cell["format"], now["format"])
        if plan is None or ref not in plan.corrects:
            assert cell["kind"] == "text" or now["value"] == cell["value"], (ref, cell["value"], now["value"])


# -- LibreOffice opens every result (marker `libreoffice`: .ci/run runs it) --------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path | None, str]]:
    """Every synced workbook converted to PDF by one headless LibreOffice: case -> (pdf, log); the
    original of a result it could not open is tried too (pdf None: it fails on that as well)."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.skip("LibreOffice is not installed (apt-get install libreoffice-calc-nogui); .ci/run installs it")
    stage = tmp_path_factory.mktemp("render-in")
    results, originals = {}, {}
    for n, entry in enumerate(SOURCES):
        s = synced(entry, tmp_path_factory)
        results[case_id(entry)] = shutil.copyfile(s.folder / entry["file"], stage / f"case{n:02d}{Path(entry['file']).suffix}")
        originals[case_id(entry)] = WORKBOOKS / entry["file"]
    pdfs, log = _to_pdf(soffice, results, tmp_path_factory)
    failed = {case: originals[case] for case, pdf in pdfs.items() if not pdf.exists()}
    again, log2 = _to_pdf(soffice, failed, tmp_path_factory) if failed else ({}, "")
    return {case: (None if case in again and not again[case].exists() else pdf, log + log2)
            for case, pdf in pdfs.items()}


def _to_pdf(soffice: str, books: dict[str, Path], factory: pytest.TempPathFactory) -> tuple[dict[str, Path], str]:
    out, profile = factory.mktemp("render-out"), factory.mktemp("lo-profile").as_uri()
    done = subprocess.run([soffice, f"-env:UserInstallation={profile}", "--headless", "--norestore",
                           "--convert-to", "pdf", "--outdir", str(out), *map(str, books.values())],
                          capture_output=True, text=True, timeout=900)
    return {case: out / (book.stem + ".pdf") for case, book in books.items()}, done.stdout + done.stderr


@pytest.mark.libreoffice
@pytest.mark.parametrize("entry", [pytest.param(e, id=case_id(e)) for e in SOURCES])
def test_libreoffice_opens_the_synced_workbook(entry: dict[str, str],
                                               rendered: dict[str, tuple[Path | None, str]]) -> None:
    pdf, log = rendered[case_id(entry)]
    if pdf is None:
        pytest.skip(f"LibreOffice cannot open the original {entry['file']} either")
    assert pdf.exists(), f"LibreOffice could not convert the synced {entry['file']}: {log[-2000:]}"
    body = pdf.read_bytes()
    assert body.startswith(b"%PDF") and b"/Page" in body and len(body) > 1000
