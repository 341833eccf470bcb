"""Unsupervised Fellegi-Sunter: m/u per comparison level by EM, match weight -> probability.

u starts from random record pairs (almost all non-matches); EM then fits m, u and the prior
lambda on the candidate pairs, working on distinct level patterns so 1M pairs cost milliseconds.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from sheetsync.dedupe.compare import TOP

_EPS = 1e-6


@dataclass(frozen=True)
class FSModel:
    """m[f][l], u[f][l] for levels l = 1..top (index 0, "missing", is unused); `lam` the prior."""

    fields: tuple[str, ...]
    kinds: tuple[str, ...]
    m: tuple[tuple[float, ...], ...]
    u: tuple[tuple[float, ...], ...]
    lam: float
    iterations: int = 0

    def weights(self) -> np.ndarray:
        """log2(m/u) per field and level, 0 for level 0 (missing values give no evidence)."""
        width = max(TOP[k] for k in self.kinds) + 1
        w = np.zeros((len(self.fields), width))
        for f, (m, u) in enumerate(zip(self.m, self.u)):
            w[f, 1:len(m)] = np.log2(np.maximum(m[1:], _EPS) / np.maximum(u[1:], _EPS))
        return w

    def match_weight(self, levels: np.ndarray) -> np.ndarray:
        """Total match weight (log2 odds) of each row of a (pairs x fields) level matrix."""
        w = self.weights()
        total = np.full(len(levels), np.log2(self.lam / (1 - self.lam)))
        for f in range(len(self.fields)):
            total += w[f][levels[:, f]]
        return total

    def probability(self, levels: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp2(-np.clip(self.match_weight(levels), -60, 60)))

    def to_json(self) -> str:
        return json.dumps({"fields": self.fields, "kinds": self.kinds, "m": self.m, "u": self.u,
                           "lam": self.lam, "iterations": self.iterations})

    @classmethod
    def from_json(cls, text: str) -> "FSModel":
        d = json.loads(text)
        return cls(tuple(d["fields"]), tuple(d["kinds"]), tuple(tuple(x) for x in d["m"]),
                   tuple(tuple(x) for x in d["u"]), float(d["lam"]), int(d.get("iterations", 0)))


def _normalise(counts: np.ndarray) -> np.ndarray:
    counts = counts.astype(float).copy()
    counts[0] = 0.0
    counts[1:] += 0.5  # smoothing: an unseen level keeps a finite weight
    return counts / counts[1:].sum()


def level_freq(levels: np.ndarray, kinds: Sequence[str]) -> list[np.ndarray]:
    """Per field: the share of each level 1..top among pairs where both values are present."""
    return [_normalise(np.bincount(levels[:, f], minlength=TOP[k] + 1)[:TOP[k] + 1])
            for f, k in enumerate(kinds)]


def prior_m(kinds: Sequence[str]) -> list[np.ndarray]:
    """A match mostly agrees: mass doubles with each level up (used to start EM, or with no data)."""
    out = []
    for k in kinds:
        v = np.r_[0.0, 4.0 ** np.arange(TOP[k])]
        out.append(v / v[1:].sum())
    return out


def prior_u(kinds: Sequence[str]) -> list[np.ndarray]:
    """Random pairs mostly disagree: the mirror of prior_m."""
    return [np.r_[0.0, m[1:][::-1]] for m in prior_m(kinds)]


def fit_em(fields: Sequence[str], kinds: Sequence[str], levels: np.ndarray,
           u_start: list[np.ndarray], lam: float = 0.3, max_iter: int = 60,
           fix_u: bool = False, tol: float = 1e-5) -> FSModel:
    """EM over distinct level patterns (weighted by count) of the candidate pairs."""
    m = prior_m(kinds)
    u = [x.copy() for x in u_start]
    if len(levels) == 0:
        return _model(fields, kinds, m, u, lam, 0)
    code = np.zeros(len(levels), np.int64)
    for f in range(levels.shape[1]):
        code = code * 8 + levels[:, f]  # levels < 8: one int per pattern, a fast 1-D unique
    _, first, counts = np.unique(code, return_index=True, return_counts=True)
    patterns = levels[first]
    counts = counts.astype(float)
    it = 0
    for it in range(1, max_iter + 1):
        lm = np.full(len(patterns), np.log(lam))
        lu = np.full(len(patterns), np.log(1 - lam))
        for f in range(len(kinds)):
            col = patterns[:, f]
            present = col > 0
            lm[present] += np.log(np.maximum(m[f][col[present]], _EPS))
            lu[present] += np.log(np.maximum(u[f][col[present]], _EPS))
        post = 1.0 / (1.0 + np.exp(np.clip(lu - lm, -500, 500)))
        new_lam = float(np.clip((post * counts).sum() / counts.sum(), 1e-6, 1 - 1e-6))
        wm, wu = post * counts, (1 - post) * counts
        for f, k in enumerate(kinds):
            col = patterns[:, f]
            m[f] = _normalise_w(np.bincount(col, weights=wm, minlength=TOP[k] + 1))
            if not fix_u:
                u[f] = _normalise_w(np.bincount(col, weights=wu, minlength=TOP[k] + 1))
        done = abs(new_lam - lam) < tol
        lam = new_lam
        if done:
            break
    return _model(fields, kinds, m, u, lam, it)


def _normalise_w(w: np.ndarray) -> np.ndarray:
    w = w.copy()
    w[0] = 0.0
    w[1:] += 1e-3 * max(w[1:].sum(), 1.0) / len(w)
    return w / w[1:].sum()


def _model(fields: Sequence[str], kinds: Sequence[str], m: list[np.ndarray], u: list[np.ndarray],
           lam: float, iterations: int) -> FSModel:
    to_t = lambda arrs: tuple(tuple(float(x) for x in a) for a in arrs)  # noqa: E731
    return FSModel(tuple(fields), tuple(kinds), to_t(m), to_t(u), float(lam), iterations)


def random_pairs(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`size` random (i, j) pairs with i != j, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size)
    j = rng.integers(0, n - 1, size)
    j = j + (j >= i)
    return i, j


def as_levels(arrays: Sequence[Any]) -> np.ndarray:
    return np.stack(arrays, axis=1).astype(np.int64) if arrays else np.zeros((0, 0), np.int64)


def fit_sessions(fields: Sequence[str], kinds: Sequence[str], levels: np.ndarray,
                 u: list[np.ndarray], sessions: Sequence[tuple[np.ndarray, Sequence[bool]]],
                 n_records: int) -> FSModel:
    """splink-style training: one EM per blocking rule on that rule's pairs, u fixed from random
    pairs, the rule's own fields held out (inside a block they agree by construction). m of a
    field = the match-weighted mean over the sessions that could see it. lambda (two random
    records match) = the largest per-rule estimate of matches over all record pairs."""
    m_sum = [np.zeros(TOP[k] + 1) for k in kinds]
    m_w = np.zeros(len(kinds))
    matches = 1.0
    for inside, held in sessions:
        lv = levels[inside].copy()
        if len(lv) < 10:
            continue
        lv[:, np.asarray(held, bool)] = 0
        model = fit_em(fields, kinds, lv, u, lam=0.5, fix_u=True)
        est = model.lam * len(lv)
        matches = max(matches, est)
        for f, h in enumerate(held):
            if not h:
                m_sum[f] += est * np.asarray(model.m[f])
                m_w[f] += est
    m = [m_sum[f] / m_w[f] if m_w[f] > 0 else p for f, p in enumerate(prior_m(kinds))]
    lam = min(matches / max(n_records * (n_records - 1) / 2, 1.0), 0.5)
    return _model(fields, kinds, m, u, lam, len(sessions))
