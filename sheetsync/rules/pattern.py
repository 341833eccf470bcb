"""Bounded-cost regular expressions: layouts are untrusted, and Python's `re` has no timeout.

We refuse, at load time, the shapes that make a backtracking engine take exponential (or n**3 and worse) time, and
cap the length of the text a pattern is ever run on (MAX_MATCH_LEN).
"""
from __future__ import annotations

import functools
import re
from typing import Any, Iterable

try:  # Python >= 3.11 keeps the parser here; `sre_parse` is a deprecated alias of it
    import re._parser as _sre  # type: ignore[import-not-found]
    import re._constants as _C  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - older layouts of the stdlib
    import sre_parse as _sre  # type: ignore[no-redef]
    import sre_constants as _C  # type: ignore[no-redef]

#: a value longer than this never reaches a layout's regex: it fails the pattern check instead.
#: Polynomial backtracking (`.*.*x`) is not refused structurally; this cap keeps it bounded.
MAX_MATCH_LEN = 1000

#: a repeat is "large" when it may run more than this many times (so (x{1,3}){2} is fine)
_LARGE = 10
_REPEATS = {_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", _C.MAX_REPEAT)}
#: sample characters standing in for "any character" when comparing character sets
_ALPHABET = frozenset([chr(c) for c in range(32, 127)] + list("\n\t\u00a0\u3000é中１"))
_CATEGORIES = {
    _C.CATEGORY_DIGIT: str.isdecimal, _C.CATEGORY_SPACE: str.isspace,
    _C.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
    _C.CATEGORY_NOT_DIGIT: lambda c: not c.isdecimal(),
    _C.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
    _C.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
}


class UnsafePattern(ValueError):
    """The pattern is valid but could take exponential or high polynomial time on a crafted cell."""


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a layout regex or raise ValueError (re.error is a subclass) saying why not.

    Refused: a large repeat of something that itself repeats without a separator it cannot
    match ((a+)+, (a*)*, ((ab)+)*), and a large repeat of alternatives that can start with the
    same character ((a|ab)*). Allowed: (\\w+\\.)*, (-\\d+)*, (\\d{3}-)* and plain patterns.
    """
    compiled = re.compile(pattern)
    reason = _danger(_sre.parse(pattern))
    if reason:
        raise UnsafePattern(f"{reason}; it could run for minutes on a crafted cell")
    return compiled


def bounded_fullmatch(pattern: str, text: str) -> bool:
    """Full match with the cost cap: text longer than MAX_MATCH_LEN never matches."""
    return len(text) <= MAX_MATCH_LEN and compile_pattern(pattern).fullmatch(text) is not None


def _danger(seq: Iterable[tuple[Any, Any]]) -> str | None:
    seq = list(seq)
    chained = _chain_danger(seq)
    if chained:
        return chained
    for op, av in seq:
        if op in _REPEATS:
            lo, hi, body = av
            if hi > _LARGE:
                reason = _repeat_danger(list(body))
                if reason:
                    return reason
            sub = _danger(body)
        else:
            sub = next((r for s in _children(op, av) if (r := _danger(s))), None)
        if sub:
            return sub
    return None


def _chain_danger(seq: list) -> str | None:
    """Three or more unbounded repeats in a row that can match the same text (`.*.*.*x`,
    `\\s*\\s*\\s*x`) backtrack polynomially: n**3 steps on a 1,000-character cell is minutes."""
    chain, chars = 0, frozenset()
    for op, av in _flat(seq):
        if op in _REPEATS and av[1] > _LARGE:
            here = _charset([(op, av)])
            chain, chars = (chain + 1, chars & here) if chain and chars & here else (1, here)
            if chain >= 3:
                return "adjacent repeats that can match the same text, like .*.*.*x"
        elif not _nullable([(op, av)]) and not (_charset([(op, av)]) & chars):
            chain, chars = 0, frozenset()
    return None


def _repeat_danger(body: list) -> str | None:
    """Why repeating `body` many times can backtrack exponentially, or None."""
    for op, av in _walk(body):
        if op in _REPEATS and av[1] > _LARGE:
            inner = _charset([(op, av)])
            flat = list(_flat(body))
            if not any(not _nullable([el]) and not (_charset([el]) & inner) for el in flat):
                return "nested quantifier (a repeated group contains another unbounded repeat)"
        if op is _C.BRANCH:
            firsts = [_ALPHABET if _nullable(b) else _first(b) for b in av[1]]
            for i, a in enumerate(firsts):
                if any(a & b for b in firsts[i + 1:]):
                    return "repeated alternatives that can match the same text, like (a|ab)*"
    return None


def _children(op: Any, av: Any) -> list:
    if op is _C.SUBPATTERN:
        return [av[-1]]
    if op is _C.BRANCH:
        return list(av[1])
    if op in (_C.ASSERT, _C.ASSERT_NOT):
        return [av[1]]
    if op is _C.GROUPREF_EXISTS:
        return [s for s in av[1:] if s is not None]
    if op in _REPEATS:
        return [av[2]]
    return []


def _flat(seq: Iterable) -> Iterable[tuple[Any, Any]]:
    """The sequence with groups opened, so (x+,) is seen as x+ then a comma."""
    for op, av in seq:
        if op is _C.SUBPATTERN:
            yield from _flat(av[-1])
        else:
            yield op, av


def _walk(seq: Iterable) -> Iterable[tuple[Any, Any]]:
    for op, av in seq:
        yield op, av
        for sub in _children(op, av):
            yield from _walk(sub)


def _leaf_set(op: Any, av: Any) -> frozenset[str] | None:
    """Sample characters one leaf can match; None if `op` is not a character leaf."""
    if op is _C.LITERAL:
        return frozenset([chr(av)])
    if op is _C.NOT_LITERAL:
        return _ALPHABET - {chr(av)}
    if op is _C.ANY:
        return _ALPHABET
    if op is _C.IN:
        negate = any(o is _C.NEGATE for o, _ in av)
        hits = frozenset(c for c in _ALPHABET if any(_in_item(o, a, c) for o, a in av))
        return _ALPHABET - hits if negate else hits
    return None


def _in_item(op: Any, av: Any, c: str) -> bool:
    if op is _C.LITERAL:
        return c == chr(av)
    if op is _C.RANGE:
        return av[0] <= ord(c) <= av[1]
    if op is _C.CATEGORY:
        test = _CATEGORIES.get(av)
        return bool(test(c)) if test else True
    return False


def _charset(seq: Iterable) -> frozenset[str]:
    """Every sample character the sequence can match anywhere (back-references: anything)."""
    out: set[str] = set()
    for op, av in _walk(seq):
        leaf = _leaf_set(op, av)
        if leaf is not None:
            out |= leaf
        elif op in (_C.GROUPREF, _C.GROUPREF_EXISTS):
            out |= _ALPHABET
    return frozenset(out)


def _nullable(seq: Iterable) -> bool:
    for op, av in seq:
        if _leaf_set(op, av) is not None or op is _C.GROUPREF:
            return False
        if op is _C.SUBPATTERN and not _nullable(av[-1]):
            return False
        if op in _REPEATS and av[0] > 0 and not _nullable(av[2]):
            return False
        if op is _C.BRANCH and not any(_nullable(b) for b in av[1]):
            return False
    return True


def _first(seq: Iterable) -> frozenset[str]:
    """Sample characters the sequence can start with (approximate, errs towards more)."""
    out: set[str] = set()
    for op, av in seq:
        leaf = _leaf_set(op, av)
        if leaf is not None:
            return frozenset(out | leaf)
        if op is _C.SUBPATTERN:
            out |= _first(av[-1])
        elif op is _C.BRANCH:
            out |= set().union(*(_first(b) for b in av[1]))
        elif op in _REPEATS:
            out |= _first(av[2])
        elif op is _C.GROUPREF:
            return _ALPHABET
        if not _nullable([(op, av)]):
            return frozenset(out)
    return frozenset(out)
