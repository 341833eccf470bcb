"""The one table of characters a person cannot see in a cell, and the one header fold built on it.

It sits on the bottom floor so that rules, dedupe, layout checks and connectors (which may not
import rules) all read the same table instead of keeping their own copies.
"""
from __future__ import annotations

import re
import unicodedata

#: characters a person cannot see, by what sheetsync does with them: "invisible" (zero-width,
#: bidi) and "control" (C0 but tab, line feed and carriage return; DEL; C1: ESC or BEL typed or
#: pasted in, which no sheet can show) are deleted; "space" (NBSP-like) becomes a plain space
UNSEEN: dict[int, str] = {
    **{c: "invisible" for c in [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x180E,
                                *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F]},
    **{c: "control" for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]},
    **{c: "space" for c in [0x00A0, 0x3000, 0x2007, 0x202F, 0x2002, 0x2003, 0x2009]},
}
#: str.translate tables: delete the invisible ones, delete the controls
INVISIBLE: dict[int, None] = {c: None for c, kind in UNSEEN.items() if kind == "invisible"}
CONTROLS: dict[int, None] = {c: None for c, kind in UNSEEN.items() if kind == "control"}
#: the controls an XML 1.0 file cannot hold at all (C0 but tab, LF, CR): an xlsx part drops them
XML_ILLEGAL = re.compile("[%s]" % "".join(re.escape(chr(c)) for c in CONTROLS if c < 0x20))

_HEADER_GAPS = re.compile(r"[\s_\-]+")


def fold_header(text: object) -> str:
    """The comparable form of a header, the same for `check` and for the read: NFKC, no
    invisible or control characters, case folded, no spaces, `_` or `-` ("Customer_ID" is
    "customer id")."""
    s = unicodedata.normalize("NFKC", str(text or "")).translate(INVISIBLE).translate(CONTROLS)
    return _HEADER_GAPS.sub("", s.casefold())
