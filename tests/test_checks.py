"""Rule classes: column types and constraints, each with a stable code, and bounded regexes."""
from __future__ import annotations

import time
from typing import Any

import pytest

from sheetsync.layout import Column, Layout
from sheetsync.rules import RULES
from sheetsync.rules.base import Ctx, Invalid
from sheetsync.rules.checks import (Compare, Max, MaxLength, Min, MinDate, MinLength, OneOf, Pattern,
                                    Required, RequiredIf, Unique)
from sheetsync.rules.pattern import UnsafePattern, bounded_fullmatch, compile_pattern
from sheetsync.rules.types import TYPES

LAYOUT = Layout.model_validate({"table": "t", "source": {"kind": "memory", "name": "m"},
                                "columns": {"x": {}}})


def convert(type_: str, raw: Any, **options: Any) -> Any:
    column = Column(type=type_, **options)
    rule = TYPES[type_](column, LAYOUT)
    text = raw if isinstance(raw, str) else str(raw)
    try:
        return rule.convert(raw, text)
    except Invalid as bad:
        return ("invalid", rule.code, bad.params)


def ctx(**options: Any) -> Ctx:
    return Ctx("x", Column(**options), LAYOUT)


def test_stable_codes_registered() -> None:
    assert {"required", "required_if", "type.integer", "type.number", "type.decimal", "type.boolean",
            "type.date", "type.datetime", "type.enum", "type.email", "type.phone", "type.url",
            "pattern", "min", "max", "min_date", "max_date", "min_length", "max_length", "one_of",
            "unique", "compare"} <= set(RULES)
    assert all(cls.title for cls in RULES.values())


def test_integer() -> None:
    assert [convert("integer", v) for v in ("1,200", "1200", "+5", "1200.00", 1200.0, 7)] == \
        [1200, 1200, 5, 1200, 1200, 7]
    for bad in ("12.5", 12.5, "1,20", "twelve", "1e3", True):
        assert convert("integer", bad)[:2] == ("invalid", "type.integer"), bad


def test_number_and_decimal() -> None:
    assert convert("number", "1,234.5") == 1234.5
    assert convert("number", 3) == 3.0
    assert convert("number", "nan")[1] == "type.number"
    assert convert("decimal", "12.345", decimals=2) == "12.35"
    assert convert("decimal", 0.1, decimals=2) == "0.10"
    assert convert("decimal", "1,000.5") == "1000.5"
    assert convert("decimal", "1.2.3")[1] == "type.decimal"


def test_boolean() -> None:
    assert [convert("boolean", v) for v in ("yes", "Y", "是", "0", "FALSE", True)] == \
        [True, True, True, False, False, True]
    assert convert("boolean", "ja", true_values=["ja"]) is True
    assert convert("boolean", "maybe")[1] == "type.boolean"


def test_dates() -> None:
    assert convert("date", "5 Mar 2024") == "2024-03-05"
    assert convert("date", "45356") == "2024-03-05"  # numeric text is a serial in a date column
    assert convert("date", 45356.0) == "2024-03-05"
    assert convert("date", "2024-02-30")[1] == "type.date"
    assert convert("date", "04/03/2024", day_first=True) == "2024-03-04"
    assert convert("datetime", "2024年3月5日 10:30") == "2024-03-05 10:30:00"
    assert convert("datetime", "soon")[1] == "type.datetime"


def test_enum_exact_synonym_fuzzy_and_ambiguous() -> None:
    opts = {"values": ["VIP", "Gold", "Standard"], "synonyms": {"贵宾": "VIP", "金卡": "Gold"}}
    assert [convert("enum", v, **opts) for v in ("vip", " gold", "ＧＯＬＤ", "贵宾", "Gld", "Standrad")] == \
        ["VIP", "Gold", "Gold", "VIP", "Gold", "Standard"]
    bad = convert("enum", "Platinum", **opts)
    assert bad[:2] == ("invalid", "type.enum") and bad[2]["expected"] == "VIP, Gold, Standard"
    ambiguous = convert("enum", "Bxx", values=["Axx", "Cxx"], fuzzy=0.6)
    assert ambiguous[1] == "type.enum" and ambiguous[2]["suggestions"] == ["Axx", "Cxx"]
    assert convert("enum", "Gld", fuzzy=1.0, values=["Gold"])[1] == "type.enum"


def test_email() -> None:
    assert convert("email", "Bob.Smith@Acme.COM") == "bob.smith@acme.com"
    assert convert("email", "mailto:x@y.cn") == "x@y.cn"
    assert convert("email", "王@例子.中国") == "王@例子.中国"
    for bad in ("bob@@acme", "bob@acme", "bob smith@acme.com", "@acme.com", "bob@acme.com.", "a..b@c.com"):
        assert convert("email", bad)[1] == "type.email", bad


def test_phone_uses_column_then_layout_region_and_format() -> None:
    assert convert("phone", "13800138000") == "+86 138 0013 8000"
    assert convert("phone", "13800138000", format="E164") == "+8613800138000"
    assert convert("phone", "020 7946 0958", region="GB") == "+44 20 7946 0958"
    bad = convert("phone", "123")
    assert bad[1] == "type.phone" and bad[2] == {"region": "CN"}


def test_url() -> None:
    assert convert("url", "www.acme.cn") == "https://www.acme.cn"
    assert convert("url", "HTTP://Acme.CN/Path?q=1") == "http://acme.cn/Path?q=1"
    for bad in ("ftp://acme.cn", "javascript:alert(1)", "http://", "not a url", "acme"):
        assert convert("url", bad)[1] == "type.url", bad


def test_formula_text_stays_text() -> None:
    assert convert("string", "=cmd|' /C calc'!A0") == "=cmd|' /C calc'!A0"


def test_constraints() -> None:
    c = ctx()
    assert Required().check(None, c).code == "required"
    assert Required().check("x", c) is None
    assert Pattern(r"^C\d{5}$").check("C12345", c) is None
    p = Pattern(r"^C\d{5}$").check("X1", c)
    assert (p.code, p.params["value"], p.params["pattern"]) == ("pattern", "X1", r"^C\d{5}$")
    assert Min(Min.prepare(0)).check(-1, c).params["limit"] == 0
    assert Max(Max.prepare(10)).check(10, c) is None
    assert Max(Max.prepare(10)).check("10.5", c).code == "max"
    assert MinDate(MinDate.prepare("2000-01-01")).check("1999-12-31", c).params["limit"] == "2000-01-01"
    assert MinLength(2).check("a", c).params == {"field": "x", "value": "a", "limit": 2, "length": 1}
    assert MaxLength(3).check("abcd", c).code == "max_length"
    assert OneOf(["North", "South"]).check("north", c) is None
    assert OneOf(["North", "South"]).check("East", c).params["expected"] == "North, South"
    assert Unique().check("a@b.cn", Ctx("x", Column(), LAYOUT, taken={"a@b.cn": "C00001"})).params["other"] == "C00001"


def test_required_if_and_compare_use_the_row() -> None:
    rule = RequiredIf("tier", one_of=["VIP", "Gold"])
    assert rule.check(None, Ctx("email", Column(), LAYOUT, row={"tier": "VIP"})).params["other_value"] == "VIP"
    assert rule.check(None, Ctx("email", Column(), LAYOUT, row={"tier": "Standard"})) is None
    assert RequiredIf("tier", not_empty=True).check("", Ctx("e", Column(), LAYOUT, row={"tier": "x"})).code == "required_if"
    cmp = Compare("end", ">=", "start")
    row = {"start": "2024-03-05"}
    assert cmp.check("2024-03-01", Ctx("end", Column(), LAYOUT, row=row)).code == "compare"
    assert cmp.check("2024-03-05", Ctx("end", Column(), LAYOUT, row=row)) is None
    assert Compare("a", "<", "b").check(9, Ctx("a", Column(), LAYOUT, row={"b": 10})) is None
    assert Compare("a", "<", "b").check("9", Ctx("a", Column(), LAYOUT, row={"b": "10.5"})) is None
    assert cmp.check("2024-03-01", Ctx("end", Column(), LAYOUT, row={"start": None})) is None


@pytest.mark.parametrize("pattern", [r"^(a+)+$", r"(a*)*", r"(a|a)*", r"(a|ab)*c", r"((ab)+)*",
                                     r"(x+x+)+y", r"^(\d+)*$", r"(.*a){20}", r"^C\d{5}$", r"(\w+\.)*\w+",
                                     r"(-\d+)*", r"(\d{3}-)*", r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", r"(ab|cd)*",
                                     r"\d+(\.\d+)?"])
def test_any_pattern_without_backtracking_features_is_allowed_and_linear(pattern: str) -> None:
    compile_pattern(pattern)
    start = time.perf_counter()
    assert not bounded_fullmatch(pattern, "a" * 100_000 + "!")
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)a", r"a(?<!b)", r"(a)?(?(1)a|b)", r"a*+", r"(?>a)", r"\ba"])
def test_patterns_needing_backtracking_are_refused(pattern: str) -> None:
    with pytest.raises(UnsafePattern, match="hint: "):
        compile_pattern(pattern)


def test_long_text_is_matched_whole() -> None:
    assert bounded_fullmatch(r".*", "x" * 100_000)
    assert not bounded_fullmatch(r"x*", "x" * 100_000 + "y")
