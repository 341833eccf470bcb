"""Tests for sheetsync.dedupe.step: incremental fuzzy flags against a real store, across layouts."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from sheetsync.dedupe import step as dedupe_step
from sheetsync.dedupe.step import (ensure_index, fuzzy_duplicates, reindex_block_keys, load_model,
                                   merge_duplicates, rescan, rescan_with_stats)
from sheetsync.dedupe.scoring import FSModel
from sheetsync.errors import UsageError
from sheetsync.layout import Layout
from sheetsync.model import Problem
from sheetsync.store import Store

FAKE_1000 = Path(__file__).resolve().parents[2] / "shared" / "dedupe-datasets" / "splink" / "fake_1000.csv"


def layout(name: str = "crm", block_on: list[str] | None = None, **dedupe: Any) -> Layout:
    return Layout.model_validate({
        "name": name, "table": "customers", "source": {"kind": "memory", "name": name}, "key": "id",
        "columns": {"id": {}, "name": {}, "phone": {"type": "phone"}, "email": {"type": "email"},
                    "dob": {"type": "date"}},
        "dedupe": {"block_on": ["phone_last4", "name_cjk", "email_local"] if block_on is None else block_on,
                   "fields": {"name": "name", "phone": "phone", "email": "email", "dob": "date"},
                   "flag_above": 0.5, **dedupe}})


STORED = {
    "C00042": {"id": "C00042", "name": "张小伟", "phone": "+86 138 0013 8000", "email": "", "dob": "1990-03-04"},
    "C00043": {"id": "C00043", "name": "李娜", "phone": "+86 139 0000 0001", "email": "ln@qq.com", "dob": "1985-01-01"},
    "C00044": {"id": "C00044", "name": "Robert Smith", "phone": "+1 202 555 0100", "email": "bob@acme.com", "dob": ""},
}


def save(store: Store, lay: Layout, records: dict[str, dict[str, Any]]) -> None:
    """What the engine's commit does: write the records, then index them."""
    store.ensure_table(lay.table, {f: c.type for f, c in lay.columns.items()})
    ensure_index(store, lay.table, dedupe_step.config(lay))
    with store.transaction():
        for key, values in records.items():
            store.write_record(lay.table, key, values, action="insert", run_id="r0", layout=lay.name)
        reindex_block_keys(store, lay, records)


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "s.db")
    save(s, layout(), STORED)
    yield s
    s.close()


def test_new_rows_flagged_with_reason_on_the_evidence_field(store: Store) -> None:
    new = {"C00050": {"id": "C00050", "name": "张晓伟", "phone": "+86 138 0013 8000", "dob": "1990-03-07"},
           "C00051": {"id": "C00051", "name": "Robert Smyth", "email": "bob@acme.com"},
           "C00052": {"id": "C00052", "name": "王芳", "phone": "+86 137 1111 2222"}}
    got = fuzzy_duplicates(store, layout(), {"C00050": 7, "C00051": 8, "C00052": 9, "C00042": 2}, new)
    assert set(got) == {"C00050", "C00051"}
    (fld, (params, problem)), = got["C00050"].items()
    assert fld == "name"
    assert params == {"other_row": 2, "other_key": "C00042", "score": params["score"],
                      "reason": "same phone, name 0.67, dob 1 digit apart"}
    assert 0.5 <= params["score"] <= 1.0
    assert problem == Problem("duplicate", "name", params)
    params51 = next(iter(got["C00051"].values()))[0]
    assert params51["other_key"] == "C00044" and params51["other_row"] == "-"  # not on this sheet
    assert params51["reason"] == "same email, name 0.97"
    assert list(got["C00051"]) == ["name"]


def test_no_block_on_means_no_fuzzy_step(store: Store) -> None:
    new = {"C00050": {"name": "张小伟", "phone": "+86 138 0013 8000"}}
    assert fuzzy_duplicates(store, layout(block_on=[]), {}, new) == {}


def test_only_new_rows_are_compared(store: Store) -> None:
    # two near-identical stored records are not re-compared by a sync that does not touch them
    save(store, layout(), {"C00060": {"id": "C00060", "name": "李娜", "phone": "+86 139 0000 0001",
                                      "email": "ln@qq.com", "dob": "1985-01-01"}})
    unrelated = {"C00070": {"id": "C00070", "name": "赵六", "phone": "+86 186 5555 4444"}}
    assert fuzzy_duplicates(store, layout(), {}, unrelated) == {}
    # a changed row is not paired with its own stored self, only with the other record
    changed = {"C00060": dict(STORED["C00043"], id="C00060")}
    assert next(iter(fuzzy_duplicates(store, layout(), {}, changed)["C00060"].values()))[0]["other_key"] == "C00043"


def test_within_batch_the_later_row_is_flagged(store: Store) -> None:
    new = {"row:9": {"name": "陈静", "phone": "+86 150 1234 5678", "email": "cj@163.com"},
           "row:4": {"name": "陈 静", "phone": "+86 150 1234 5678", "email": "cj@163.com"}}
    got = fuzzy_duplicates(store, layout(), {"row:9": 9, "row:4": 4}, new)
    assert list(got) == ["row:9"]
    assert next(iter(got["row:9"].values()))[0]["other_row"] == 4


def test_distinct_pairs_and_deleted_records_are_not_flagged(store: Store) -> None:
    new = {"C00050": {"name": "张晓伟", "phone": "+86 138 0013 8000", "dob": "1990-03-07"}}
    store.mark_distinct("customers", "C00042", "C00050")
    assert fuzzy_duplicates(store, layout(), {}, new) == {}
    new = {"C00051": {"name": "李 娜", "email": "ln@qq.com"}}
    with store.transaction():
        store.delete_record("customers", "C00043", run_id="r1")
        reindex_block_keys(store, layout(), [], deleted=["C00043"])
    assert fuzzy_duplicates(store, layout(), {}, new) == {}


def test_index_follows_writes_and_rebuilds_for_new_rules(store: Store) -> None:
    assert dedupe_step.indexed_rules(store, "customers") == ["email_local", "name_cjk", "phone_last4"]
    with store.transaction():   # a partial update is keyed on the whole record, read back
        store.write_record("customers", "C00042", {"phone": "+86 138 0013 9999"}, action="update", run_id="r1")
        reindex_block_keys(store, layout(), {"C00042": {"phone": "+86 138 0013 9999"}})
    assert store.candidates("customers", ["phone_last4:9999", "name_cjk:张小"]) == {"C00042"}
    assert store.candidates("customers", ["phone_last4:8000"]) == set()
    wider = layout(block_on=["phone_last4", "dob_year"])
    ensure_index(store, "customers", dedupe_step.config(wider))   # union of rules, rebuilt once
    assert "dob_year" in dedupe_step.indexed_rules(store, "customers")
    assert store.candidates("customers", ["dob_year:1985", "email_local:bob"]) == {"C00043", "C00044"}


def test_a_store_from_before_the_index_is_indexed_on_first_use(tmp_path: Path) -> None:
    with Store(tmp_path / "old.db") as s:
        lay = layout()
        s.ensure_table("customers", {f: c.type for f, c in lay.columns.items()})
        with s.transaction():
            s.write_record("customers", "C00042", STORED["C00042"], action="insert", run_id="r0")
        new = {"N1": {"name": "张晓伟", "phone": "+86 138 0013 8000", "dob": "1990-03-07"}}
        got = fuzzy_duplicates(s, lay, {}, new)
        assert next(iter(got["N1"].values()))[0]["other_key"] == "C00042"


def test_two_layouts_on_one_table_dedupe_against_each_other(tmp_path: Path) -> None:
    shop = Layout.model_validate({
        "name": "shop", "table": "customers", "source": {"kind": "memory", "name": "shop"}, "key": "id",
        "columns": {"id": {}, "name": {"header": "姓名"}, "phone": {"type": "phone", "header": "手机"}},
        "dedupe": {"block_on": ["phone_last4", "name_cjk"], "flag_above": 0.5}})
    with Store(tmp_path / "s.db") as s:
        save(s, layout(), STORED)               # the CRM sheet wrote these
        save(s, shop, {"S1": {"id": "S1", "name": "王芳", "phone": "+86 137 1111 2222"}})
        got = fuzzy_duplicates(s, shop, {"S2": 3}, {"S2": {"id": "S2", "name": "张小伟", "phone": "+86 138 0013 8000"}})
        assert next(iter(got["S2"].values()))[0]["other_key"] == "C00042"
        got = fuzzy_duplicates(s, layout(), {"C9": 5}, {"C9": {"id": "C9", "name": "王 芳", "phone": "+86 137 1111 2222"}})
        params = next(iter(got["C9"].values()))[0]
        assert params["other_key"] == "S1" and params["other_row"] == "-"


def test_merge_duplicates_keeps_exact_and_one_problem_per_pair() -> None:
    def flag(other: str, fld: str, reason: str) -> dict:
        params = {"other_row": 2, "other_key": other, "reason": reason}
        return {fld: (params, Problem("duplicate", fld, params))}
    exact = {"A": flag("B", "phone", "same phone")}
    fuzzy = {"A": flag("B", "name", "same phone, name 0.9"), "C": flag("D", "name", "name 0.95"),
             "E": flag("F", "phone", "x")}
    merged = merge_duplicates(exact, {**fuzzy, "A": {**fuzzy["A"], **flag("G", "phone", "y")}})
    assert list(merged["A"]) == ["phone"] and merged["A"]["phone"][0]["reason"] == "same phone"
    assert set(merged) == {"A", "C", "E"}


def test_model_is_prior_on_a_small_table_and_weights_skip_it(store: Store) -> None:
    cfg = dedupe_step.config(layout())
    model = load_model(store, "customers", cfg)
    assert model is not None and model.iterations == 0 and store.get_dedupe_model("customers") is None
    weighted = dedupe_step.config(layout(weights={"phone": 2.0, "name": 1.0}))
    assert load_model(store, "customers", weighted) is None


def _fake_layout() -> Layout:
    return Layout.model_validate({
        "name": "fake", "table": "people", "source": {"kind": "memory", "name": "fake"}, "key": "unique_id",
        "columns": {"unique_id": {}, "first_name": {}, "surname": {}, "dob": {"type": "date"}, "city": {},
                    "email": {"type": "email"}},
        "dedupe": {"block_on": ["first_name+surname", "dob", "email", "surname_soundex+dob_year",
                                "email_local", "first_name_soundex"],
                   "fields": {"first_name": "name", "surname": "name", "dob": "date", "city": "string",
                              "email": "email"}}})


def test_fake_1000_fits_and_stores_the_model_then_scores_incrementally(tmp_path: Path) -> None:
    if not FAKE_1000.exists():
        pytest.skip("shared dedupe datasets not present")
    with open(FAKE_1000, newline="", encoding="utf-8") as fh:
        rows = {r["unique_id"]: {k: v for k, v in r.items() if k != "cluster"} for r in csv.DictReader(fh)}
        fh.seek(0)
        cluster = {r["unique_id"]: r["cluster"] for r in csv.DictReader(fh)}
    lay = _fake_layout()
    held = [k for k in rows if int(k) % 50 == 0]          # 20 rows arrive in a later sync
    with Store(tmp_path / "f.db") as s:
        save(s, lay, {k: v for k, v in rows.items() if k not in held})
        fillers = {f"z{n}": {"unique_id": f"z{n}", "first_name": f"Zed{n}", "surname": "Quux"}
                   for n in range(20)}                    # reach FIT_MIN live records
        save(s, lay, fillers)
        got = fuzzy_duplicates(s, lay, {}, {k: rows[k] for k in held})
        model = FSModel.from_json(s.get_dedupe_model("people"))
        assert model.iterations > 0 and s.dedupe_model_records("people") == 1000
        others = {i: next(iter(f.values()))[0]["other_key"] for i, f in got.items()}
        right = sum(cluster[i] == cluster.get(o) for i, o in others.items())
        assert len(others) >= 10 and right == len(others), others   # precise: every flag is true
        pairs, stats = rescan_with_stats(s, lay)
        assert stats.records == 1000 and len(pairs) > 500
        assert sum(cluster.get(p.a) == cluster.get(p.b) for p in pairs) / len(pairs) >= 0.97


def test_rescan_finds_pairs_drops_distinct_and_needs_block_on(store: Store) -> None:
    save(store, layout(), {"C00061": {"id": "C00061", "name": "张晓伟", "phone": "+86 138 0013 8000",
                                      "dob": "1990-03-07"}})
    assert [(p.a, p.b) for p in rescan(store, layout())] == [("C00061", "C00042")]
    store.mark_distinct("customers", "C00042", "C00061")
    assert rescan(store, layout()) == []
    with pytest.raises(UsageError):
        rescan(store, layout(block_on=[]))
