"""Messages: every code in English and Chinese, rendered with its documented params; never crashes."""
from __future__ import annotations

import string

from sheetsync import messages
from sheetsync.messages import PARAMS, TEMPLATES, render, title
from sheetsync.rules import RULES

ENGINE_CODES = {"corrected", "duplicate", "conflict", "conflict_row", "protected", "pushed",
                "deleted", "held_back", "merged_away", "merged_edited"}


def test_every_rule_and_engine_code_has_both_languages() -> None:
    rule_codes = set(RULES)
    assert rule_codes | ENGINE_CODES <= set(TEMPLATES)
    for code, (t_en, t_zh, en, zh) in TEMPLATES.items():
        assert t_en and t_zh and en and zh and en != zh, code
        # both languages use the same params, so the engine passes one set
        fields = [{f for _, f, _, _ in string.Formatter().parse(t) if f} for t in (en, zh)]
        assert fields[0] == fields[1], code


def test_every_code_renders_with_its_documented_params() -> None:
    for code, params in PARAMS.items():
        filled = {p: f"<{p}>" for p in params}
        for lang in ("en", "zh"):
            text = render(code, filled, lang)
            assert "?" not in text and "{" not in text, (code, lang, text)
            assert all(f"<{p}>" in text for p in params), (code, lang)


def test_examples_from_the_design() -> None:
    assert render("type.email", {"field": "email", "value": "bob@@acme"}) == \
        "email: `bob@@acme` is not a valid address"
    assert render("type.email", {"field": "邮箱", "value": "bob@@acme"}, "zh") == \
        "邮箱：`bob@@acme` 不是有效的地址"
    assert render("corrected", {"field": "phone", "old": "138 0013 8000", "new": "+86 138 0013 8000",
                                "rule": "phone"}) == \
        "changed from `138 0013 8000` to `+86 138 0013 8000` by sheetsync (rule: phone)"
    assert render("duplicate", {"other_row": 12, "other_key": "C00042", "reason": "same phone"}) == \
        "possible duplicate of row 12 (C00042): same phone"
    assert render("protected", {"field": "credit_limit", "attempted": "9000", "value": 5000}) == \
        "credit_limit is protected: the edit `9000` was reverted to `5000`"
    assert render("pushed", {"old": "a", "new": "b", "source": "restore"}) == \
        "updated from the store (restore): was `a`"


def test_missing_params_and_unknown_codes_do_not_crash() -> None:
    assert render("type.email", {}) == "?: `?` is not a valid address"
    assert render("no.such.code", {"b": 2, "a": 1}) == "no.such.code: a=1, b=2"
    assert render("no.such.code", None, "zh") == "no.such.code"
    assert title("no.such.code") == "no.such.code"


def test_suggestions_lists_and_long_values() -> None:
    text = render("type.enum", {"field": "tier", "value": "Gx", "expected": ["VIP", "Gold"],
                                "suggestions": ["Gold"]})
    assert text == "tier: `Gx` is not one of VIP, Gold (closest: Gold)"
    zh = render("type.enum", {"field": "等级", "value": "Gx", "expected": "VIP, Gold", "suggestions": []}, "zh")
    assert zh == "等级：`Gx` 不是允许的值（VIP, Gold）"
    long = render("type.email", {"field": "e", "value": "x" * 500})
    assert len(long) < 120 and "…" in long


def test_layout_message_overrides_and_braces_in_values_are_inert() -> None:
    assert render("compare", {"message": "结束日期不能早于注册日期"}, "en") == "结束日期不能早于注册日期"
    text = render("type.email", {"field": "e", "value": "{0.__class__}{field}"})
    assert text == "e: `{0.__class__}{field}` is not a valid address"


def test_titles_in_both_languages() -> None:
    assert title("type.phone") == "Invalid phone number"
    assert title("type.phone", "zh") == "电话号码无效"
    assert messages.LANGS == ("en", "zh")
