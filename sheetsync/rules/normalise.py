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
from .dates import date_text

#: zero-width and bidi controls are deleted; NBSP-like spaces become a plain space
_INVISIBLE = {c: None for c in [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x180E,
                                *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F]}
_SPACES = {c: " " for c in [0x00A0, 0x3000, 0x2007, 0x202F, 0x2002, 0x2003, 0x2009]}
_TRANSLATE = {**_INVISIBLE, **_SPACES}
_RUNS = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
_PHONE_FLOAT = re.compile(r"\+?\d{5,}\.0+")
#: Chinese mobiles are most of the data and phonenumbers costs ~20-150 us each: numbers of this
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
    """How many hidden characters (zero-width, bidi, soft hyphens, odd spaces, edge spaces) were
    removed or made plain spaces, when that is all that changed `old` into `new`; else 0. A note
    then says so instead of "changed from `Bob Smith` to `Bob Smith`", which looks like nothing."""
    if old == new or old.isascii() and old.strip() != new:
        return 0
    kept = old.translate(_INVISIBLE)
    spaced = kept.translate(_SPACES)
    count = len(old) - len(kept) + sum(a != b for a, b in zip(kept, spaced))
    if spaced == new:
        return count
    inner = spaced.strip()
    if inner != new:
        return 0
    start = len(spaced) - len(spaced.lstrip())
    edges = [*range(start), *range(start + len(inner), len(spaced))]
    return count + sum(1 for i in edges if kept[i] == spaced[i])  # plain edge spaces trimmed


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
    """Parsing costs ~21 us, so results are cached by (text, region); None = not valid."""
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
    "strip_invisible": strip_invisible, "nfkc": nfkc, "nfc": nfc, "trim": trim,
    "collapse_spaces": collapse_spaces, "lower": lower, "upper": upper, "title": title,
    "phone": phone, "date": date,
}

#: used when a column says nothing (`normalise:` absent); `normalise: [none]` means none at all.
#: Width folding (nfkc) is the default only where width means nothing: `text_defaults` below.
DEFAULT_NORMALISERS: tuple[str, ...] = ("strip_invisible", "nfkc", "trim", "collapse_spaces")
#: the defaults of a free-text column: `退款，负数（客户要求）` is correct Chinese and stays as typed
TEXT_DEFAULTS: tuple[str, ...] = ("strip_invisible", "nfc", "trim", "collapse_spaces")


def normaliser_chain(names: list[str] | None, region: str = "CN", fmt: str = "international",
                     fold_width: bool = True) -> tuple[tuple[str, Callable[[str], str]], ...]:
    """The (name, function) steps a column's text goes through, in order. `fold_width=False`
    (free text) makes the defaults keep full-width forms; a column's own list is used as given."""
    if names is None:
        names = list(DEFAULT_NORMALISERS if fold_width else TEXT_DEFAULTS)
    if "none" in names:
        return ()
    steps = []
    for name in names:
        fn = NORMALISERS[name]
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
