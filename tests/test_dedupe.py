"""Tests for sheetsync.dedupe: exact keys, comparators, blocking, EM and quality on fake_1000."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sheetsync.dedupe import DedupeConfig, Pair, exact_pairs

REPO = Path(__file__).resolve().parents[1]
FAKE_1000 = REPO.parent / "shared" / "dedupe-datasets" / "splink" / "fake_1000.csv"


def test_exact_pairs_across_formats_and_within_batch() -> None:
    existing = {
        "C001": {"name": "张伟", "phone": "+86 138 0013 8000", "email": "zhang@acme.cn"},
        "C002": {"name": "Bob Smith", "phone": "", "email": "Bob@Example.com "},
    }
    new = {
        "C010": {"name": "张 伟", "phone": "+86-138-0013-8000", "email": "other@acme.cn"},
        "C011": {"name": "Robert Smith", "phone": None, "email": "bob@example.com"},
        "C012": {"name": "李娜", "phone": "+86 139 0000 0000", "email": "ln@x.cn"},
        "C013": {"name": "李娜", "phone": "+86 139 0000 0000", "email": "ln@x.cn"},
    }
    pairs = exact_pairs(new, existing, [["phone"], ["email"], ["name", "email"]])
    got = {(p.a, p.b): p.reason for p in pairs}
    assert got == {
        ("C010", "C001"): "same phone",
        ("C011", "C002"): "same email",
        ("C013", "C012"): "same phone; same email; same name, email",
    }
    assert all(p.score == 1.0 for p in pairs)


def test_exact_pairs_skip_empty_keys_and_changed_self() -> None:
    existing = {"R1": {"phone": "13800138000", "email": ""}}
    new = {"R1": {"phone": "138 0013 8000", "email": ""},   # the same record, changed
           "R2": {"phone": "", "email": ""}}
    assert exact_pairs(new, existing, [["phone"], ["email"]]) == []


def test_unknown_comparator_is_a_layout_error() -> None:
    from sheetsync.errors import LayoutError
    with pytest.raises(LayoutError) as err:
        DedupeConfig(block_on=[], fields={"x": "soundslike"})
    assert "dedupe.fields.x" in str(err.value)
