"""Slow, obviously correct loop versions of the diagnostics, for tests only."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def percentile_loop(value: float, norms: list[float]) -> float:
    """Mid-rank percentile of ``value`` among ``norms``."""
    below = sum(1 for n in norms if n < value)
    ties = sum(1 for n in norms if n == value)
    return 100.0 * (below + 0.5 * ties) / len(norms)


def ttest_loop(pos: np.ndarray, neg: np.ndarray) -> list[float]:
    """Paired t-test p-value per column, one column at a time."""
    out = []
    for j in range(pos.shape[1]):
        d = pos[:, j].astype(np.float64) - neg[:, j].astype(np.float64)
        if np.all(d == d[0]):
            out.append(1.0 if d[0] == 0 else 0.0)
        else:
            out.append(
                float(stats.ttest_rel(pos[:, j].astype(np.float64), neg[:, j].astype(np.float64)).pvalue)
            )
    return out


def bh_loop(p: list[float]) -> list[float]:
    """Benjamini-Hochberg q-values by the textbook step-up definition."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    q = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        q[i] = min(running, 1.0)
    return q


def pairs_loop(W: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """All (i < j, cosine) below ``threshold`` by a double loop."""
    out = []
    norms = [float(np.linalg.norm(w.astype(np.float64))) for w in W]
    for i in range(W.shape[0]):
        for j in range(i + 1, W.shape[0]):
            if norms[i] == 0 or norms[j] == 0:
                continue
            c = float(W[i].astype(np.float64) @ W[j].astype(np.float64)) / (norms[i] * norms[j])
            if c < threshold:
                out.append((i, j, c))
    return sorted(out, key=lambda t: (t[2], t[0], t[1]))


def omp_loop(D: np.ndarray, v: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    """Plain OMP for one vector: greedy selection by normalised correlation, lstsq refit."""
    Dn = D / np.linalg.norm(D, axis=1, keepdims=True)
    support: list[int] = []
    r = v.astype(np.float64).copy()
    coef = np.zeros(0)
    for _ in range(k):
        if np.linalg.norm(r) <= 1e-6 * np.linalg.norm(v):
            break
        corr = np.abs(Dn @ r)
        corr[support] = -1
        support.append(int(np.argmax(corr)))
        A = D[support].T.astype(np.float64)
        coef, *_ = np.linalg.lstsq(A, v.astype(np.float64), rcond=None)
        r = v - A @ coef
    return support, coef


def slope_loop(ms: list[float], scores: list[float]) -> float:
    """Least-squares slope by numpy's polyfit."""
    return float(np.polyfit(ms, scores, 1)[0])


def jaccard_loop(a: list[int], b: list[int]) -> float:
    """Jaccard index of two id lists."""
    sa, sb = set(a), set(b)
    return 1.0 if not (sa | sb) else len(sa & sb) / len(sa | sb)


def isclose(a: float, b: float, tol: float) -> bool:
    """Relative-or-absolute closeness."""
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
