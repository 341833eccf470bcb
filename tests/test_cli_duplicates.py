"""Tests for `sheetsync duplicates`: list, --json, --table, --distinct, --merge, --rescan."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sheetsync.cli.duplicates import add_duplicates_command, merged_values
from sheetsync.dedupe.step import fuzzy_duplicates
from sheetsync.errors import UsageError
from sheetsync.layout_load import load_layout
from sheetsync.store import Store

LAYOUT = """\
name: crm
table: customers
store: crm.db
source: {kind: memory, name: crm}
key: id
columns:
  id: {}
  name: {header: 姓名}
  phone: {type: phone}
  email: {type: email}
dedupe:
  exact: [[phone]]
  block_on: [phone_last4, name_cjk, email_local]
  fields: {name: name, phone: phone, email: email}
  flag_above: 0.6
"""

RECORDS = {
    "C1": {"id": "C1", "name": "张小伟", "phone": "+86 138 0013 8000", "email": None},
    "C2": {"id": "C2", "name": "张晓伟", "phone": "+86 138 0013 8000", "email": "zxw@qq.com"},
    "C3": {"id": "C3", "name": "Robert Smith", "phone": None, "email": "bob@acme.com"},
    "C4": {"id": "C4", "name": "Robert Smyth", "phone": "+1 202 555 0100", "email": "bob@acme.com"},
    "C5": {"id": "C5", "name": "王芳", "phone": "+86 137 1111 2222", "email": ""},
}


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sheetsync")
    add_duplicates_command(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture()
def layout_dir(tmp_path: Path) -> Path:
    """A synced-looking store: records, and the duplicate problems a sync opened for them."""
    (tmp_path / "crm.yaml").write_text(LAYOUT, encoding="utf-8")
    lay = load_layout(tmp_path / "crm.yaml").layout
    with Store(tmp_path / "crm.db") as store:
        store.ensure_table("customers", {f: c.type for f, c in lay.columns.items()})
        with store.transaction():
            for key, values in RECORDS.items():
                store.write_record("customers", key, values, action="insert", run_id="r0", layout="crm")
        rows = {k: n + 2 for n, k in enumerate(RECORDS)}
        new = {k: v for k, v in RECORDS.items() if k in ("C2", "C4")}
        flags = fuzzy_duplicates(store, lay, rows, new)
        problems = [{"ident": i, "field": f, "code": "duplicate", "params": params, "row": rows[i]}
                    for i, fields in flags.items() for f, (params, _) in fields.items()]
        with store.transaction():
            store.replace_problems("crm", list(RECORDS), problems, "r1")
    return tmp_path


def test_list_json_lines_json_array_and_table(layout_dir: Path, capsys: pytest.CaptureFixture) -> None:
    d = str(layout_dir)
    assert run(["duplicates", "crm", "--layouts-dir", d]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {(q["a"], q["b"]) for q in lines} == {("C2", "C1"), ("C4", "C3")}
    assert all(set(q) == {"a", "b", "score", "reason"} and 0.6 <= q["score"] <= 1 for q in lines)
    assert next(q for q in lines if q["a"] == "C4")["reason"] == "same email, name 0.97"
    assert run(["duplicates", str(layout_dir / "crm.yaml"), "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == lines
    assert run(["duplicates", "crm", "--layouts-dir", d, "--table"]) == 1
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["score", "a", "b", "reason"] and "same email" in table


def test_distinct_closes_the_pair_and_it_is_never_flagged_again(layout_dir: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    d = str(layout_dir)
    assert run(["duplicates", "crm", "--layouts-dir", d, "--distinct", "C1", "C2"]) == 0
    assert "1 open problem(s) closed" in capsys.readouterr().out
    assert run(["duplicates", "crm", "--layouts-dir", d]) == 1
    assert [json.loads(x)["a"] for x in capsys.readouterr().out.splitlines()] == ["C4"]
    lay = load_layout(layout_dir / "crm.yaml").layout
    with Store(layout_dir / "crm.db") as store:
        assert store.is_distinct("customers", "C2", "C1")
        assert fuzzy_duplicates(store, lay, {}, {"C2": RECORDS["C2"]}) == {}   # next sync: quiet
    assert run(["duplicates", "crm", "--layouts-dir", d, "--distinct", "C3", "C4"]) == 0
    assert run(["duplicates", "crm", "--layouts-dir", d]) == 0


def test_merge_keeps_a_fills_from_b_records_history_and_deletes_b(layout_dir: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    assert run(["duplicates", "crm", "--layouts-dir", str(layout_dir), "--merge", "C1", "C2"]) == 0
    assert "fields filled from C2: email" in capsys.readouterr().out
    with Store(layout_dir / "crm.db") as store:
        recs = store.records("customers")
        assert recs["C1"]["email"] == "zxw@qq.com" and recs["C1"]["name"] == "张小伟"   # A's value wins
        assert recs["C2"]["_deleted"] == 1
        assert [(h["field"], h["action"]) for h in store.history("customers", "C1")][-1] == ("email", "merge")
        assert store.history("customers", "C2")[-1]["action"] == "merged_into"
        assert store.history("customers", "C2")[-1]["new"] == "C1"
        assert {p["ident"] for p in store.problems("crm")} == {"C4"}
        assert store.pair_decisions("customers")[0]["decision"] == "merged"


def test_merge_rule_and_usage_errors(layout_dir: Path) -> None:
    assert merged_values({"a": "x", "b": "", "c": None, "d": " "}, {"a": "y", "b": "z", "c": None, "d": "w"},
                         ["a", "b", "c", "d"]) == {"b": "z", "d": "w"}
    d = str(layout_dir)
    with pytest.raises(UsageError, match="no live record 'C9'"):
        run(["duplicates", "crm", "--layouts-dir", d, "--merge", "C1", "C9"])
    with pytest.raises(UsageError, match="two records"):
        run(["duplicates", "crm", "--layouts-dir", d, "--distinct", "C1", "C1"])
    with pytest.raises(UsageError, match="not found"):
        run(["duplicates", "nope", "--layouts-dir", d])
    with pytest.raises(SystemExit):   # one action at a time
        run(["duplicates", "crm", "--merge", "C1", "C2", "--distinct", "C3", "C4"])


def test_no_store_yet_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "crm.yaml").write_text(LAYOUT, encoding="utf-8")
    with pytest.raises(UsageError, match="no store"):
        run(["duplicates", str(tmp_path / "crm.yaml")])


def test_rescan_prints_pairs_and_block_stats(layout_dir: Path, capsys: pytest.CaptureFixture) -> None:
    d = str(layout_dir)
    assert run(["duplicates", "crm", "--layouts-dir", d, "--rescan", "--json"]) == 1
    out = capsys.readouterr()
    assert {(q["a"], q["b"]) for q in json.loads(out.out)} >= {("C2", "C1"), ("C4", "C3")}
    assert "5 records" in out.err and "phone_last4:" in out.err and "largest indexed blocks" in out.err
    run(["duplicates", "crm", "--layouts-dir", d, "--distinct", "C1", "C2"])
    run(["duplicates", "crm", "--layouts-dir", d, "--distinct", "C3", "C4"])
    capsys.readouterr()
    assert run(["duplicates", "crm", "--layouts-dir", d, "--rescan", "--table"]) == 0
    assert "no open duplicate pairs" in capsys.readouterr().out
