"""sheetsync/text.py on its own: the one table of unseen characters and the one header fold."""
from __future__ import annotations

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from sheetsync.dedupe.normalise import clean
from sheetsync.rules.normalise import strip_invisible
from sheetsync.text import UNSEEN, XML_ILLEGAL, fold_header as fold


def test_fold_ignores_case_spaces_underscores_and_hyphens() -> None:
    assert fold("Customer ID") == "customerid"
    assert fold("  customer_id ") == "customerid"
    assert fold("CUSTOMER-ID") == "customerid"
    assert fold("Customer\tI D") == "customerid"


def test_fold_full_width_and_invisible_characters() -> None:
    assert fold("ＣＵＳＴＯＭＥＲ\u3000ＩＤ") == "customerid"  # full-width letters and space
    assert fold("\ufeff\u200bName\u200d\u00ad") == "name"    # BOM, zero-width, soft hyphen
    assert fold("Stra\u00dfe") == fold("STRASSE")              # casefold, not lower


def test_fold_of_empty_and_non_text() -> None:
    assert fold(None) == ""
    assert fold("") == ""
    assert fold(" \u200b ") == ""
    assert fold(2024) == "2024"


def test_fold_drops_every_invisible_and_control_character_of_the_table() -> None:
    hidden = "".join(chr(c) for c, kind in UNSEEN.items() if kind in ("invisible", "control"))
    assert fold(f"Cus{hidden}tomer_ID") == "customerid"


def test_xml_illegal_is_what_openpyxl_strips() -> None:
    every = "".join(map(chr, range(0x100)))
    assert XML_ILLEGAL.sub("", every) == ILLEGAL_CHARACTERS_RE.sub("", every)


def test_rules_and_dedupe_delete_the_same_invisible_characters() -> None:
    # dedupe kept a shorter copy of the table: a left-to-right mark (U+200E) survived its clean
    invisible = "".join(chr(c) for c, kind in UNSEEN.items() if kind == "invisible")
    assert strip_invisible(f"a{invisible}b") == "ab"
    assert clean(f"A{invisible}B") == "ab"
