"""Hostile inputs: zip and XML bombs, a full-height sheet, merged and error cells, formula-looking
text, SQL in headers and values, YAML bombs and tags, catastrophic regexes, invisible characters,
output piped into a reader that went away."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest

from conftest import LAYOUT_COLUMNS, REPO, TAB, SheetFixture, customer_rows, sheetsync_cmd, store_state
from sheetsync.engine import sync_once
from sheetsync.errors import LayoutError, SourceError
from sheetsync.layout_load import load_layout
from sheetsync.store import Store

HOSTILE = Path(__file__).parent / "hostile"
SST_TYPE = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
SST_REL = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"


def plain_book(rows: list[list]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = TAB
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def rebuild(data: bytes, change: dict[str, bytes], add: dict[str, bytes] | None = None) -> bytes:
    """The same zip with some members replaced (name -> new bytes) and some added."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in src.namelist():
            z.writestr(name, change.get(name, src.read(name)))
        for name, body in (add or {}).items():
            z.writestr(name, body)
    return out.getvalue()


def with_shared_strings(sst: bytes) -> bytes:
    """A workbook whose B2 is shared string 0, taken from `sst` (e.g. an entity bomb)."""
    data = plain_book([["ID", "Name"], ["C001", "x"]])
    src = zipfile.ZipFile(io.BytesIO(data))
    sheet = src.read("xl/worksheets/sheet1.xml").replace(
        b'<c r="B2" t="inlineStr"><is><t>x</t></is></c>', b'<c r="B2" t="s"><v>0</v></c>')
    types = src.read("[Content_Types].xml").replace(
        b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="' + SST_TYPE + b'"/></Types>')
    rels = src.read("xl/_rels/workbook.xml.rels").replace(
        b"</Relationships>", b'<Relationship Id="rIdSS" Type="' + SST_REL + b'" Target="sharedStrings.xml"/>'
        b"</Relationships>")
    return rebuild(data, {"xl/worksheets/sheet1.xml": sheet, "[Content_Types].xml": types,
                          "xl/_rels/workbook.xml.rels": rels}, {"xl/sharedStrings.xml": sst})


def read_in_child(path: Path) -> tuple[str, float, int]:
    """Read the workbook in a fresh process: (outcome text, seconds, peak RSS in MiB). VmHWM, not
    ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big pytest would inherit it."""
    code = ("import sys, time\nfrom sheetsync.connectors.xlsx import XlsxConnector\n"
            "t = time.perf_counter()\ntry:\n    XlsxConnector(sys.argv[1]).read(); out = 'read'\n"
            "except Exception as exc:\n    out = type(exc).__name__ + ': ' + str(exc)\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            "print(repr((out, time.perf_counter() - t, int(hwm) // 1024)))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return eval(proc.stdout.strip().splitlines()[-1])  # our own repr of a tuple, nothing else


# -- bombs --------------------------------------------------------------------------------------

def test_zip_bomb_is_refused_before_inflating(tmp_path):
    data = rebuild(plain_book([["ID"], ["C001"]]), {}, {"xl/media/padding.bin": b"\0" * (64 << 20)})
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(data)
    assert len(data) < 1 << 20
    outcome, seconds, rss = read_in_child(path)
    assert outcome.startswith("SourceError") and "expands" in outcome and "bomb.xlsx" in outcome
    assert seconds < 2 and rss < 200


def test_zip_entries_named_with_backslashes_are_refused_before_anything_is_committed(tmp_path):
    """Some exporters name zip entries xl\\workbook.xml: calamine reads them, but nothing can write
    them back, so the run stops at the read with the reason; store and file stay untouched."""
    fx = SheetFixture("xlsx", tmp_path, customer_rows(8))
    with zipfile.ZipFile(fx.path) as src:
        entries = [(info.filename, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(fx.path, "w") as dst:
        for name, body in entries:
            dst.writestr(name.replace("/", "\\") if name.startswith("xl/") else name, body)
    before = fx.path.read_bytes()
    with pytest.raises(SourceError) as err:
        sync_once(fx.layout)
    assert "backslashes (xl\\" in str(err.value) and fx.path.name in str(err.value) and err.value.hint
    assert fx.path.read_bytes() == before
    with Store(fx.db) as store:
        assert "customers" not in store.tables() or not store.records("customers")
        assert store.outbox("customers") == []


def test_billion_laughs_in_shared_strings_is_a_quick_clear_source_error(tmp_path):
    path = tmp_path / "laughs.xlsx"
    path.write_bytes(with_shared_strings((HOSTILE / "billion_laughs_sharedStrings.xml").read_bytes()))
    outcome, seconds, rss = read_in_child(path)
    assert outcome.startswith("SourceError") and "laughs.xlsx" in outcome
    assert seconds < 2 and rss < 200


def test_billion_laughs_in_the_comments_part_is_a_source_error(tmp_path):
    """read() parses the comments part itself (to find sheetsync's notes) with defusedxml."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = TAB
    ws.append(["ID"])
    ws.append(["C001"])
    ws["A2"].comment = openpyxl.comments.Comment("hi", "me")
    buf = io.BytesIO()
    wb.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    part = next(n for n in src.namelist() if "comments" in n and n.endswith(".xml"))
    bomb = (HOSTILE / "billion_laughs_sharedStrings.xml").read_bytes()
    doctype = bomb[bomb.index(b"<!DOCTYPE"):bomb.index(b"]>") + 2].replace(b"DOCTYPE sst", b"DOCTYPE comments")
    body = src.read(part)
    body = (body.replace(b"?>", b"?>" + doctype, 1) if body.startswith(b"<?xml") else doctype + body)
    body = body.replace(b">hi<", b">&lol9;<")
    path = tmp_path / "noted.xlsx"
    path.write_bytes(rebuild(buf.getvalue(), {part: body}))
    outcome, seconds, rss = read_in_child(path)
    assert outcome.startswith("SourceError") and "noted.xlsx" in outcome, outcome
    assert seconds < 2 and rss < 200


# -- a full-height sheet ------------------------------------------------------------------------

@pytest.mark.slow
def test_a_1048576_row_csv_syncs_within_bounded_time_and_memory(tmp_path):
    cols = {"id": {"header": "ID", "required": True}, "name": {"header": "Name"},
            "email": {"header": "Email", "type": "email"}}
    sheet = SheetFixture("csv", tmp_path, [], extra={"columns": cols, "backup": {"enabled": False}})
    with open(sheet.path, "w", encoding="utf-8") as fh:
        fh.write("ID,Name,Email\n")
        fh.writelines(f"C{i:07d},Person {i},p{i}@example.com\n" for i in range(1, 1_048_576))
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB=%M", sys.executable, "-m", "sheetsync", "sync",
                           str(sheet.layout), "--json"], capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    rss_mb = int(proc.stderr.rsplit("MAXRSS_KB=", 1)[1].split()[0]) // 1024
    print(f"1,048,575 data rows: {run['seconds']:.1f} s, peak RSS {rss_mb} MiB")
    assert run["outcome"] in ("ok", "problems") and run["inserted"] == 1_048_575
    assert run["seconds"] < 300 and rss_mb < 4096


# -- odd cells ----------------------------------------------------------------------------------

def test_merged_cells_sync_without_harm(tmp_path):
    sheet = SheetFixture("xlsx", tmp_path, customer_rows(8))
    wb = openpyxl.load_workbook(sheet.path)
    wb[TAB].merge_cells("B5:B6")  # a name spanning two rows: B6 reads empty, a required field
    wb[TAB].merge_cells("C8:D8")  # C007's phone and (invalid) email merged: the email reads empty
    wb.save(sheet.path)
    res = sync_once(sheet.layout)
    assert res.outcome in ("problems", "partial")
    book = openpyxl.load_workbook(sheet.path)
    assert {"B5:B6", "C8:D8"} <= {str(r) for r in book[TAB].merged_cells.ranges}
    state = store_state(sheet.db)
    assert ("C005", "name", "required") in state["problems"]
    assert state["records"]["C004"]["name"] == "Person 4"
    assert sync_once(sheet.layout).outcome in ("problems", "partial")
    assert store_state(sheet.db)["keys_unique"]


def test_error_cells_never_clear_a_stored_value(tmp_path):
    sheet = SheetFixture("xlsx", tmp_path, customer_rows(6))
    sync_once(sheet.layout)
    wb = openpyxl.load_workbook(sheet.path)
    wb[TAB]["C3"] = "#REF!"  # openpyxl stores these two as error cells (t="e")
    wb[TAB]["D4"] = "#N/A"
    wb.save(sheet.path)
    assert wb[TAB]["C3"].data_type == "e"
    sync_once(sheet.layout)
    recs = store_state(sheet.db)["records"]
    assert recs["C002"]["phone"] == "+86 138 0002 8002" and recs["C003"]["email"] == "user3@example.com"


FORMULA_LEADS = ["=1+2", "+1+2", "-1+2", "@SUM(A1:A2)", "\t=1+2", "\0=1+2",
                 '=HYPERLINK("http://evil.example","click")', "=cmd|' /C calc'!A0"]


def push_names(sheet: SheetFixture) -> None:
    """Values set in the store (another sheet, a restore) that the next sync pushes to the sheet."""
    with Store(sheet.db) as store, store.transaction():
        for i, text in enumerate(FORMULA_LEADS, start=1):
            store.write_record("customers", f"C{i:03d}", {"name": text}, action="update", run_id="t")


def test_formula_looking_text_is_written_to_xlsx_as_text(tmp_path):
    sheet = SheetFixture("xlsx", tmp_path, customer_rows(10))
    sync_once(sheet.layout)
    push_names(sheet)
    sync_once(sheet.layout)
    sync_once(sheet.layout)
    ws = openpyxl.load_workbook(sheet.path)[TAB]
    for i, text in enumerate(FORMULA_LEADS, start=2):
        cell = ws.cell(row=i, column=2)
        assert cell.data_type == "s", (text, cell.value, cell.data_type)
        assert cell.value.strip("\t\0 ").lstrip("'").startswith(text.strip("\t\0")[:2])
    with zipfile.ZipFile(sheet.path) as z:
        assert b"<f>" not in z.read("xl/worksheets/sheet1.xml") and b"<f " not in z.read("xl/worksheets/sheet1.xml")


def test_formula_looking_text_is_written_to_google_as_string_value(tmp_path, emulator):
    sheet = SheetFixture("emulator", tmp_path, customer_rows(10), emu=emulator)
    sync_once(sheet.layout)
    push_names(sheet)
    sync_once(sheet.layout)
    sync_once(sheet.layout)
    for i, text in enumerate(FORMULA_LEADS, start=2):
        raw = emulator.raw(sheet.sid, TAB, i, 2)
        assert set(raw) == {"stringValue"}, (text, raw)


def test_sql_and_quotes_in_headers_field_names_and_values_are_stored_verbatim(tmp_path):
    evil_header = "'; DROP TABLE customers; --"
    evil_field = 'x"); DROP TABLE customers; --'
    values = ["Robert'); DROP TABLE customers;--", 'say "hi"', "`rm -rf`", "a'b\"c`d", "1 OR 1=1"]
    cols = {"id": {"header": "ID", "required": True}, evil_field: {"header": evil_header}}
    sheet = SheetFixture("csv", tmp_path, [], extra={"columns": cols, "table": "t`'\"; DROP"})
    import csv
    with open(sheet.path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["ID", evil_header]] + [[f"K{i}", v] for i, v in enumerate(values)])
    res = sync_once(sheet.layout)
    assert res.inserted == len(values)
    with Store(sheet.db) as store:
        recs = store.records("t`'\"; DROP")
        assert [recs[f"K{i}"][evil_field] for i in range(len(values))] == values
        tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "t`'\"; DROP" in tables and store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    out = sheetsync_cmd("history", "t`'\"; DROP", "K0", "--db", str(sheet.db), "--json")
    assert out.returncode == 0 and values[0] in json.loads(out.stdout)[0]["new"] or any(
        h["new"] == values[0] for h in json.loads(out.stdout))


# -- layouts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, words", [("yaml_alias_bomb.yaml", "nodes"),
                                         ("yaml_python_object.yaml", "python/object"),
                                         ("yaml_unknown_tag.yaml", "!include"),
                                         ("catastrophic_regex.yaml", "regex")])
def test_hostile_layouts_are_refused_quickly_with_a_clear_error(tmp_path, name, words):
    path = tmp_path / name
    path.write_bytes((HOSTILE / name).read_bytes())
    started = time.perf_counter()
    with pytest.raises(LayoutError) as info:
        load_layout(path)
    assert time.perf_counter() - started < 2
    assert words in str(info.value) + " ".join(i[3] for i in info.value.issues)
    assert not list(tmp_path.glob("pwned*")) and not Path("pwned-by-yaml").exists()
    proc = sheetsync_cmd("check", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and name in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("pwned*"))


EXPONENTIAL = {r"^(\d{1,3},?)+$": "1,234,567", r"^(\d\d?)+$": "12345", r"^(a+)+$": "aaa", r"(a|aa)*$": "aaa",
               r"^(\w+\s?)*$": "ab cd", r"(.*a){12}": "a" * 12, r"^.*.*.*.*x$": "abx", r"^\s*\s*\s*\s*x$": "  x",
               r"^([a-z0-9]+\.?)+@x$": "a.b@x"}


def test_exponential_patterns_are_accepted_and_run_in_linear_time():
    r"""Each backtracks for minutes in Python's `re` on a crafted cell (`^(\d{1,3},?)+$`: 11 s at 31
    characters, x1.46 per character); through RE2 a 100,000-character cell costs milliseconds."""
    from sheetsync.rules.pattern import bounded_fullmatch
    started = time.perf_counter()
    for pattern, example in EXPONENTIAL.items():
        assert bounded_fullmatch(pattern, example) and re.fullmatch(pattern, example)
        for n in (31, 1000, 100_000):
            for text in ["1" * n + "!", "a" * n + "!", "a " * (n // 2) + "!", "1," * (n // 2) + "!"]:
                assert not bounded_fullmatch(pattern, text)
    assert time.perf_counter() - started < 2


def test_a_crafted_cell_under_an_exponential_pattern_syncs_in_seconds(tmp_path):
    """The whole path in a real process: `check` accepts the layout, `sync` marks the cell."""
    import yaml
    rows = customer_rows(3)
    rows[1][1] = "1" * 40 + "a"  # a name that makes ^(\d{1,3},?)+$ backtrack ~1.46**40 steps in `re`
    sheet = SheetFixture("csv", tmp_path, rows)
    data = yaml.safe_load(sheet.layout.read_text(encoding="utf-8"))
    data["columns"]["name"]["pattern"] = r"^(\d{1,3},?)+$|^Person \d+$"
    sheet.layout.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert sheetsync_cmd("check", str(sheet.layout)).returncode == 0
    started = time.perf_counter()
    proc = sheetsync_cmd("sync", str(sheet.layout), "--json", timeout=60)
    assert time.perf_counter() - started < 30 and json.loads(proc.stdout)["invalid"] == 1
    state = store_state(sheet.db)
    assert ("C002", "name", "pattern") in state["problems"] and state["records"]["C001"]["name"] == "Person 1"


# the same answer as Python's `re` (the pattern's meaning is Python's): Unicode \d \w \s, classes with
# negated categories, flags, anchors, Chinese and full-width text
SAME_AS_PYTHON = [r"^C\d{5}$", r"^(\d{1,3},?)+$", r"[\w.]+@[\w.]+", r"^[^\W\d_]+$", r"(?i)^abc[a-z]*$",
                  r"^\s*\S+\s*$", r"^[\u4e00-\u9fff]{2,4}$", r"(?a)^\w+$", r"(?a)^\d+\s\w$", r"^.{3}$",
                  r"(?s)^.{3}$", r"^a|b$", r"^(?:ab|a)*c?$", r"^\D+$", r"[^\d\s]+", r"^\+?\d[\d ]*$",
                  r"(?i:x)Y", r"^(?P<y>\d{4})-\d{2}$", r"\A\d+\Z", r"^[\W]+$", r"^\w+$", r"[\W\d]+",
                  r"[^\S\n]+", r"^[-+.,/\\\]\[^$]+$", r"^x{2,3}?y{0,}z*?$", r"(?m)^a$\n^b$", r"(?x)^ a  b # c$",
                  r"^[a-c\u00e9\u3000]+$", r"^[^a]$", r"(?i)^[^a]$", r"(?ai)^K$", r"^\u212a$|(?i:^k$)", r"^ *$"]
ALPHABET = "aAbcKk1٣１,.-_ \t\n\u3000\u00a0中文éÉ\u212a²½ǅ\\]["


def test_patterns_give_the_answer_pythons_re_gives():
    import random
    from sheetsync.rules.pattern import bounded_fullmatch
    rnd = random.Random(12)
    texts = ["C12345", "C１２３４５", "1,234,567", "１２３", "٣٤٥", "中文名", "张三丰", "abc", "ABC", "aBcdef",
             "a b", " x ", "a\nb", "a\u3000b", "\u00a0x", "\u212a", "K", "k", "x_y", "", "a.b@c.d",
             "user@例子.中国", "ǅ", "²", "½", "2024-05", "xxy", "xxxyzz", "]", "-+.,", "aab", "abc\n"]
    texts += ["".join(rnd.choice(ALPHABET) for _ in range(rnd.randrange(7))) for _ in range(1500)]
    for pattern in SAME_AS_PYTHON:
        compiled = re.compile(pattern)
        wrong = [t for t in texts if bounded_fullmatch(pattern, t) is not (compiled.fullmatch(t) is not None)]
        assert not wrong, (pattern, wrong[:5])


@pytest.mark.parametrize("pattern, words", [(r"^(a)\1$", "back-reference"), (r"^(?=C)\w+$", "lookahead"),
                                            (r"^(?!x)\w+$", "negative lookahead"), (r"^\d++$", "possessive"),
                                            (r"^(?>ab|a)c$", "atomic group"), (r"\bC\d+\b", "word boundary"),
                                            (r"^a{2000}$", "above 1000"), (r"^((a{999}){999}){9}$", "too large")])
def test_patterns_re2_cannot_bound_are_refused_by_check_naming_the_key(tmp_path, pattern, words):
    import yaml
    sheet = SheetFixture("csv", tmp_path, customer_rows(3))
    data = yaml.safe_load(sheet.layout.read_text(encoding="utf-8"))
    data["columns"]["name"]["pattern"] = pattern
    sheet.layout.write_text(yaml.safe_dump(data), encoding="utf-8")
    proc = sheetsync_cmd("check", str(sheet.layout))
    line = next(ln for ln in proc.stdout.splitlines() if "columns.name.pattern" in ln)
    assert proc.returncode == 2 and line.startswith(f"{sheet.layout}:") and words in line and "hint:" in line


def test_invisible_and_full_width_characters_are_normalised_and_stored_safely(tmp_path):
    cols = {"id": {"header": "ID", "required": True},
            "name": {"header": "Name", "normalise": ["nfkc", "strip_invisible", "collapse_spaces", "trim"]},
            "phone": {"header": "Phone", "type": "phone"}, "email": {"header": "Email", "type": "email"},
            "raw": {"header": "Raw", "normalise": ["none"]}}
    rows = [["C001", "Zhang\u00a0\u00a0Wei\u200b", "１３８００１３８０００", "zw\u200b@example.com", "\u202egnp.exe"],
            ["C002", "\ufeffＡｃｍｅ\u3000Co", "+86\u00a0139\u00a00013\u00a09000", " A@B.CN ", "x\u200dy"]]
    sheet = SheetFixture("xlsx", tmp_path, [], extra={"columns": cols})
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = TAB
    for r in [["ID", "Name", "Phone", "Email", "Raw"], *rows]:
        ws.append(r)
    wb.save(sheet.path)
    sync_once(sheet.layout)
    recs = store_state(sheet.db)["records"]
    assert recs["C001"]["name"] == "Zhang Wei" and recs["C002"]["name"] == "Acme Co"
    assert recs["C001"]["phone"] == "+86 138 0013 8000" and recs["C002"]["phone"] == "+86 139 0013 9000"
    assert recs["C001"]["email"] == "zw@example.com" and recs["C002"]["email"] == "a@b.cn"
    assert recs["C001"]["raw"] == "\u202egnp.exe" and recs["C002"]["raw"] == "x\u200dy"  # verbatim
    ws = openpyxl.load_workbook(sheet.path)[TAB]
    assert ws["B2"].value == "Zhang Wei" and ws["C2"].value == "+86 138 0013 8000"


def test_formulas_saved_without_a_result_never_clear_a_stored_value(tmp_path):
    """openpyxl (and pandas) save a formula as <c><f>..</f><v></v></c>: no result until Excel
    recalculates. Such a cell is reported, keeps the stored value and is never "missing"."""
    sheet = SheetFixture("xlsx", tmp_path, customer_rows(6))
    sync_once(sheet.layout)
    wb = openpyxl.load_workbook(sheet.path)
    ws = wb[TAB]
    ws["C3"] = '="138"&" 0002 8002"'  # C002's phone, now worked out by a formula
    ws["B4"] = "=UPPER(\"person 3\")"  # C003's required name
    ws.append(["C007", "=B2", "+86 138 0007 8007", "user7@example.com"])  # a new row, name by formula
    wb.save(sheet.path)
    with zipfile.ZipFile(sheet.path) as z:  # no cached result in the file
        xml = z.read("xl/worksheets/sheet1.xml")  # openpyxl writes <v></v>, or <v /> with lxml
        assert b"<f>B2</f><v></v>" in xml or b"<f>B2</f><v />" in xml
    res = sync_once(sheet.layout)
    assert res.outcome == "problems" and res.updated == 0
    state = store_state(sheet.db)
    recs = state["records"]
    assert recs["C002"]["phone"] == "+86 138 0002 8002" and recs["C003"]["name"] == "Person 3"
    assert [h for h in state["history"]["C002"] + state["history"]["C003"] if h[3] == "update"] == []
    assert ("C002", "phone", "formula_uncalculated") in state["problems"]
    assert ("C003", "name", "formula_uncalculated") in state["problems"]
    assert ("C007", "name", "formula_uncalculated") in state["problems"]
    assert not any(code == "required" for _, _, code in state["problems"])
    ws = openpyxl.load_workbook(sheet.path)[TAB]  # the formulas are still formulas
    assert ws["C3"].value == '="138"&" 0002 8002"' and ws["B4"].value == '=UPPER("person 3")'
    assert "save it" in ws["C3"].comment.text and ws["C3"].comment.text.startswith("sheetsync")  # marked
    report = [str(c.value) for row in openpyxl.load_workbook(sheet.path)["sheetsync"].iter_rows() for c in row]
    assert any("=UPPER" in text and "Excel" in text for text in report)


# -- output into a closed pipe ------------------------------------------------------------------

PIPED = [["status"], ["history", "customers", "C001"], ["duplicates", "customers"], ["snapshots", "list"],
         ["export", "customers", "--format", "csv"], ["export", "customers", "--format", "json"],
         ["report"], ["sync", "--all", "--json"], ["check"]]


def synced_sheet_with_a_duplicate(tmp_path: Path, n: int = 30) -> SheetFixture:
    rows = customer_rows(n)
    rows[1][2] = rows[0][2]  # C002 has C001's phone: one open duplicate pair
    sheet = SheetFixture("csv", tmp_path, rows, extra={"dedupe": {"exact": [["phone"]]}})
    sync_once(sheet.layout)
    return sheet


def run_into(args: list[str], folder: Path, stdout: int) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "SHEETSYNC_LAYOUTS": str(folder)}
    return subprocess.run([sys.executable, "-m", "sheetsync", *args], stdout=stdout, stderr=subprocess.PIPE,
                          cwd=folder, env=env, timeout=120)


def test_every_command_ends_quietly_when_its_output_pipe_is_closed(tmp_path):
    """The reader of the pipe is gone before the command writes (`| head -1` after its line):
    exit 141 as git does, nothing on stderr, no "internal error"."""
    synced_sheet_with_a_duplicate(tmp_path)
    for args in PIPED:
        assert run_into(args, tmp_path, subprocess.PIPE).stdout.strip(), args  # it does print
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            proc = run_into(args, tmp_path, write_end)
        finally:
            os.close(write_end)
        assert (proc.returncode, proc.stderr.decode()) == (141, ""), args


def test_head_on_a_long_export_gets_its_lines_and_no_traceback(tmp_path):
    """A real `| head -n 2` in a shell, on output far bigger than a pipe's buffer."""
    synced_sheet_with_a_duplicate(tmp_path, n=3000)
    py = f"PYTHONPATH={REPO} {sys.executable} -m sheetsync"
    for fmt, first in [("csv", "key,id,name,phone,email"), ("json", "[")]:
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", f"{py} export customers --format {fmt} | head -n 2"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "SHEETSYNC_LAYOUTS": str(tmp_path)})
        assert len(proc.stdout.splitlines()) == 2 and proc.stdout.startswith(first), proc.stdout
        # 141 when head left before the export finished writing; 0 when head read it all first
        # (a race the closed-pipe test above does not leave to chance)
        assert proc.returncode in (0, 141) and proc.stderr == "", (fmt, proc.returncode, proc.stderr)


# -- control characters and over-long cells -----------------------------------------------------

ESC_NAME = "Zhang_x001B_[31mWei_x0007_"  # how Excel stores ESC and BEL in a cell: calamine reads them back
RAW_CONTROLS = set(map(chr, [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]))


def book_with(sheet: SheetFixture, cells: dict[str, str]) -> None:
    wb = openpyxl.load_workbook(sheet.path)
    for ref, text in cells.items():
        wb[TAB][ref] = text
    wb.save(sheet.path)


@pytest.mark.parametrize("lang, words", [("en", "removed 2 hidden control character(s)"),
                                         ("zh", "删除了 2 个隐藏的控制字符")])
def test_control_characters_are_removed_with_a_plain_note(tmp_path, lang, words):
    cols = {**LAYOUT_COLUMNS, "raw": {"header": "Raw", "normalise": ["none"]}}
    sheet = SheetFixture("xlsx", tmp_path, customer_rows(3), extra={"columns": cols, "language": lang})
    book_with(sheet, {"B2": ESC_NAME, "E1": "Raw", "E2": "a_x001B_b", "B3": "Li_x0000_ Na\tX"})
    sync_once(sheet.layout)
    recs = store_state(sheet.db)["records"]
    assert recs["C001"]["name"] == "Zhang[31mWei" and recs["C002"]["name"] == "Li Na X"
    assert recs["C001"]["raw"] == "a\x1bb"  # normalise: [none] keeps the cell verbatim
    cells = sheet.cells()
    text, _fill, note = cells[(2, 2)]
    assert text == "Zhang[31mWei" and words in note and "Zhang[31mWei" in note and "\x1b" not in note


def test_cli_output_shows_control_characters_escaped_never_raw(tmp_path):
    """history, duplicates (JSON lines and table), status, report, sync: cell text with ESC, BEL
    and the one-byte CSI (U+009B) reaches the terminal as \\u001b, never as a command."""
    cols = {"id": {"header": "ID", "required": True, "normalise": ["none"]},
            "name": {"header": "Name", "normalise": ["none"]}, "phone": {"header": "Phone", "type": "phone"}}
    rows = [["C1\x1b[2J", "Zhang\x07\x1b]0;pwned\x07", "13800138000"], ["C2\x9b31m", "Li", "13800138000"]]
    sheet = SheetFixture("csv", tmp_path, [], extra={"columns": cols, "dedupe": {"exact": [["phone"]]}})
    sheet._write_csv([["ID", "Name", "Phone"], *rows])
    sync_once(sheet.layout)
    sheet._write_csv([["ID", "Name", "Phone"], [rows[0][0], "Wang\x1b[5m", rows[0][2]], rows[1]])
    runs = [["history", "customers", rows[0][0]], ["duplicates", "customers"], ["duplicates", "customers", "--table"],
            ["status"], ["report"], ["sync", "--all"], ["history", "customers", rows[0][0], "--json"]]
    outputs = {}
    for args in runs:
        proc = run_into(args, tmp_path, subprocess.PIPE)
        out, err = proc.stdout.decode(), proc.stderr.decode()
        assert not RAW_CONTROLS & set(out + err), (args, out, err)
        outputs[" ".join(a for a in args if a != rows[0][0])] = out
    assert "Zhang\\u0007\\u001b]0;pwned\\u0007" in outputs["history customers"]
    assert "C2\\u009b31m" in outputs["duplicates customers"] and "C2\\u009b31m" in outputs["duplicates customers --table"]
    assert json.loads(outputs["history customers --json"])[-1]["new"] == "Wang\x1b[5m"  # JSON: the value itself


def test_export_xlsx_keeps_control_characters_and_cuts_cells_excel_cannot_hold(tmp_path):
    from python_calamine import CalamineWorkbook
    cols = {"id": {"header": "ID", "required": True}, "name": {"header": "Name", "normalise": ["none"]}}
    long = "长" * 40_000
    sheet = SheetFixture("csv", tmp_path, [["C001", "bell\x07 esc\x1b[1m"], ["C002", long]], extra={"columns": cols})
    sync_once(sheet.layout)
    out = tmp_path / "out.xlsx"
    proc = sheetsync_cmd("export", "customers", "--format", "xlsx", "--out", str(out), "--db", str(sheet.db))
    assert proc.returncode == 0 and "1 cell(s)" in proc.stderr and "32,767" in proc.stderr, proc.stderr
    rows = CalamineWorkbook.from_path(str(out)).get_sheet_by_index(0).to_python()
    assert rows[0] == ["key", "id", "name"] and rows[1][2] == "bell\x07 esc\x1b[1m"  # Excel's own _x0007_ escape: read back as stored
    assert len(rows[2][2]) == 32_767 and rows[2][2].startswith("长长") and rows[2][2].endswith("…")
    assert openpyxl.load_workbook(out).active["C3"].value.startswith("长")
    assert store_state(sheet.db)["records"]["C002"]["name"] == long  # the store keeps it whole


@pytest.mark.parametrize("kind, limit", [("xlsx", 32_767), ("emulator", 50_000)])
def test_values_longer_than_a_cell_holds_are_refused_and_the_store_keeps_the_last_valid_one(tmp_path, kind, limit, emulator):
    """A CSV layout (no limit) and a workbook or Google sheet layout share one table: a 60,000
    character name from the CSV is kept in the store and never pushed into the sheet (Excel cuts
    it, Google refuses the write); a too-long cell in the Google sheet is refused."""
    db = tmp_path / "shared.db"
    csv_sheet = SheetFixture("csv", tmp_path / "csv", customer_rows(4), extra={"store": str(db)})
    csv_sheet.layout = csv_sheet.layout.rename(csv_sheet.layout.with_name("crm.yaml"))  # a layout of its own
    sheet = SheetFixture(kind, tmp_path / kind, customer_rows(4), emu=emulator, extra={"store": str(db)})
    sync_once(csv_sheet.layout)
    sync_once(sheet.layout)
    long = "名" * 60_000
    csv_sheet.edit(3, 2, long)
    sync_once(csv_sheet.layout)
    for _ in range(2):  # the second run must not take the sheet's older text for an edit
        sync_once(sheet.layout)
        state = store_state(db)
        assert state["records"]["C002"]["name"] == long
        text, _fill, note = sheet.cells()[(3, 2)]
        assert text == "Person 2" and "60000 characters" in note and f"({limit})" in note
    if kind == "xlsx":
        return  # a workbook cell is read cut to 32,767 characters already (calamine)
    sheet.edit(4, 2, "x" * (limit + 1))
    sync_once(sheet.layout)
    state = store_state(db)
    assert state["records"]["C003"]["name"] == "Person 3" and ("C003", "name", "too_long_cell") in state["problems"]
    assert f"{limit + 1} characters" in sheet.cells()[(4, 2)][2]
