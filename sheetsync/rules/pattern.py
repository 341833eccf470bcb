"""Layout regexes in linear time: Python's syntax, run by RE2 (google-re2), which never backtracks.

A layout is untrusted and Python's `re` has no timeout: `^(\\d{1,3},?)+$` took 11 s on a
31-character cell. So a pattern is parsed by Python's own parser (its meaning is Python's) and
written out again for RE2; what RE2 cannot run in linear time (back-references, lookarounds,
atomic groups, possessive repeats, Unicode word boundaries) is refused when the layout loads.
One difference is left: Python's `$` also matches before a final newline, so `a$\n` matches
"a\n" in Python and nothing here (a pattern that goes on after its `$`; cells are trimmed anyway).
"""
from __future__ import annotations

import array
import functools
import re
import sys
from typing import Any, Iterable

import re2

try:  # Python >= 3.11 keeps the parser here; `sre_parse` is a deprecated alias of it
    import re._parser as _sre  # type: ignore[import-not-found]
    import re._constants as _C  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - older layouts of the stdlib
    import sre_parse as _sre  # type: ignore[no-redef]
    import sre_constants as _C  # type: ignore[no-redef]

_BOTH = re2._re2.RE2.Anchor.ANCHOR_BOTH
_NO_MATCH = (-1, -1)
_OPTIONS = re2.Options()
_OPTIONS.never_capture = True   # only "does the whole cell match": no groups to record
_OPTIONS.log_errors = False     # a refused pattern is reported by check, not logged by RE2
_MAX_COUNT = 1000               # RE2's largest {n,m}
_GAP = 0xD800                   # the surrogates U+D800..U+DFFF: no text in UTF-8, never in a set

#: what RE2 has no linear-time way to run, with the hint the admin sees
_REFUSED = {
    _C.GROUPREF: ("a back-reference (\\1 or (?P=name))", "write out what it should match instead"),
    _C.GROUPREF_EXISTS: ("a conditional group (?(1)...)", "write the alternatives out with |"),
    _C.ASSERT: ("a lookahead or lookbehind ((?=...), (?<=...))", "describe the whole value instead"),
    _C.ASSERT_NOT: ("a negative lookahead or lookbehind ((?!...), (?<!...))", "list what is allowed instead"),
    getattr(_C, "ATOMIC_GROUP", object()): ("an atomic group (?>...)", "use a plain group (...)"),
    getattr(_C, "POSSESSIVE_REPEAT", object()): ("a possessive repeat (*+, ++)", "use a plain * or +"),
}
_CATEGORY_TEXT = {_C.CATEGORY_DIGIT: r"\d", _C.CATEGORY_WORD: r"\w", _C.CATEGORY_SPACE: r"\s",
                  _C.CATEGORY_NOT_DIGIT: r"\D", _C.CATEGORY_NOT_WORD: r"\W", _C.CATEGORY_NOT_SPACE: r"\S"}


class UnsafePattern(ValueError):
    """The pattern is valid Python but cannot be run in bounded time, so it is refused."""


class LinearPattern:
    """A compiled layout pattern: `fullmatch(text)` costs time linear in the text, whatever the pattern."""

    __slots__ = ("pattern", "_match")

    def __init__(self, pattern: str, translated: str) -> None:
        self.pattern = pattern
        compiled = re2._re2.RE2(translated.encode(), _OPTIONS)
        if not compiled.ok():  # e.g. repeats of repeats beyond RE2's memory budget (8 MiB)
            raise UnsafePattern(f"too large to check quickly ({compiled.error().decode(errors='replace')}); "
                                "hint: make the repeat counts smaller")
        self._match = compiled.Match

    def fullmatch(self, text: str) -> bool:
        data = text.encode("utf-8", "surrogatepass")
        return self._match(_BOTH, data, 0, len(data))[0] != _NO_MATCH


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> LinearPattern:
    """Compile a layout regex or raise ValueError (re.error is a subclass) saying why not."""
    parsed = _sre.parse(pattern)  # re.error on a syntax mistake, as Python would say it
    flags = parsed.state.flags
    text = _seq(_without_end_anchors(list(parsed)), flags)
    return LinearPattern(pattern, f"(?i:{text})" if _unicode_case(flags) else text)


def bounded_fullmatch(pattern: str, text: str) -> bool:
    """Full match of `text` against a layout pattern, in time linear in len(text)."""
    return compile_pattern(pattern).fullmatch(text)


def _without_end_anchors(seq: list) -> list:
    """A full match is anchored at both ends already; RE2 runs `C[0-9]{5}` about twice as fast as
    `^C[0-9]{5}$` (0.12 against 0.27 s per 100,000 cells), so a leading ^ and a trailing $ go."""
    if seq and seq[0] in ((_C.AT, _C.AT_BEGINNING), (_C.AT, _C.AT_BEGINNING_STRING)):
        seq = seq[1:]
    if seq and seq[-1] in ((_C.AT, _C.AT_END), (_C.AT, _C.AT_END_STRING)):
        seq = seq[:-1]
    return seq


def _seq(seq: Iterable[tuple[Any, Any]], flags: int) -> str:
    return "".join(_node(op, av, flags) for op, av in seq)


def _node(op: Any, av: Any, flags: int) -> str:
    if op in _REFUSED:
        what, fix = _REFUSED[op]
        raise UnsafePattern(f"{what} cannot be checked in linear time (RE2); hint: {fix}")
    if op is _C.LITERAL:
        return _charclass([(op, av)], flags) if _ascii_case(flags) and chr(av).isascii() and chr(av).isalpha() \
            else _char(av)
    if op is _C.NOT_LITERAL:
        return _charclass([(_C.NEGATE, None), (_C.LITERAL, av)], flags)
    if op is _C.ANY:
        return "(?s:.)" if flags & re.DOTALL else "."
    if op is _C.IN:
        return _charclass(av, flags)
    if op is _C.BRANCH:
        return "(?:" + "|".join(_seq(b, flags) for b in av[1]) + ")"
    if op is _C.SUBPATTERN:
        _group, add, drop, body = av
        inner = (flags | add) & ~drop
        case = "" if _unicode_case(inner) == _unicode_case(flags) else "i" if _unicode_case(inner) else "-i"
        return f"(?{case}:{_seq(body, inner)})"
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
        lo, hi, body = av
        return f"(?:{_seq(body, flags)}){_count(lo, hi)}" + ("?" if op is _C.MIN_REPEAT else "")
    if op is _C.AT:
        return _anchor(av, flags)
    raise UnsafePattern(f"the regex element {op} is not supported; hint: write the pattern more simply")


def _count(lo: int, hi: int) -> str:
    if lo > _MAX_COUNT or (hi != _C.MAXREPEAT and hi > _MAX_COUNT):
        raise UnsafePattern(f"a repeat count above {_MAX_COUNT} (RE2's limit); hint: use + or * for long runs")
    return f"{{{lo},}}" if hi == _C.MAXREPEAT else f"{{{lo},{hi}}}"


def _anchor(at: Any, flags: int) -> str:
    multiline = bool(flags & re.MULTILINE)
    if at is _C.AT_BEGINNING:
        return "(?m:^)" if multiline else "^"
    if at is _C.AT_END:  # Python's $ also matches before a final newline; a full match rarely cares
        return "(?m:$)" if multiline else "$"
    if at is _C.AT_BEGINNING_STRING:
        return r"\A"
    if at is _C.AT_END_STRING:
        return r"\z"
    if flags & re.ASCII:  # RE2's \b and \B know ASCII word characters only, as (?a) means
        return r"\b" if at is _C.AT_BOUNDARY else r"\B"
    raise UnsafePattern(r"a word boundary \b or \B between non-ASCII letters cannot be checked in linear "
                        r"time (RE2); hint: the pattern matches the whole value, so describe all of it, "
                        r"or start it with (?a) for ASCII-only words")


def _char(code: int) -> str:
    c = chr(code)
    if c.isascii() and c.isalnum():
        return c
    return f"\\{c}" if c.isascii() and c.isprintable() and c != " " else f"\\x{{{code:x}}}"


def _unicode_case(flags: int) -> bool:
    """Whether RE2's own (?i) says it: Unicode case folding, as Python's re.IGNORECASE does."""
    return bool(flags & re.IGNORECASE) and not flags & re.ASCII


def _ascii_case(flags: int) -> bool:
    """(?ai): Python folds ASCII letters only (k is not the Kelvin sign), so sets are folded here."""
    return bool(flags & re.IGNORECASE) and bool(flags & re.ASCII)


def _charclass(items: list, flags: int) -> str:
    """A set like [^\\W\\d_] as explicit ranges: \\d, \\w and \\s are taken from Python itself."""
    negate, ranges = False, []
    for op, av in items:
        if op is _C.NEGATE:
            negate = True
        elif op is _C.LITERAL:
            ranges.append((av, av))
        elif op is _C.RANGE:
            ranges.append(av)
        elif op is _C.CATEGORY:
            ranges.extend(_category(av, bool(flags & re.ASCII)))
        else:
            raise UnsafePattern(f"the set element {op} is not supported; hint: write the set more simply")
    if _ascii_case(flags):
        ranges += [(max(a, lo) ^ 32, min(b, hi) ^ 32) for a, b in ranges for lo, hi in ((65, 90), (97, 122))
                   if max(a, lo) <= min(b, hi)]
    ranges = sorted(set(ranges))
    if not negate and len(ranges) == 2 and all(a == b for a, b in ranges):
        # RE2 reads a two-letter set like [kK] as "k, any case" and, inside an alternation, then
        # also matches the Kelvin sign; Python does not: two letters are written as two branches
        return f"(?:{_char(ranges[0][0])}|{_char(ranges[1][0])})"
    parts = (_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in ranges)
    return ("[^" if negate else "[") + "".join(parts) + "]"


@functools.lru_cache(maxsize=None)
def _category(category: Any, ascii_only: bool) -> tuple[tuple[int, int], ...]:
    """The code point ranges Python's \\d, \\w, \\s (or their negations) match: RE2's own classes
    are ASCII-only (\\d) or follow another Unicode version, so Python's answer is computed once."""
    if category not in _CATEGORY_TEXT:
        raise UnsafePattern(f"the set element {category} is not supported; hint: write the set more simply")
    found = re.compile(f"{_CATEGORY_TEXT[category]}+", re.ASCII if ascii_only else 0).finditer(_every_char())
    ranges = []
    for m in found:
        start, end = m.span()
        if start < _GAP <= end - 1:  # a run across the surrogates (\W): two ranges around them
            ranges.append((start, _GAP - 1))
            start = _GAP
        ranges.append((_code_at(start), _code_at(end - 1)))
    return tuple(ranges)


@functools.lru_cache(maxsize=1)
def _every_char() -> str:
    """Every Unicode scalar value once, in order, without the surrogates (not text in UTF-8)."""
    codes = array.array("I", range(_GAP))
    codes.extend(range(_GAP + 0x800, 0x110000))
    return codes.tobytes().decode(f"utf-32-{'le' if sys.byteorder == 'little' else 'be'}")


def _code_at(index: int) -> int:
    return index if index < _GAP else index + 0x800
