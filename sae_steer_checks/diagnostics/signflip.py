"""Per-feature sign-flip tests of paired code differences, over a family that can reach significance.

**Per feature**, the paired differences ``D = SAE(pos) - SAE(neg)`` ``[n_items, d_sae]`` (the item
is the unit: choice-swapped copies are averaged first) get a within-pair sign-flip permutation test,
exact for paired designs and robust to zero-inflated codes (:func:`sign_flip_pvalues`):

- only the ``nnz`` non-zero differences of a feature move under sign flips, so its two-sided p-value
  is never below ``2**(1 - nnz)``; when all of them share a sign that bound *is* the p-value (closed
  form, no draws);
- a feature with few non-zero differences gets the exact p-value, counting all ``2**nnz`` flips by
  meeting in the middle (two halves of ``2**(nnz / 2)`` partial sums);
- the others get Monte Carlo p-values in stages of growing size (the same sign vectors for every
  feature, which keeps their dependence; the two flips that keep or reverse every sign are set
  aside and their share ``2**(1 - nnz)`` added exactly). A first screen of ``10 / alpha`` flips
  stops the features already at p > 2 alpha; the others get ``n_perm`` flips, then 4 times more at
  each stage while at most 9 flips are as extreme as observed, up to about ``20 m' / alpha`` flips
  (``m'`` the tested family below), so a p-value near the smallest Holm or BH bound ``alpha / m'``
  is resolved to about 20 flips as extreme. Whether a feature goes on is decided by rules fixed in
  advance that stop it only when its p-value is above a stage's cut-off, which keeps every p-value
  valid (``P(p <= t) <= t``, see :func:`flip_pvalues`). Exact counts replace the draws from the
  stage where they are the cheaper.

**The tested family** (Holm and BH run over it, not over every active feature): a feature whose
smallest attainable p-value ``2**(1 - nnz)`` is above the bound it would need cannot be rejected,
and counting it only lowers everyone's bound. Tarone's procedure takes the smallest ``K`` for which
at most ``K`` features have ``2**(1 - nnz) <= alpha / K`` (BY: ``alpha / (K (1 + 1/2 + ... + 1/K))``)
and tests exactly those features. A feature is also left out when it cannot reach the minimum effect
whatever the signs (``mean_i |d_ij| < min_effect * typical_j``). Both rules read ``|D|`` only, which
sign flips leave unchanged, so the family is fixed under the null and Holm's family-wise and BH's
false-discovery guarantees hold as for any family chosen in advance. The paired t-test
(``test="t"``) has no attainable bound and only the minimum-effect rule applies.

The leaning check (:mod:`~sae_steer_checks.diagnostics.leaning`) builds the family and runs Holm and
BH (:func:`benjamini_hochberg`) over it.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from scipy import stats as scipy_stats
from torch import Tensor

from sae_steer_checks._validate import validate_fraction

__all__ = [
    "NULL_RESOLUTION",
    "FdrMethod",
    "benjamini_hochberg",
    "clean_differences",
    "flip_budget",
    "flip_pvalues",
    "flip_schedule",
    "flipped_t_pvalues",
    "min_attainable",
    "paired_t_pvalues",
    "sign_flip_pvalues",
    "tarone_family",
]

FdrMethod = Literal["bh", "by"]

# A feature goes on to the next stage of flips while at most this many flips are as extreme as observed.
_REFINE_HITS = 9
# Each stage of flips is this many times the previous one.
_GROWTH = 4
# Flips per unit of m' / alpha that the refinement aims for (about 20 as extreme at the bound alpha / m'),
# and the cheaper aim of the label-flip null (about 4 as extreme at the bound).
_RESOLUTION = 20
NULL_RESOLUTION = 4
# Sign vectors drawn per round, and elements per [rows, features] block (both bound the memory).
_ROUND = 8192
_BLOCK = 1 << 22
# Rounds over at most this many features sum per-byte tables instead of multiplying sign matrices.
_TABLE_FEATURES = 48
# Exact counts by meeting in the middle for at most this many non-zero differences.
_MITM_MAX_NNZ = 40
# Draws keeping or reversing every sign are set aside for at most this many non-zero differences.
_SET_ASIDE_NNZ = 64
# Flips of the same numbers can tie |T(s)| with |T| up to rounding; such ties count as "as extreme".
# Differences below this share of the largest, times n, count as zero (sign-invariant, so still valid).
_TIE_RTOL = 1e-9
# The 8 signs (+1 for a 0 bit) of each byte: row b holds the signs of the bits of b.
_BYTE_SIGNS = (1 - 2 * ((torch.arange(256)[:, None] >> torch.arange(8)) & 1)).to(torch.float64)


def paired_t_pvalues(diffs: Tensor) -> Tensor:
    """Two-sided paired t-test p-values ``[d]`` (float64) per column of ``diffs [n_pairs, d]``.

    A column of identical differences gives p = 1 when they are zero and p = 0 otherwise; with a
    single pair nothing can be tested and every p-value is 1.
    """
    d = diffs.to(torch.float64)
    n = d.shape[0]
    if n < 2 or d.shape[1] == 0:
        return torch.ones(d.shape[1], dtype=torch.float64)
    mean = d.mean(dim=0)
    sd = d.std(dim=0, unbiased=True)
    p = torch.ones_like(mean)
    varying = sd > 0
    t = (mean[varying] / (sd[varying] / n**0.5)).abs().numpy()
    p[varying] = torch.from_numpy(2.0 * scipy_stats.t.sf(t, n - 1)).clamp(max=1.0)
    p[~varying & (mean != 0)] = 0.0
    return p


def flipped_t_pvalues(diffs: Tensor, copies: Tensor) -> Tensor:
    """Paired t-test p-values ``[C, d]`` of ``copies[c, i] * diffs[i, j]`` for every copy at once."""
    d = diffs.to(torch.float64)
    n = d.shape[0]
    mean = copies @ d / n
    ss = (d * d).sum(0)
    var = ((ss - n * mean * mean) / (n - 1)).clamp_min(0.0)
    # Variances at rounding level of the sum of squares are zero (every flipped difference equal).
    varying = var > 1e-12 * ss / n
    p = torch.ones_like(mean)
    t = (mean[varying] / (var[varying] / n).sqrt()).abs().numpy()
    p[varying] = torch.from_numpy(2.0 * scipy_stats.t.sf(t, n - 1)).clamp(max=1.0)
    p[~varying & (mean != 0)] = 0.0
    return p


def tarone_family(min_p: Tensor, alpha: float, fdr_method: FdrMethod = "bh") -> Tensor:
    """Tarone's testable family ``[m]`` (bool) from each hypothesis' smallest attainable p-value.

    Takes the smallest ``K`` such that at most ``K`` hypotheses have ``min_p <= bound(K)``, with
    ``bound(K) = alpha / K`` (``"by"``: ``alpha / (K (1 + 1/2 + ... + 1/K))``), and returns those
    hypotheses. The others could not pass even their most lenient bound, so leaving them out only
    raises the bounds of the rest; when ``min_p`` does not depend on the observed signs the family is
    fixed under the null and the usual guarantees of Holm and BH over it hold.

    Args:
        min_p: Smallest attainable p-value of each hypothesis ``[m]``.
        alpha: Level of the multiple-testing procedure.
        fdr_method: ``"bh"`` or ``"by"`` (the latter divides each bound by the harmonic sum).

    Returns:
        The family ``[m]`` (bool), of size at most ``K``.
    """
    if fdr_method not in ("bh", "by"):
        raise ValueError(f"fdr_method must be 'bh' or 'by', got {fdr_method!r}")
    a = min_p.detach().to(torch.float64).reshape(-1).cpu()
    m = a.numel()
    if m == 0:
        return torch.zeros(0, dtype=torch.bool)
    k = torch.arange(1, m + 1, dtype=torch.float64)
    bound = alpha / k
    if fdr_method == "by":
        bound = bound / k.reciprocal().cumsum(0)
    counts = torch.searchsorted(a.sort().values, bound, right=True)
    first = int(torch.nonzero(counts <= k).flatten()[0])
    return a <= bound[first]


def min_attainable(nnz: Tensor) -> Tensor:
    """Smallest two-sided sign-flip p-value ``2**(1 - nnz)`` (1 for nnz <= 1) ``[m]``."""
    return torch.exp2(1.0 - nnz.to(torch.float64)).clamp(max=1.0)


def clean_differences(diffs: Tensor) -> Tensor:
    """Float64 copy of ``diffs [n, m]`` with rounding-level entries of each column set to 0.

    An entry at most ``_TIE_RTOL * n`` times its column's largest ``|d|`` cannot move the statistic
    beyond the tie tolerance; zeroing it depends on ``|d|`` only, so the test stays valid, and every
    remaining entry changes ``|T|`` by more than the tolerance when flipped.
    """
    d = diffs.to(torch.float64).clone()
    tol = _TIE_RTOL * d.shape[0] * d.abs().amax(0)
    d[d.abs() <= tol] = 0.0
    return d


def flip_budget(
    m_tested: int,
    alpha: float,
    fdr_method: str,
    n_perm: int,
    max_perm: int | None,
    resolution: int = _RESOLUTION,
) -> int:
    """Flips the refinement aims for: ``resolution * m' / alpha`` (BY: times the harmonic sum), >= n_perm."""
    harmonic = sum(1.0 / k for k in range(1, m_tested + 1)) if fdr_method == "by" else 1.0
    auto = math.ceil(resolution * max(m_tested, 1) * harmonic / alpha)
    budget = max(n_perm, auto)
    return max(1, min(budget, max_perm)) if max_perm is not None else budget


def flip_schedule(
    n_perm: int, budget: int, alpha: float, extra: tuple[int, ...] = ()
) -> list[tuple[int, int]]:
    """Stages of flips: (flips at the stage's end, most hits to go on); the last ends at ``budget``.

    The first stage is a screen of ``floor(10 / alpha) - 1`` flips where a feature goes on with at
    most 19 flips as extreme (it stops only at p > 2 alpha, so a p-value below alpha goes on with
    high probability); then stages grow 4-fold, with ``n_perm``, ``budget`` and the ``extra`` values
    up to ``budget`` as stage ends, and a feature goes on with at most 9 flips as extreme.
    """
    first = min(n_perm, budget)
    screen = math.floor((_REFINE_HITS + 1) / alpha) - 1
    start = screen if 1 <= screen < first else first
    ends = {start, first, budget} | {e for e in extra if start <= e <= budget}
    b = start
    while b < budget:
        ends.add(b)
        b *= _GROWTH
    return [(e, 2 * _REFINE_HITS + 1 if e < first and e == start else _REFINE_HITS) for e in sorted(ends)]


def _subset_sums(vals: Tensor) -> Tensor:
    """All ``2**w`` signed sums ``[k, 2**w]`` of the rows of ``vals [k, w]`` (all-plus first)."""
    out = vals.new_zeros(vals.shape[0], 1)
    for i in range(vals.shape[1]):
        col = vals[:, i : i + 1]
        out = torch.cat([out + col, out - col], dim=1)
    return out


def _exact_pvalues(d: Tensor, feats: Tensor, thr: Tensor, nnz: Tensor) -> Tensor:
    """Exact two-sided sign-flip p-values ``[P]`` of the pairs (feature ``feats[i]``, threshold ``thr[i]``).

    The ``w`` non-zero differences of a feature are split into halves with ``2**(w // 2)`` and
    ``2**(w - w // 2)`` signed partial sums; for each sum ``a`` of the first half, the sums ``b`` of
    the (sorted) second half with ``|a + b| >= thr`` are counted by two binary searches, so the count
    over all ``2**w`` flips costs about ``2**(w / 2)`` steps. ``p = count / 2**w``.
    """
    out = torch.ones(feats.numel(), dtype=torch.float64)
    widths = nnz[feats]
    for w in torch.unique(widths).tolist():
        sel = torch.nonzero(widths == w).flatten()
        cols, inv = torch.unique(feats[sel], return_inverse=True)
        block = d[:, cols].T
        vals = block.gather(1, block.abs().topk(w, dim=1).indices)
        w1 = w // 2
        half = 2 ** max(w1, w - w1)
        step = max(1, _BLOCK // half)
        hits = torch.zeros(sel.numel(), dtype=torch.float64)
        for f0 in range(0, cols.numel(), step):
            first = _subset_sums(vals[f0 : f0 + step, :w1])
            second = _subset_sums(vals[f0 : f0 + step, w1:]).sort(dim=1).values
            pairs = torch.nonzero((inv >= f0) & (inv < f0 + step)).flatten()
            for s0 in range(0, pairs.numel(), step):
                idx = pairs[s0 : s0 + step]
                loc, t = inv[idx] - f0, thr[sel[idx]][:, None]
                a, b = first[loc], second[loc]
                at_least = b.shape[1] - torch.searchsorted(b, t - a, side="left")
                at_most = torch.searchsorted(b, -t - a, side="right")
                hits[idx] = (at_least + at_most).sum(1).to(torch.float64)
        out[sel] = hits / 2.0**w
    return out


def _signs(codes: Tensor, n: int) -> Tensor:
    """The sign matrix ``[R, n]`` (float64) whose bits are the bytes ``codes [R, G]`` (bit 0: +1)."""
    return _BYTE_SIGNS[codes].reshape(codes.shape[0], 8 * codes.shape[1])[:, :n]


def _abs_sums(d: Tensor, codes: Tensor, signs: Tensor | None) -> Tensor:
    """``|sum_i s_i d_ij|`` ``[R, k]`` for the sign vectors whose bits are the bytes ``codes [R, G]``.

    Few features: per-byte tables of the 256 signed sums of each group of 8 items, summed over the
    groups, so no sign matrix is built. Many: ``signs`` (:func:`_signs` of ``codes``) times ``d``.
    Both read the same signs.
    """
    n, k = d.shape
    groups = codes.shape[1]
    if signs is None or k <= _TABLE_FEATURES:
        padded = torch.cat([d, d.new_zeros(8 * groups - n, k)]).reshape(groups, 8, k)
        tables = torch.einsum("bi,gik->gbk", _BYTE_SIGNS, padded)
        by_group = codes.T.contiguous()
        out = tables[0].index_select(0, by_group[0])
        for g in range(1, groups):
            out += tables[g].index_select(0, by_group[g])
        return out.abs_()
    return (signs @ d).abs_()


def _count_hits(sums: Tensor, thr: Tensor, alive: Tensor) -> Tensor:
    """Per (copy, feature) number of rows of ``sums [R, k]`` at or above ``thr [C, k]`` ``[C, k]``.

    Only pairs in ``alive [C, k]`` are counted (others get 0). Many live copies per feature: the
    copies' thresholds are sorted and each row placed among them (one binary search per row);
    few: a direct comparison, copy by copy for copies live on many features, else pair by pair.
    """
    n_copies, k = thr.shape
    out = torch.zeros(n_copies, k, dtype=torch.float64)
    pairs = int(alive.sum())
    if not pairs:
        return out
    if pairs > 8 * k:
        order = thr.T.contiguous().sort(dim=1)
        below = torch.searchsorted(order.values, sums.T.contiguous(), right=True)  # [k, R]
        below += (n_copies + 1) * torch.arange(k)[:, None]
        counts = torch.bincount(below.reshape(-1), minlength=k * (n_copies + 1)).reshape(k, n_copies + 1)
        # rows with more than r thresholds below them reach the r-th smallest threshold
        reach = counts.flip(1).cumsum(1).flip(1)[:, 1:].to(torch.float64)
        out.T.scatter_(1, order.indices, reach)
        return out * alive
    per_copy = alive.sum(1)
    for c in torch.nonzero(per_copy > k // 8).flatten().tolist():
        out[c] = (sums >= thr[c]).sum(0).to(torch.float64) * alive[c]
    rest = alive & (per_copy <= k // 8)[:, None]
    if bool(rest.any()):
        c_idx, f_idx = torch.nonzero(rest, as_tuple=True)
        out[c_idx, f_idx] = (sums[:, f_idx] >= thr[c_idx, f_idx]).sum(0).to(torch.float64)
    return out


def flip_pvalues(
    d: Tensor,
    copies: Tensor,
    *,
    stages: list[tuple[int, int]],
    min_flips: Tensor,
    exact_nnz: int,
    refine: Tensor | None,
    generator: torch.Generator,
    caps: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Two-sided sign-flip p-values ``[C, m]`` of ``copies[c, i] * d[i, j]`` and the flips used.

    ``d [n, m]`` is cleaned (:func:`clean_differences`); ``copies [C, n]`` are item sign vectors (row 0 all
    ones for the observed data). Every copy reads the same random sign vectors ``s``: for copy
    ``f`` they stand for the flips ``s * f``, as uniform as ``s``, so each copy's p-values are those
    of its own sign-flip test. Per pair (copy, feature):

    - ``nnz <= 1`` or ``|T| = 0``: p = 1; all non-zero differences of one sign: ``p = q0 =
      2**(1 - nnz)`` (only the two flips keeping or reversing every sign are as extreme);
    - exact counts (:func:`_exact_pvalues`) when ``nnz <= exact_nnz``, or from the stage where
      ``2**ceil(nnz / 2)`` flips are no more than the stage's;
    - otherwise Monte Carlo given the observed signs are not all one: the draws reversing or keeping
      every sign (always as extreme) are set aside, and with ``h`` hits among the ``B`` other draws
      ``p = q0 + (1 - q0) (1 + h) / (1 + B)``. Under the null this is valid: given "not all one
      sign" the observed pattern is exchangeable with the other draws. A pair goes on to the next
      stage (``stages`` holds each stage's cumulative end and most hits ``H_j`` to go on) while
      ``h <= H_j`` or, past the first stage, it has fewer than ``min_flips[c]`` flips, and (past
      the first stage) while ``refine[c, j]``, up to ``caps[c]`` flips (a stage end; default the
      last). Going on is decided by ``p_j <= c_j``, with each ``c_j`` fixed in advance; for the
      first stage ``j`` with ``c_j < t``, ``p <= t`` implies ``p_j <= t``, so ``P(p <= t) <= t``.

    Returns:
        P-values ``[C, m]`` and the random flips each pair received ``[C, m]`` (int64).
    """
    n, m = d.shape
    n_copies = copies.shape[0]
    p = torch.ones(n_copies, m, dtype=torch.float64)
    flips = torch.zeros(n_copies, m, dtype=torch.long)
    if m == 0 or n == 0:
        return p, flips
    absd = d.abs()
    nnz = (d != 0).sum(0)
    tol = _TIE_RTOL * n * absd.amax(0)
    top = absd.sum(0) - tol
    observed = (copies @ d).abs()
    thr = observed - tol
    q0 = min_attainable(nnz).expand(n_copies, m)
    one_sign = (nnz > 0) & (observed >= top)
    p = torch.where(one_sign, q0, p)
    alive = (nnz > 1) & ~one_sign & (thr > 0)
    exact_done = torch.zeros(n_copies, m, dtype=torch.bool)
    hits = torch.zeros(n_copies, m, dtype=torch.float64)
    set_aside = torch.zeros(m, dtype=torch.float64)
    h1 = torch.zeros(n_copies, m, dtype=torch.float64)
    b1 = torch.zeros(n_copies, m, dtype=torch.float64)
    groups = (n + 7) // 8
    prev = 0
    for s, (end, limit) in enumerate(stages):
        if s > 0 and refine is not None:
            alive &= refine
        feats = torch.nonzero(alive.any(0)).flatten()
        if not feats.numel():
            break
        w = nnz[feats]
        exact = (w <= exact_nnz) | ((w <= _MITM_MAX_NNZ) & (2 ** ((w + 1) // 2) <= end))
        ex = feats[exact]
        if ex.numel():
            c_idx, f_loc = torch.nonzero(alive[:, ex], as_tuple=True)
            f_idx = ex[f_loc]
            p[c_idx, f_idx] = _exact_pvalues(d, f_idx, thr[c_idx, f_idx], nnz)
            exact_done[c_idx, f_idx] = True
            alive[:, ex] = False
        mc = feats[~exact]
        if not mc.numel():
            break
        for r0 in range(prev, end, _ROUND):
            rows = min(_ROUND, end - r0)
            codes = torch.randint(0, 256, (rows, groups), generator=generator, device=generator.device)
            codes = codes.to(device="cpu", dtype=torch.long)
            signs = _signs(codes, n) if mc.numel() > _TABLE_FEATURES else None
            step = max(1, _BLOCK // rows)
            for f0 in range(0, mc.numel(), step):
                cols = mc[f0 : f0 + step]
                sums = _abs_sums(d[:, cols], codes, signs)
                # Beyond _SET_ASIDE_NNZ non-zero differences the all-one-sign flips (chance
                # 2**(1 - nnz) each) are left among the hits, which can only raise p.
                few = nnz[cols] <= _SET_ASIDE_NNZ
                if bool(few.any()):
                    set_aside[cols[few]] += (sums[:, few] >= top[cols[few]]).sum(0).to(torch.float64)
                hits[:, cols] += _count_hits(sums, thr[:, cols], alive[:, cols])
        live = alive[:, mc]
        new_h = hits[:, mc] - set_aside[mc]
        new_b = end - set_aside[mc]
        h1[:, mc] = torch.where(live, new_h, h1[:, mc])
        b1[:, mc] = torch.where(live, new_b.expand_as(new_h), b1[:, mc])
        flips[:, mc] = torch.where(live, end, flips[:, mc])
        # past the screen n_perm flips come in one go (min_flips)
        more = (new_h <= limit) | ((s > 0) & (end < min_flips[:, None]))
        if caps is not None:
            more &= end < caps[:, None]
        alive[:, mc] = live & more & (s < len(stages) - 1)
        prev = end
    mc_pairs = (flips > 0) & ~exact_done
    p = torch.where(mc_pairs, q0 + (1 - q0) * (1 + h1) / (1 + b1), p)
    return p, flips


def sign_flip_pvalues(
    diffs: Tensor,
    *,
    n_perm: int = 4000,
    max_perm: int | None = None,
    alpha: float = 0.05,
    exact_nnz: int = 12,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, int]:
    """Per-column two-sided sign-flip p-values ``[d]``: closed form, exact, or refined Monte Carlo.

    Only the non-zero differences of a column move under sign flips. All of one sign: ``p =
    2**(1 - nnz)`` exactly. At most ``exact_nnz`` of them (or few enough that meeting in the middle
    costs less than the current stage of draws): the exact p-value over all ``2**nnz`` flips. Else
    random flips in stages (:func:`flip_pvalues`): a column goes on while at most 9 flips are as
    extreme as observed (19 in a first screen of ``floor(10 / alpha) - 1`` flips), through at least
    ``n_perm`` flips, up to about ``20 m' / alpha`` in all, ``m'`` the size of Tarone's family of the
    columns (:func:`tarone_family`), or ``max_perm`` when given. Every p-value is valid
    (``P(p <= t) <= t`` under the null).

    Args:
        diffs: Per-item paired differences ``[n_items, d]``.
        n_perm: Flips every column that may still be significant receives.
        max_perm: Most flips a column receives (None: about ``20 m' / alpha``).
        alpha: The level the p-values are meant for (sets the screen and the resolution).
        exact_nnz: Columns with at most this many non-zero differences are tested exactly.
        generator: Generator (seed 0 when None).

    Returns:
        P-values ``[d]`` (float64) and the most random sign vectors any column received (0 when
        every column was settled exactly).
    """
    alpha = validate_fraction(alpha, "alpha")
    if n_perm < 1 or (max_perm is not None and max_perm < 1):
        raise ValueError(f"n_perm and max_perm must be >= 1, got {n_perm} and {max_perm}")
    d = clean_differences(diffs.detach().cpu())
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    m_tested = int(tarone_family(min_attainable((d != 0).sum(0)), alpha).sum())
    budget = flip_budget(m_tested, alpha, "bh", n_perm, max_perm)
    p, flips = flip_pvalues(
        d,
        d.new_ones(1, d.shape[0]),
        stages=flip_schedule(n_perm, budget, alpha),
        min_flips=torch.tensor([n_perm]),
        exact_nnz=exact_nnz,
        refine=None,
        generator=gen,
    )
    return p[0], int(flips.max()) if flips.numel() else 0


def benjamini_hochberg(p_values: Tensor, method: FdrMethod = "bh") -> Tensor:
    """BH (``"bh"``) or BY (``"by"``) adjusted p-values (q-values) ``[m]`` float64 of ``p_values [m]``."""
    if method not in ("bh", "by"):
        raise ValueError(f"method must be 'bh' or 'by', got {method!r}")
    if p_values.numel() == 0:
        return p_values.to(torch.float64)
    q = scipy_stats.false_discovery_control(p_values.to(torch.float64).numpy(), method=method)
    return torch.from_numpy(np.asarray(q, dtype=np.float64))
