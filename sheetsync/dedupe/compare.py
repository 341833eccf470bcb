"""Field comparators: each maps a pair of values to a discrete level (0 = missing, 1 = different,
higher = closer) plus a 0..1 similarity for the reason text. Vectorised over unique value pairs.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Callable, Sequence

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, Hamming, JaroWinkler, Levenshtein
from rapidfuzz.process import cpdist

from sheetsync.dedupe.normalise import clean, digits, email_parts, has_cjk, name_text

#: Highest level of each comparator kind (levels run 0..top).
TOP = {"name": 5, "date": 5, "phone": 4, "email": 4, "string": 4, "exact": 2}
_DATE = re.compile(r"\d+")


def _date_text(value: Any) -> str:
    """'YYYYMMDD' from ISO text, YYYYMMDD, DD/MM/YYYY or a date object; '' if not a date."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.strftime("%Y%m%d")
    groups = _DATE.findall(clean(value))
    if len(groups) == 1 and len(groups[0]) == 8:
        return groups[0]
    if len(groups) < 3:
        return ""
    a, b, c = groups[:3]
    if len(a) == 4:
        y, m, d = a, b, c
    elif len(c) == 4:
        y, m, d = c, b, a
    else:
        return ""
    return f"{y}{int(m):02d}{int(d):02d}" if len(m) <= 2 and len(d) <= 2 else ""


PREPARE: dict[str, Callable[[Any], str]] = {
    "name": name_text, "date": _date_text, "phone": digits,
    "email": lambda v: clean(v).replace(" ", ""), "string": clean, "exact": clean,
}


def _sim(scorer: Any, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    return cpdist(a, b, scorer=scorer, workers=-1, dtype=np.float32)


def _name_latin(a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    jw = _sim(JaroWinkler.normalized_similarity, a, b)
    tsort = _sim(fuzz.token_sort_ratio, a, b) / 100
    tset = _sim(fuzz.token_set_ratio, a, b) / 100
    initial = np.fromiter(((len(x) == 1 or len(y) == 1) and x[:1] == y[:1] for x, y in zip(a, b)),
                          dtype=bool, count=len(a))
    lev = np.select([tsort >= 1.0, (jw >= 0.92) | (tset >= 1.0), jw >= 0.85,
                     (jw >= 0.7) | initial | (tset >= 0.8)], [4, 4, 3, 2], 1)
    return lev, np.maximum(jw, tsort)


def _name_cjk(a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Character-level: a transposition or one changed character of a 3+ char name is close."""
    dist = _sim(Levenshtein.distance, a, b)
    la = np.fromiter((len(x) for x in a), np.int32, len(a))
    lb = np.fromiter((len(y) for y in b), np.int32, len(b))
    both = np.fromiter((has_cjk(x) and has_cjk(y) for x, y in zip(a, b)), bool, len(a))
    anagram = np.fromiter((sorted(x) == sorted(y) for x, y in zip(a, b)), bool, len(a))
    surname = np.fromiter((x[:1] == y[:1] for x, y in zip(a, b)), bool, len(a))
    longer = np.maximum(la, lb)
    lev = np.select([~both, anagram, (dist == 1) & (longer >= 3), dist == 1, surname],
                    [0, 4, 4, 3, 2], 1)
    return lev, 1 - dist / np.maximum(longer, 1)


def _name(a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    cjk = np.fromiter((has_cjk(x) or has_cjk(y) for x, y in zip(a, b)), bool, len(a))
    lev, sim = np.ones(len(a), np.int8), np.zeros(len(a), np.float32)
    for mask, fn in ((~cjk, _name_latin), (cjk, _name_cjk)):
        idx = np.flatnonzero(mask)
        if len(idx):
            lev[idx], sim[idx] = fn([a[i] for i in idx], [b[i] for i in idx])
    return lev, sim


def _ordinal(text: str) -> int:
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])).toordinal()
    except ValueError:
        return -10**7


def _date(a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Typos (one digit, adjacent swap), day/month swapped, then within a year / ten years."""
    ham = _sim(Hamming.distance, a, b)
    osa = _sim(OSA.distance, a, b)
    swap = np.fromiter((x[:4] == y[:4] and x[4:6] == y[6:8] and x[6:8] == y[4:6]
                        for x, y in zip(a, b)), bool, len(a))
    days = np.abs(np.fromiter((_ordinal(x) - _ordinal(y) for x, y in zip(a, b)), np.int64, len(a)))
    lev = np.select([(ham <= 1) | (osa <= 1) | swap, days <= 366, days <= 3653], [4, 3, 2], 1)
    return lev, 1 - np.minimum(ham, 8) / 8


def _phone(a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Same last 9 digits (country code / trunk 0 differ) counts as the same phone."""
    core = np.fromiter((x[-9:] == y[-9:] for x, y in zip(a, b)), bool, len(a))
    osa = _sim(OSA.distance, [x[-10:] for x in a], [y[-10:] for y in b])
    last4 = np.fromiter((x[-4:] == y[-4:] for x, y in zip(a, b)), bool, len(a))
    lev = np.select([core, osa <= 1, last4], [3, 2, 1], 0) + 1
    return lev, 1 - np.minimum(osa, 10) / 10


def _email(a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    jw = _sim(JaroWinkler.normalized_similarity, a, b)
    local = np.fromiter((email_parts(x)[0] == email_parts(y)[0] for x, y in zip(a, b)), bool, len(a))
    lev = np.select([local, jw >= 0.88], [3, 2], 1)
    return lev, jw


def _string(a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    jw = _sim(JaroWinkler.normalized_similarity, a, b)
    return np.select([jw >= 0.92, jw >= 0.8], [3, 2], 1), jw


def _exact(a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    return np.ones(len(a), np.int8), np.zeros(len(a), np.float32)


_LEVELS = {"name": _name, "date": _date, "phone": _phone, "email": _email, "string": _string,
           "exact": _exact}


class Column:
    """One field of all records, prepared once and factorised, so pairs compare unique values."""

    def __init__(self, kind: str, values: Sequence[Any]) -> None:
        self.kind = kind
        prep, memo, codes = PREPARE[kind], {}, {}
        self.uniq: list[str] = []
        out = np.empty(len(values), np.int64)
        for k, v in enumerate(values):
            p = memo.get(v) if isinstance(v, (str, int)) else None
            if p is None:
                p = prep(v)
                if isinstance(v, (str, int)):
                    memo[v] = p
            if not p:
                out[k] = -1
                continue
            c = codes.get(p)
            if c is None:
                c = codes[p] = len(self.uniq)
                self.uniq.append(p)
            out[k] = c
        self.codes = out

    def compare(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Levels (int8) and similarities (float32) for record index pairs (i[k], j[k])."""
        ci, cj = self.codes[i], self.codes[j]
        valid = (ci >= 0) & (cj >= 0)
        lo, hi = np.minimum(ci, cj)[valid], np.maximum(ci, cj)[valid]
        width = max(len(self.uniq), 1)
        keys, inv = np.unique(lo * width + hi, return_inverse=True)
        ua, ub = keys // width, keys % width
        a, b = [self.uniq[x] for x in ua], [self.uniq[x] for x in ub]
        lev_u = np.full(len(keys), TOP[self.kind], np.int8)
        sim_u = np.ones(len(keys), np.float32)
        diff = np.flatnonzero(ua != ub)
        if len(diff):
            lev_u[diff], sim_u[diff] = _LEVELS[self.kind]([a[x] for x in diff], [b[x] for x in diff])
        levels = np.zeros(len(i), np.int8)
        sims = np.zeros(len(i), np.float32)
        levels[valid], sims[valid] = lev_u[inv.ravel()], sim_u[inv.ravel()]
        return levels, sims
