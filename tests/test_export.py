"""Export and read_table on a real store built by syncing a hostile xlsx: formula prefix, BOM, types."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import openpyxl
import pytest

import sheetsync
import argparse

from sheetsync.cli.report import add_report_commands
from sheetsync.engine import sync_once
from sheetsync.errors import UsageError
from sheetsync.export import export_table, formula_safe

LAYOUT = """\
table: people
source: {kind: xlsx, path: people.xlsx, sheet: People}
key: id
columns:
  id: {header: ID, required: true}
  name: {header: Name}
  limit: {header: Limit, type: integer}
report_tab: null
"""
ROWS = [("P1", "=HYPERLINK(\"http://evil\",\"x\")", 10), ("P2", "+cmd|' /C calc'!A0", 20),
        ("P3", "-2+3", None), ("P4", "@SUM(1)", 5), ("P6", "王芳", 3000), ("P7", "plain", -5)]


@pytest.fixture
def db(tmp_path):
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "People"
    ws.append(["ID", "Name", "Limit"])
    for r in ROWS:
        ws.append(list(r))
        ws.cell(ws.max_row, 2).data_type = "s"  # the hostile text is text in the sheet too
    book.save(tmp_path / "people.xlsx")
    (tmp_path / "people.yaml").write_text(LAYOUT, encoding="utf-8")
    sync_once(tmp_path / "people.yaml")
    return tmp_path / "sheetsync.db"


def test_formula_safe_prefixes_only_dangerous_text():
    assert [formula_safe(v) for v in ("=1", "+1", "-1", "@a", "\tx", "\rx", "ok", "a=b", -5, None)] == \
        ["'=1", "'+1", "'-1", "'@a", "'\tx", "'\rx", "ok", "a=b", -5, None]


def test_csv_has_bom_prefix_and_key_column(db, tmp_path):
    out = tmp_path / "p.csv"
    assert export_table("people", "csv", out, db=db) == 6
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["key", "id", "name", "limit"]
    names = {r[0]: r[2] for r in rows[1:]}
    assert names["P1"].startswith("'=HYPERLINK") and names["P2"].startswith("'+cmd")
    assert names["P3"] == "'-2+3" and names["P4"] == "'@SUM(1)"
    assert names["P6"] == "王芳" and names["P7"] == "plain"
    assert {r[0]: r[3] for r in rows[1:]}["P7"] == "-5"  # a number is not text: no prefix


def test_json_keeps_values_as_they_are(db, tmp_path):
    out = tmp_path / "p.json"
    export_table("people", "json", out, db=db)
    data = {r["key"]: r for r in json.loads(out.read_text(encoding="utf-8"))}
    assert data["P1"]["name"] == "=HYPERLINK(\"http://evil\",\"x\")"
    assert data["P3"]["limit"] is None and data["P6"]["limit"] == 3000
    assert set(data["P1"]) == {"key", "id", "name", "limit"}


def test_xlsx_cells_are_text_with_prefix_never_formulas(db, tmp_path):
    out = tmp_path / "p.xlsx"
    export_table("people", "xlsx", out, db=db)
    ws = openpyxl.load_workbook(out).active
    cells = {ws.cell(r, 1).value: ws.cell(r, 3) for r in range(2, ws.max_row + 1)}
    assert cells["P1"].value.startswith("'=") and cells["P1"].data_type == "s"
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)
    assert ws.cell(1, 1).value == "key" and {ws.cell(r, 4).value for r in range(2, 8)} >= {3000, -5}


def test_read_table_and_parquet_keep_types(db, tmp_path):
    df = sheetsync.read_table("people", db=db)
    assert list(df.columns) == ["key", "id", "name", "limit"] and len(df) == 6
    assert str(df["limit"].dtype) == "Int64" and df.set_index("key").loc["P3", "limit"] is pd_na()
    out = tmp_path / "p.parquet"
    export_table("people", "parquet", out, db=db)
    import pandas as pd
    back = pd.read_parquet(out)
    assert back.set_index("key").loc["P1", "name"].startswith("=HYPERLINK")
    internal = sheetsync.read_table("people", db=db, internal=True)
    assert {"_key", "_rev", "_deleted"} <= set(internal.columns)


def pd_na():
    import pandas as pd
    return pd.NA


def test_deleted_rows_only_when_asked(db, tmp_path):
    book = openpyxl.load_workbook(tmp_path / "people.xlsx")
    book["People"].delete_rows(7)  # P7
    book.save(tmp_path / "people.xlsx")
    assert sync_once(tmp_path / "people.yaml").deleted == 1
    assert "P7" not in set(sheetsync.read_table("people", db=db)["key"])
    assert "P7" in set(sheetsync.read_table("people", db=db, include_deleted=True)["key"])


def cli(argv):
    parser = argparse.ArgumentParser()
    add_report_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_export_and_errors(db, tmp_path, capsys):
    assert cli(["export", "people", "--format", "json", "--db", str(db)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["key"] == "P1"
    out = tmp_path / "x.csv"
    assert cli(["export", "people", "--format", "csv", "--db", str(db), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")
    with pytest.raises(UsageError) as err:
        cli(["export", "nope", "--format", "csv", "--db", str(db)])
    assert err.value.exit_code == 2 and "tables: people" in err.value.hint
    with pytest.raises(UsageError):
        export_table("people", "xlsx", None, db=db)


def test_import_sheetsync_stays_light():
    code = "import sys, sheetsync; print('pandas' in sys.modules, 'sheetsync.export' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert "read_table" in sheetsync.__all__


def test_missing_pandas_names_the_extra(db, tmp_path):
    code = ("import sys; sys.modules['pandas'] = None\n"
            "import sheetsync\n"
            "from sheetsync.errors import MissingExtra\n"
            f"try:\n    sheetsync.read_table('people', db={str(db)!r})\n"
            "except MissingExtra as e:\n    print(e.hint)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'sheetsync[pandas]'" in out
