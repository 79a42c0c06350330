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


def encode_loop(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_enc: np.ndarray,
    b_dec: np.ndarray,
    *,
    architecture: str,
    subtract_b_dec: bool,
    threshold: np.ndarray | None = None,
    k: int | None = None,
) -> list[float]:
    """Feature activations of one input ``x [d_in]``, one feature at a time, in float64."""
    d_in, d_sae = W_enc.shape
    z = [float(x[i]) - (float(b_dec[i]) if subtract_b_dec else 0.0) for i in range(d_in)]
    pre = [sum(z[i] * float(W_enc[i, j]) for i in range(d_in)) + float(b_enc[j]) for j in range(d_sae)]
    if architecture == "jumprelu":
        assert threshold is not None
        return [p if p > float(threshold[j]) and p > 0 else 0.0 for j, p in enumerate(pre)]
    if architecture == "relu":
        return [max(p, 0.0) for p in pre]
    assert k is not None
    kept = sorted(range(d_sae), key=lambda j: -pre[j])[:k]
    return [max(pre[j], 0.0) if j in kept else 0.0 for j in range(d_sae)]


def top_loop(values: list[float], k: int) -> list[tuple[int, float]]:
    """The up to ``k`` largest positive entries as (id, value), ties to the smaller id."""
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    return [(i, values[i]) for i in order[:k] if values[i] > 0]


def mass_in_zero_loop(f_v: list[float], f_0: list[float]) -> float:
    """Share of SAE(v)'s L1 mass already present in SAE(0)."""
    total = sum(f_v)
    shared = sum(max(min(a, b), 0.0) for a, b in zip(f_v, f_0, strict=True))
    return shared / total if total > 0 else 0.0


def leaning_fractions_loop(
    pos: np.ndarray, neg: np.ndarray, q: list[float], alpha: float
) -> tuple[float, float, int, int]:
    """(raw fraction, significant fraction, n_active, n_significant) feature by feature."""
    n_active = n_negative = n_sig = n_sig_negative = 0
    for j in range(pos.shape[1]):
        if not any(pos[:, j] > 0) and not any(neg[:, j] > 0):
            continue
        n_active += 1
        leans_negative = float(np.mean(neg[:, j].astype(np.float64))) > float(
            np.mean(pos[:, j].astype(np.float64))
        )
        n_negative += leans_negative
        if q[j] <= alpha:
            n_sig += 1
            n_sig_negative += leans_negative
    raw = n_negative / n_active if n_active else 0.0
    return raw, (n_sig_negative / n_sig if n_sig else 0.0), n_active, n_sig


def gradient_pursuit_loop(D: np.ndarray, v: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    """Gradient pursuit for one vector: greedy selection, one exact line-search step on the support."""
    Dn = D / np.linalg.norm(D, axis=1, keepdims=True)
    support: list[int] = []
    x = np.zeros(0)
    r = v.astype(np.float64).copy()
    for _ in range(k):
        if np.linalg.norm(r) <= 1e-6 * np.linalg.norm(v):
            break
        corr = np.abs(Dn @ r)
        corr[support] = -1
        support.append(int(np.argmax(corr)))
        x = np.append(x, 0.0)
        A = D[support].astype(np.float64)
        g = A @ r
        c = g @ A
        step = float(r @ c) / float(c @ c) if float(c @ c) > 0 else 0.0
        x = x + step * g
        r = r - step * c
    return support, x


def spurious_loop(
    U: np.ndarray,
    v: np.ndarray,
    pre_change: np.ndarray,
    f_v: np.ndarray,
    f_0: np.ndarray,
    rate: np.ndarray,
    negative: np.ndarray,
    threshold: float,
    rare_rate: float,
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """(spurious (feature, explained_by), bias-explained, unexplained) by a loop over features.

    ``U`` holds unit decoder rows; a partner must be negative-leaning with v projecting negatively on it.
    """
    spurious, bias, unexplained = [], [], []
    for i in range(U.shape[0]):
        if not (f_v[i] > 0 and rate[i] <= rare_rate):
            continue
        best, best_cos = None, None
        if pre_change[i] > 0:
            for j in range(U.shape[0]):
                cos = float(U[i] @ U[j])
                eligible = bool(negative[j]) and float(U[j] @ v) < 0
                if j != i and eligible and cos < threshold and (best_cos is None or cos < best_cos):
                    best, best_cos = j, cos
        if best is not None:
            spurious.append((i, best))
        elif f_0[i] > 0:
            bias.append(i)
        else:
            unexplained.append(i)
    return spurious, bias, unexplained
