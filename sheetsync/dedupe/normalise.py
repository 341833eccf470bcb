"""Text normalisation shared by exact-key dedupe, blocking and the fuzzy comparators.

Pure Python (no numpy) so the exact-key path stays cheap to import for the engine.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

from sheetsync.model import canonical_text
from sheetsync.text import INVISIBLE as _INVISIBLE

_SPACES = re.compile(r"\s+")
_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-/]{7,}$")
_NON_DIGIT = re.compile(r"\D+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def clean(value: Any) -> str:
    """NFKC, invisible characters removed, spaces collapsed, case folded: '' means empty."""
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from pandas-built records
        return ""
    text = value if isinstance(value, str) else canonical_text(value)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return _SPACES.sub(" ", text).strip().casefold()


def key_text(value: Any) -> str:
    """Exact-key form: `clean`, and phone-looking text reduced to its digits (with a leading +)."""
    text = clean(value)
    if _PHONE_LIKE.match(text) and sum(c.isdigit() for c in text) >= 7:
        digits = _NON_DIGIT.sub("", text)
        return ("+" + digits) if text.startswith("+") else digits
    return text


def digits(value: Any) -> str:
    """Only the digits of a value: the comparable core of a phone number."""
    return _NON_DIGIT.sub("", clean(value))


def phone_core(value: Any, keep: int = 10) -> str:
    """Last `keep` digits: `+86 138 0013 8000` and `138-0013-8000` share a core."""
    d = digits(value)
    return d[-keep:] if len(d) > keep else d


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def name_text(value: Any) -> str:
    """Names: cleaned, punctuation dropped; CJK names lose inner spaces ('张 伟' == '张伟')."""
    text = _SPACES.sub(" ", _PUNCT.sub(" ", clean(value))).strip()
    if has_cjk(text):
        return text.replace(" ", "")
    return text


def email_parts(value: Any) -> tuple[str, str]:
    """(local, domain) of a cleaned email; dots and +tags in the local part are kept."""
    text = clean(value).replace(" ", "")
    local, _, domain = text.rpartition("@")
    if not local:
        return text, ""
    return local, domain


def soundex(word: str) -> str:
    """American Soundex of the first ASCII word; CJK or empty text gives ''."""
    letters = [c for c in word.upper() if "A" <= c <= "Z"]
    if not letters:
        return ""
    codes = {**dict.fromkeys("BFPV", "1"), **dict.fromkeys("CGJKQSXZ", "2"),
             **dict.fromkeys("DT", "3"), "L": "4", **dict.fromkeys("MN", "5"), "R": "6"}
    out, last = letters[0], codes.get(letters[0], "")
    for c in letters[1:]:
        code = codes.get(c, "")
        if code and code != last:
            out += code
        if c not in "HW":
            last = code
    return (out + "000")[:4]
