"""Tests for sheetsync.store.dedupe: block index, model, pair decisions, merge, closing problems."""
from __future__ import annotations

from pathlib import Path

import pytest

from sheetsync.store import Mark, Store

FIELDS = {"name": "string", "phone": "phone", "email": "email"}


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    ticks = iter(range(1000, 100000))
    s = Store(tmp_path / "s.db", clock=lambda: float(next(ticks)))
    s.ensure_table("客户 \"x\"", FIELDS)  # a table name that must be quoted
    with s.transaction():
        for key, name, phone, email in [("C1", "张伟", "+86 138 0013 8000", ""),
                                        ("C2", "张 伟", "+86 139 0000 8000", "zw@qq.com"),
                                        ("C3", "Bob Smith", "+1 202 555 0100", "bob@x.com")]:
            s.write_record("客户 \"x\"", key, {"name": name, "phone": phone, "email": email},
                           action="insert", run_id="r0")
    yield s
    s.close()


T = "客户 \"x\""


def test_block_index_replace_drop_and_live_candidates(store: Store) -> None:
    store.put_block_keys(T, "C1", ["phone_last4:8000", "name_cjk:张伟"])
    store.put_block_keys(T, "C2", ["phone_last4:8000", "name_cjk:张伟"])
    store.put_block_keys(T, "C3", ["phone_last4:0100"])
    assert store.candidates(T, ["phone_last4:8000"]) == {"C1", "C2"}
    assert store.candidates(T, ["phone_last4:8000", "phone_last4:0100"], exclude=["C2"]) == {"C1", "C3"}
    store.put_block_keys(T, "C2", ["name_cjk:张伟"])           # replaced, not added
    assert store.candidates(T, ["phone_last4:8000"]) == {"C1"}
    with store.transaction():
        store.delete_record(T, "C1", run_id="r1")               # soft-deleted: no longer a candidate
    assert store.candidates(T, ["name_cjk:张伟"]) == {"C2"}
    store.drop_block_keys(T, ["C2"])
    assert store.candidates(T, ["name_cjk:张伟"]) == set()
    assert store.candidates(T, []) == set()


def test_oversize_blocks_are_skipped_and_sizes_reported(store: Store) -> None:
    store.put_many_block_keys(T, {"C1": ["city:上海", "p:1"], "C2": ["city:上海"], "C3": ["city:上海"]})
    assert store.candidates(T, ["city:上海", "p:1"], max_block=2) == {"C1"}
    assert store.candidates(T, ["city:上海"], max_block=3) == {"C1", "C2", "C3"}
    assert store.block_sizes(T, top=1) == [("city:上海", 3)]
    assert store.block_sizes(T) == [("city:上海", 3), ("p:1", 1)]
    assert store.count_live(T) == 3
    assert list(store.sample_live(T, 2)) == ["C1", "C2"]


def test_model_round_trip_per_table(store: Store) -> None:
    assert store.get_dedupe_model(T) is None
    store.put_dedupe_model(T, '{"fields": ["name"]}', records=1200)
    store.put_dedupe_model("other", '{"fields": ["x"]}')
    assert store.get_dedupe_model(T) == '{"fields": ["name"]}'
    assert store.dedupe_model_records(T) == 1200
    assert store.dedupe_model_records("nothing") is None


def test_distinct_pairs_are_symmetric(store: Store) -> None:
    store.mark_distinct(T, "C2", "C1", actor="admin")
    assert store.is_distinct(T, "C1", "C2") and store.is_distinct(T, "C2", "C1")
    assert not store.is_distinct(T, "C1", "C3")
    assert not store.is_distinct("other", "C1", "C2")
    assert store.distinct_pairs(T) == {frozenset(("C1", "C2"))}
    assert store.pair_decisions(T)[0]["actor"] == "admin"


def test_merge_records_history_soft_delete_and_decision(store: Store) -> None:
    store.put_block_keys(T, "C2", ["phone_last4:8000"])
    rev = store.merge_records(T, "C1", "C2", {"name": "张伟", "phone": "+86 138 0013 8000",
                                             "email": "zw@qq.com"}, run_id="merge-1", actor="admin")
    recs = store.records(T)
    assert recs["C1"]["email"] == "zw@qq.com" and recs["C1"]["_rev"] == rev == 2
    assert recs["C2"]["_deleted"] == 1
    kept = [(h["field"], h["action"], h["new"]) for h in store.history(T, "C1")]
    assert ("email", "merge", "zw@qq.com") in kept
    dropped = [(h["action"], h["new"], h["run_id"]) for h in store.history(T, "C2")]
    assert dropped[-2:] == [("delete", "1", "merge-1"), ("merged_into", "C1", "merge-1")]
    assert store.candidates(T, ["phone_last4:8000"]) == set()
    assert store.pair_decisions(T)[0]["decision"] == "merged"
    assert not store.is_distinct(T, "C1", "C2")
    assert store.resolved_pairs(T) == {frozenset(("C1", "C2"))}


def test_merge_is_one_transaction(store: Store) -> None:
    with pytest.raises(Exception):
        store.merge_records(T, "C1", "C2", {"no such column": 1}, run_id="m")
    recs = store.records(T)
    assert recs["C2"]["_deleted"] == 0 and store.pair_decisions(T) == []


def test_close_duplicate_problems_of_one_pair_either_way(store: Store) -> None:
    def dup(ident: str, other: str, field: str = "name") -> dict:
        return {"ident": ident, "field": field, "code": "duplicate",
                "params": {"other_key": other, "other_row": 2, "reason": "same phone"}}
    with store.transaction():
        store.replace_problems("L", ["C1", "C2", "C3"], [
            dup("C2", "C1"), dup("C1", "C2", "phone"), dup("C3", "C1"),
            {"ident": "C2", "field": "email", "code": "email", "params": {}}], "r1")
        store.put_marks("L", {("C2", "name"): Mark("duplicate", "FFD8A8", "dup", None),
                              ("C3", "name"): Mark("duplicate", "FFD8A8", "dup", None),
                              ("C2", "email"): Mark("invalid", "FFC7CE", "bad", None)})
    assert store.close_duplicate_problems("L", "C1", "C2") == 2
    assert set(store.marks("L")) == {("C3", "name"), ("C2", "email")}  # the sweep clears the note
    left = {(p["ident"], p["field"], p["code"]) for p in store.problems("L")}
    assert left == {("C3", "name", "duplicate"), ("C2", "email", "email")}
    assert store.close_duplicate_problems("other layout", "C3", "C1") == 0
