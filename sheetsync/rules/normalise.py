"""Pure normalisers: raw cell -> text, invisible characters, NFC/NFKC, spaces, case, phone numbers.

Every function is pure and cheap on clean ASCII (the common case), because the first sync of a
large sheet runs them on every cell. Dates live in rules/dates.py.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from typing import Callable

import phonenumbers

from ..model import CellValue, canonical_text
from ..text import CONTROLS, INVISIBLE, UNSEEN
from .dates import date_text

#: the table of unseen characters lives in sheetsync/text.py (connectors share it)
_INVISIBLE = INVISIBLE
_SPACES = {c: " " for c, kind in UNSEEN.items() if kind == "space"}
_TRANSLATE = {**_INVISIBLE, **_SPACES}
_RUNS = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
#: free text keeps the ideographic space (U+3000): it is Chinese typing (aligning 王　五 with
#: three-character names), not a hidden character; making it a plain space is width folding
_TEXT_TRANSLATE = {k: v for k, v in _TRANSLATE.items() if k != 0x3000}
_TEXT_RUNS = re.compile(r"[^\S\n\u3000]{2,}|[^\S\n \u3000]")
_PHONE_FLOAT = re.compile(r"\+?\d{5,}\.0+")
#: Chinese mobiles are most of the data and phonenumbers is slow per number: numbers of this
#: shape that match phonenumbers' own CN mobile pattern are formatted directly (same output;
#: tests compare both paths on random numbers). Everything else goes through phonenumbers.
_CN_SHAPE = re.compile(r"(?:\+86|0086)?[ -]?(1\d\d)[ -]?(\d{4})[ -]?(\d{4})")
_CN_MOBILE = re.compile(phonenumbers.PhoneMetadata.metadata_for_region("CN").mobile.national_number_pattern)


def cell_to_text(value: CellValue) -> str | None:
    """A raw cell as text before text normalisers: 13800138000.0 -> "13800138000", dates ISO.

    calamine hands every xlsx number over as float, so integral floats must lose their `.0`
    before a phone or id column sees them. None stays None (an empty cell).
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return canonical_text(value)


def strip_invisible(text: str) -> str:
    """Remove zero-width, bidi and soft-hyphen characters; NBSP and U+3000 become spaces."""
    return text if text.isascii() else text.translate(_TRANSLATE)


def hidden_removed(old: str, new: str) -> int:
    """How many hidden characters (zero-width, bidi, soft hyphens, odd spaces made plain, spaces
    at the ends) were removed when that is all that turned `old` into `new`; else 0. A note then
    says so instead of "changed from `Bob Smith` to `Bob Smith`", which looks like nothing."""
    if old == new or old.isascii() and old.strip() != new:
        return 0
    count, j = 0, 0
    for ch in old:
        if j < len(new) and ch == new[j]:
            j += 1
        elif ord(ch) in _SPACES and j < len(new) and new[j] == " ":
            count, j = count + 1, j + 1
        elif ord(ch) in _INVISIBLE or ch.isspace() and j in (0, len(new)):
            count += 1
        else:
            return 0
    return count if j == len(new) else 0


def _strip_invisible_text(text: str) -> str:
    """strip_invisible of a free-text column's defaults: U+3000 stays."""
    return text if text.isascii() else text.translate(_TEXT_TRANSLATE)


def _collapse_spaces_text(text: str) -> str:
    """collapse_spaces of a free-text column's defaults: U+3000 stays."""
    return _TEXT_RUNS.sub(" ", text) if ("  " in text or not text.isprintable()) else text


def strip_controls(text: str) -> str:
    """Delete control characters (ESC, BEL, NUL, ...; not tab or line breaks): invisible in a
    sheet, unsavable in an xlsx file, and on a terminal they are commands, not text."""
    return text if text.isprintable() else text.translate(CONTROLS)


def count_controls(text: str) -> int:
    """How many characters strip_controls deletes from `text` (for the note to the person)."""
    return 0 if text.isprintable() else len(text) - len(text.translate(CONTROLS))


def nfkc(text: str) -> str:
    """Full-width digits and letters to ASCII (１２３ -> 123), compatibility forms folded.

    For fields where width means nothing (numbers, phones, ids): it also turns Chinese
    punctuation into ASCII (，-> ,), so plain text columns get `nfc` by default instead."""
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return text
    return unicodedata.normalize("NFKC", text)


def nfc(text: str) -> str:
    """Canonical composition only (e + combining accent -> é): what a person sees stays the same,
    so Chinese punctuation and full-width forms are kept as typed."""
    if text.isascii() or unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


#: Han, kana, hangul, bopomofo and CJK punctuation (、。「」): a text holding any is CJK text
_CJK = re.compile("[\u2e80-\u2fdf\u3001-\u303f\u3040-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
                  "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]")
#: full-width forms: ASCII look-alikes (Ａ１，（), the ideographic space, ￥ and kin
_WIDE = re.compile("[\u3000\uff01-\uff60\uffe0-\uffe6]+")


def _nfc_text(text: str) -> str:
    """nfc of a free-text column's defaults: full-width forms inside CJK text are correct
    Chinese (退款，负数) and stay; in text with no CJK at all (`Chris　Zhao`, `Ｌｉ Ｎａ`) they are
    typing slips, folded to ASCII. A text is judged whole, so `客户（VIP）` keeps both brackets."""
    text = nfc(text)
    if text.isascii() or not _WIDE.search(text) or _CJK.search(text):
        return text
    return _WIDE.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


def trim(text: str) -> str:
    return text.strip()


def collapse_spaces(text: str) -> str:
    """Runs of spaces and tabs become one space; line breaks (notes) are kept."""
    return _RUNS.sub(" ", text) if ("  " in text or not text.isprintable()) else text


def lower(text: str) -> str:
    return text.lower()


def upper(text: str) -> str:
    return text.upper()


def title(text: str) -> str:
    return text.title()


def phone(text: str, region: str = "CN", fmt: str = "international") -> str:
    """Canonical phone text, or the text unchanged when it is not a valid number."""
    return format_phone(text, region, fmt) or text


def date(text: str) -> str:
    """ISO date text, or the text unchanged when it is not a recognisable date."""
    return date_text(text) or text


@functools.lru_cache(maxsize=65536)
def _parse_phone(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    """Parsing is slow per number and sheets repeat numbers, so results are cached by (text,
    region); None = not valid."""
    if _PHONE_FLOAT.fullmatch(text):
        text = text.split(".", 1)[0]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


_FORMATS = {
    "E164": phonenumbers.PhoneNumberFormat.E164,
    "international": phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    "national": phonenumbers.PhoneNumberFormat.NATIONAL,
}


@functools.lru_cache(maxsize=65536)
def format_phone(text: str, region: str = "CN", fmt: str = "international") -> str | None:
    """`138 0013 8000` -> `+86 138 0013 8000` (international); None when not a valid number."""
    text = nfkc(strip_invisible(text)).strip()
    region = region.upper()
    if region == "CN" and (fast := _fast_cn_mobile(text, fmt)):
        return fast
    number = _parse_phone(text, region)
    if number is None:
        return None
    return phonenumbers.format_number(number, _FORMATS[fmt])


def _fast_cn_mobile(text: str, fmt: str) -> str | None:
    m = _CN_SHAPE.fullmatch(text)
    if m is None or not _CN_MOBILE.fullmatch("".join(m.groups())):
        return None
    a, b, c = m.groups()
    if fmt == "E164":
        return f"+86{a}{b}{c}"
    return f"+86 {a} {b} {c}" if fmt == "international" else f"{a} {b} {c}"


#: name -> text normaliser; "phone" and "date" here use the defaults (the layout's region and
#: phone format are applied by the phone type instead)
NORMALISERS: dict[str, Callable[[str], str]] = {
    "strip_invisible": strip_invisible, "strip_controls": strip_controls, "nfkc": nfkc, "nfc": nfc, "trim": trim,
    "collapse_spaces": collapse_spaces, "lower": lower, "upper": upper, "title": title,
    "phone": phone, "date": date,
}

#: the free-text defaults' own strip_invisible and collapse_spaces (same names in notes)
_TEXT_STEPS: dict[str, Callable[[str], str]] = {"strip_invisible": _strip_invisible_text, "nfc": _nfc_text,
                                                "collapse_spaces": _collapse_spaces_text}

#: used when a column says nothing (`normalise:` absent); `normalise: [none]` means none at all.
#: Width folding (nfkc) is the default only where width means nothing: `text_defaults` below.
DEFAULT_NORMALISERS: tuple[str, ...] = ("strip_controls", "strip_invisible", "nfkc", "trim", "collapse_spaces")
#: the defaults of a free-text column: `退款，负数（客户要求）` is correct Chinese and stays as typed
TEXT_DEFAULTS: tuple[str, ...] = ("strip_controls", "strip_invisible", "nfc", "trim", "collapse_spaces")


def normaliser_chain(names: list[str] | None, region: str = "CN", fmt: str = "international",
                     fold_width: bool = True) -> tuple[tuple[str, Callable[[str], str]], ...]:
    """The (name, function) steps a column's text goes through, in order. `fold_width=False`
    (free text) makes the defaults keep full-width forms; a column's own list is used as given,
    but for control characters, which go first in every chain (a list written before the step
    existed never wanted them): only `normalise: [none]` keeps a cell verbatim."""
    text_defaults = names is None and not fold_width
    if names is None:
        names = list(DEFAULT_NORMALISERS if fold_width else TEXT_DEFAULTS)
    if "none" in names:
        return ()
    if "strip_controls" not in names:
        names = ["strip_controls", *names]
    steps = []
    for name in names:
        fn = _TEXT_STEPS.get(name, NORMALISERS[name]) if text_defaults else NORMALISERS[name]
        if name == "phone":
            fn = functools.partial(phone, region=region, fmt=fmt)
        steps.append((name, fn))
    return tuple(steps)


def is_clean(text: str) -> bool:
    """True when the default normalisers cannot change the text (the fast path for most cells)."""
    return text.isascii() and text.isprintable() and text == text.strip() and "  " not in text


def apply_chain(text: str, chain: tuple[tuple[str, Callable[[str], str]], ...]) -> tuple[str, list[str]]:
    """Run the steps; return the text and the names of the steps that changed it."""
    changed: list[str] = []
    for name, fn in chain:
        out = fn(text)
        if out != text:
            changed.append(name)
            text = out
    return text, changed
