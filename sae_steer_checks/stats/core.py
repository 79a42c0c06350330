"""Statistical primitives for calibrated verdicts: slopes, ratio intervals, sign-flip nulls, FDR, bootstrap.

The item is the unit: inputs hold one row per item (merge pseudo-replicated copies with :func:`cluster_mean`).
Sign flips and bootstrap draws are chunked matrix products of ``[B, n_items]`` weights with the data.
Randomness comes from a ``torch.Generator`` or an integer seed (``None`` means seed 0: reproducible).
Arithmetic is float64; tensors come back float64 on the data's device. Groups (e.g. answer letters) are
weighted equally everywhere: means are means of group means, and resampling stays within groups.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from scipy import stats as scipy_stats
from torch import Tensor

__all__ = [
    "Interval",
    "NullDistribution",
    "NullSummary",
    "RatioInterval",
    "SignFlipResult",
    "SlopeEstimate",
    "as_generator",
    "benjamini_hochberg",
    "bootstrap_items",
    "cluster_mean",
    "fit_slope",
    "fraction_null",
    "holm",
    "item_slopes_summary",
    "null_percentile",
    "ratio_interval",
    "sign_flip_test",
    "summarize_null",
    "t_quantile",
]

GeneratorLike = torch.Generator | int | None
Groups = Sequence[int] | Tensor | None
Statistic = Callable[[Tensor], Tensor]

# Sign flips of the same numbers can tie |T(s)| with |T| up to rounding; such ties count as "as extreme".
_TIE_RTOL = 1e-9


@dataclass(frozen=True)
class SlopeEstimate:
    """Mean of per-item slopes with its standard error and t interval."""

    mean: float
    """Mean slope (the mean of the group means when groups are given)."""
    se: float
    """Standard error of ``mean``."""
    n_items: int
    """Number of items (slopes)."""
    n_groups: int
    """Number of groups (1 without groups)."""
    df: int
    """Degrees of freedom of the t interval, ``n_items - n_groups``."""
    ci_low: float
    """Lower end of the two-sided t interval."""
    ci_high: float
    """Upper end of the two-sided t interval."""
    level: float
    """Confidence level."""


@dataclass(frozen=True)
class RatioInterval:
    """A ratio of two paired mean slopes with its interval."""

    ratio: float
    """mean(num) / mean(den), group-balanced when groups are given (inf or nan when mean(den) is 0)."""
    ci_low: float
    """Lower end; -inf when not ``bounded``."""
    ci_high: float
    """Upper end; +inf when not ``bounded``."""
    bounded: bool
    """False when the denominator is not significantly non-zero: no finite interval (inconclusive)."""
    method: str
    """``"fieller"`` or ``"bootstrap"``."""
    level: float
    """Confidence level."""


@dataclass(frozen=True)
class SignFlipResult:
    """Per-feature paired sign-flip permutation test."""

    mean: Tensor
    """Observed mean difference per feature ``[d]``."""
    p_values: Tensor
    """Two-sided p-values ``[d]``."""
    n_perm: int
    """Number of sign vectors used (``2**n_items`` when exact)."""
    exact: bool
    """True when all ``2**n_items`` sign vectors were enumerated (an exact test)."""


@dataclass(frozen=True)
class NullDistribution:
    """A whole-matrix statistic and its sign-flip null distribution."""

    observed: float
    """Statistic of the unflipped mean differences."""
    draws: Tensor
    """Statistic under each sign vector ``[B]``."""
    percentile: float
    """Mid-rank percentile of ``observed`` among ``draws`` (see :func:`null_percentile`)."""
    null_mean: float
    """Mean of the draws."""
    null_q05: float
    """5th percentile of the draws."""
    null_q95: float
    """95th percentile of the draws."""
    exact: bool
    """True when all ``2**n_items`` sign vectors were enumerated."""


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval over items."""

    estimate: float
    """Statistic of the (group-balanced) item means."""
    ci_low: float
    """Lower percentile of the bootstrap draws."""
    ci_high: float
    """Upper percentile of the bootstrap draws."""
    level: float
    """Confidence level."""
    n_boot: int
    """Number of bootstrap draws."""


@dataclass(frozen=True)
class NullSummary:
    """Summary of a null distribution and where an observed value falls in it."""

    mean: float
    """Mean of the draws."""
    sd: float
    """Standard deviation of the draws (n - 1 denominator; 0 for one draw)."""
    q05: float
    """5th percentile of the draws (linear interpolation)."""
    q95: float
    """95th percentile of the draws (linear interpolation)."""
    n: int
    """Number of draws."""
    percentile: float
    """Mid-rank percentile of the observed value among the draws, in [0, 100]."""

    def to_dict(self) -> dict[str, float]:
        """JSON-ready ``mean``, ``q05``, ``q95``, ``n`` and ``percentile`` (the report's null sections)."""
        return {
            "mean": self.mean,
            "q05": self.q05,
            "q95": self.q95,
            "n": self.n,
            "percentile": self.percentile,
        }


def as_generator(generator: GeneratorLike) -> torch.Generator:
    """``generator`` itself, or a CPU generator seeded by the int (None: seed 0)."""
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(0 if generator is None else int(generator))


def _check_unit(value: float, name: str = "level") -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")


def _check_at_least(value: int, name: str, minimum: int = 1) -> None:
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _float64(x: Sequence[float] | Tensor, name: str, shape: str, ndim: int | None = None) -> Tensor:
    """``x`` as a finite float64 tensor with ``ndim`` dims; shapes starting ``[n_items`` need 2+ rows."""
    t = torch.as_tensor(x).detach().to(torch.float64)
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape}, got shape {list(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, found {int((~torch.isfinite(t)).sum())} NaN/inf entries")
    if ndim is not None and shape.startswith("[n_items"):
        _check_at_least(t.shape[0], "n_items", 2)
    return t


def _group_index(groups: Groups, n: int) -> tuple[Tensor, int]:
    """Group of each item as ``0..G-1`` ``[n]`` (CPU) and G; every group needs 2 items to have a spread."""
    if groups is None:
        return torch.zeros(n, dtype=torch.long), 1
    g = torch.as_tensor(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise ValueError(f"groups must have shape [{n}] (one label per item), got shape {list(g.shape)}")
    labels, idx, counts = torch.unique(g, return_inverse=True, return_counts=True)
    if int(counts.min()) < 2:
        bad = labels[counts.argmin()].item()
        raise ValueError(f"every group needs at least 2 items, group {bad} has {int(counts.min())}")
    return idx.long().cpu(), labels.numel()


def _item_weights(idx: Tensor, n_groups: int) -> Tensor:
    """``[n]`` weight of each item in the group-balanced mean, ``1 / (n_g G)``."""
    return 1.0 / (torch.bincount(idx, minlength=n_groups).to(torch.float64)[idx] * n_groups)


def _balanced_moments(x: Tensor, idx: Tensor, n_groups: int) -> tuple[Tensor, Tensor]:
    """Group-balanced mean ``[k]`` of the rows of ``x`` ``[n, k]`` and that mean's covariance ``[k, k]``."""
    idx = idx.to(x.device)
    counts = torch.bincount(idx, minlength=n_groups).to(x.dtype)
    group_means = x.new_zeros(n_groups, x.shape[1]).index_add_(0, idx, x) / counts[:, None]
    resid = x - group_means[idx]
    # Independent groups, each weighted 1/G, with Cov(group mean) = S_g / n_g. (einsum, not resid.T @ resid:
    # the transposed BLAS call is a hundred times slower for tiny inputs on a busy machine.)
    w = 1.0 / ((counts - 1) * counts * n_groups**2)[idx]
    return group_means.mean(0), torch.einsum("n,ni,nj->ij", w, resid, resid)


def _resample_weights(idx: Tensor, n_groups: int, n_boot: int, gen: torch.Generator) -> Tensor:
    """``[n_boot, n]`` weights: each group redraws its n_g items with replacement, each weighted 1/(n_g G)."""
    idx = idx.to(gen.device)
    counts = torch.bincount(idx, minlength=n_groups)
    slot_group, order = torch.sort(idx, stable=True)  # slot k of a draw belongs to group slot_group[k]
    size, start = counts[slot_group], (torch.cumsum(counts, 0) - counts)[slot_group]
    u = torch.rand(n_boot, idx.numel(), generator=gen, device=gen.device, dtype=torch.float64)
    picks = order[start + torch.minimum((u * size).long(), size - 1)]
    draws = torch.zeros_like(u).scatter_add_(1, picks, torch.ones_like(u))
    return draws * _item_weights(idx, n_groups)


def _sign_matrix(n: int, n_perm: int, generator: GeneratorLike) -> tuple[Tensor, bool]:
    """``[B, n]`` float64 signs: all ``2**n`` (identity first; exact) if at most ``n_perm``, else random."""
    gen = as_generator(generator)
    if 2**n <= n_perm:
        bits = (torch.arange(2**n, device=gen.device)[:, None] >> torch.arange(n, device=gen.device)) & 1
        return (1 - 2 * bits).to(torch.float64), True
    bits = torch.randint(0, 2, (n_perm, n), generator=gen, device=gen.device)
    return (1 - 2 * bits).to(torch.float64), False


def _batched_statistic(statistic: Statistic, weights: Tensor, data: Tensor, chunk: int) -> Tensor:
    """``statistic(weights @ data)`` ``[B]``, in chunks of rows of ``weights`` ``[B, n]``."""
    weights = weights.to(data.device)
    out = torch.empty(weights.shape[0], dtype=torch.float64, device=data.device)
    for i in range(0, weights.shape[0], chunk):
        means = weights[i : i + chunk] @ data
        values = torch.as_tensor(statistic(means))
        if tuple(values.shape) != (means.shape[0],):
            shape = list(values.shape)
            raise ValueError(f"statistic must map means [B, d] to values [B], got {shape} for B={len(means)}")
        out[i : i + chunk] = values.to(device=data.device, dtype=torch.float64)
    return out


def _percentile_interval(draws: Tensor, level: float) -> tuple[float, float]:
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=draws.dtype, device=draws.device)
    low, high = torch.quantile(draws, q).tolist()
    return low, high


def t_quantile(level: float, df: int) -> float:
    """Two-sided Student-t critical value (``scipy.stats.t``).

    Args:
        level: Two-sided confidence level in (0, 1).
        df: Degrees of freedom, at least 1.

    Returns:
        The t with ``P(|T| <= t) = level``.
    """
    _check_unit(level)
    _check_at_least(df, "df")
    return float(scipy_stats.t.ppf(0.5 + level / 2, df))


def fit_slope(x: Sequence[float] | Tensor, y: Tensor) -> Tensor:
    """Least-squares slope of ``y`` against ``x`` along the last axis of ``y``.

    Args:
        x: Design points ``[m]`` (e.g. steering multipliers), at least 2 distinct.
        y: Responses ``[..., m]``.

    Returns:
        Slopes ``[...]``.
    """
    yy = _float64(y, "y", "[..., m]")
    xx = _float64(x, "x", "[m]").to(yy.device)
    if xx.ndim != 1 or yy.ndim < 1 or yy.shape[-1] != xx.shape[0]:
        raise ValueError(f"x must be [m] and y [..., m], got shapes {list(xx.shape)} and {list(yy.shape)}")
    if torch.unique(xx).numel() < 2:
        raise ValueError(f"x must hold at least 2 distinct values, got {xx.tolist()}")
    xc = xx - xx.mean()
    return (yy - yy.mean(-1, keepdim=True)) @ xc / (xc @ xc)


def cluster_mean(values: Tensor, clusters: Tensor) -> tuple[Tensor, Tensor]:
    """Average rows sharing a cluster id (e.g. an item and its choice-swapped copy) into one row.

    Args:
        values: Rows ``[m, ...]``.
        clusters: Integer cluster id of each row ``[m]``.

    Returns:
        The sorted distinct ids ``[n_clusters]`` and each cluster's mean row ``[n_clusters, ...]``.
    """
    v = _float64(values, "values", "[m, ...]")
    c = torch.as_tensor(clusters, device=v.device)
    if v.ndim < 1 or c.ndim != 1 or c.shape[0] != v.shape[0]:
        raise ValueError(f"clusters must be [m] for values [m, ...], got {list(c.shape)} and {list(v.shape)}")
    ids, idx, counts = torch.unique(c, return_inverse=True, return_counts=True)
    sums = v.new_zeros((ids.numel(), *v.shape[1:])).index_add_(0, idx, v)
    return ids, sums / counts.to(torch.float64).reshape(-1, *([1] * (v.ndim - 1)))


def item_slopes_summary(slopes: Tensor, groups: Groups = None, *, level: float = 0.95) -> SlopeEstimate:
    """Mean of per-item slopes with its standard error and t interval.

    Args:
        slopes: One slope per item ``[n_items]``, ``n_items >= 2``.
        groups: Group label per item ``[n_items]`` (2+ items per group), or None for one group.
        level: Two-sided confidence level.

    Returns:
        The mean of the group means, its SE ``sqrt(sum_g s_g^2 / n_g) / G`` and the t interval with
        ``n_items - G`` degrees of freedom.
    """
    s = _float64(slopes, "slopes", "[n_items]", ndim=1)
    _check_unit(level)
    idx, n_groups = _group_index(groups, s.shape[0])
    mean_t, cov = _balanced_moments(s[:, None], idx, n_groups)
    mean, se, df = float(mean_t[0]), math.sqrt(float(cov[0, 0])), s.shape[0] - n_groups
    half = t_quantile(level, df) * se
    return SlopeEstimate(mean, se, s.shape[0], n_groups, df, mean - half, mean + half, level)


def ratio_interval(
    num: Tensor,
    den: Tensor,
    *,
    groups: Groups = None,
    level: float = 0.95,
    method: Literal["fieller", "bootstrap"] = "fieller",
    n_boot: int = 2000,
    generator: GeneratorLike = None,
) -> RatioInterval:
    """Interval for the ratio of two paired mean slopes (e.g. retention ``b_sae / b_orig``).

    Fieller: the r with ``(a - r b)^2 <= t^2 (V_aa - 2 r V_ab + r^2 V_bb)``, a and b the (balanced) means, V
    their covariance. That set is a finite interval exactly when ``b^2 > t^2 V_bb`` (the denominator is
    significantly non-zero); otherwise it is the whole line or two rays, reported as ``bounded=False`` with
    ends -inf, +inf ("inconclusive"). Bootstrap: items are resampled within groups and the interval is the
    percentile interval of the ratios; not bounded (infinite ends) when the denominators' interval holds 0.

    Args:
        num: Per-item numerator slopes ``[n_items]``.
        den: Per-item denominator slopes ``[n_items]``, paired with ``num``.
        groups: Group label per item ``[n_items]``, or None.
        level: Two-sided confidence level.
        method: ``"fieller"`` or ``"bootstrap"``.
        n_boot: Bootstrap draws (bootstrap only).
        generator: Generator or integer seed (bootstrap only).

    Returns:
        The ratio, its interval and whether the interval is bounded.
    """
    top, bottom = _float64(num, "num", "[n_items]", 1), _float64(den, "den", "[n_items]", 1)
    if top.shape != bottom.shape:
        raise ValueError(f"num and den must pair the same items, got {top.shape[0]} and {bottom.shape[0]}")
    _check_unit(level)
    a_b = torch.stack([top, bottom.to(top.device)], 1)
    idx, n_groups = _group_index(groups, a_b.shape[0])
    means, cov = _balanced_moments(a_b, idx, n_groups)
    ratio = float(means[0] / means[1])
    if method == "fieller":
        (a, b), ((vaa, vab), (_, vbb)) = means.tolist(), cov.tolist()
        t2 = t_quantile(level, a_b.shape[0] - n_groups) ** 2
        qa, qb, qc = b * b - t2 * vbb, a * b - t2 * vab, a * a - t2 * vaa
        if qa <= 0:
            return RatioInterval(ratio, -math.inf, math.inf, False, method, level)
        root = math.sqrt(max(qb * qb - qa * qc, 0.0))  # >= 0 in exact arithmetic when qa > 0
        return RatioInterval(ratio, (qb - root) / qa, (qb + root) / qa, True, method, level)
    if method != "bootstrap":
        raise ValueError(f"method must be 'fieller' or 'bootstrap', got {method!r}")
    _check_at_least(n_boot, "n_boot")
    boot = _resample_weights(idx, n_groups, n_boot, as_generator(generator)).to(a_b.device) @ a_b
    den_low, den_high = _percentile_interval(boot[:, 1], level)
    if den_low <= 0 <= den_high:
        return RatioInterval(ratio, -math.inf, math.inf, False, method, level)
    low, high = _percentile_interval(boot[:, 0] / boot[:, 1], level)
    return RatioInterval(ratio, low, high, True, method, level)


def sign_flip_test(
    diffs: Tensor, *, n_perm: int = 4000, generator: GeneratorLike = None, chunk: int = 4096
) -> SignFlipResult:
    """Paired sign-flip permutation test of "no lean" for every feature at once.

    The same sign vectors serve all features, keeping their dependence. With B random vectors,
    ``p_j = (1 + #{b: |T_j(s_b)| >= |T_j|}) / (1 + B)``; when ``2**n_items <= n_perm`` all sign vectors are
    enumerated and ``p_j = #{s: |T_j(s)| >= |T_j|} / 2**n_items`` (exact). Values within ``1e-9`` times the
    feature's largest ``|d|`` of ``|T_j|`` count as ties.

    Args:
        diffs: Paired differences ``[n_items, d]``, one row per item, ``n_items >= 2``.
        n_perm: Number of random sign vectors.
        generator: Generator or integer seed.
        chunk: Features per matrix product ``[B, n] @ [n, chunk]``.

    Returns:
        Observed means ``[d]``, p-values ``[d]``, the number of sign vectors and whether the test was exact.
    """
    d = _float64(diffs, "diffs", "[n_items, d]", ndim=2)
    _check_at_least(n_perm, "n_perm")
    _check_at_least(chunk, "chunk")
    signs, exact = _sign_matrix(d.shape[0], n_perm, generator)
    signs = signs.to(d.device) / d.shape[0]
    mean = d.mean(0)
    threshold = mean.abs() - _TIE_RTOL * d.abs().amax(0)
    hits = torch.zeros(d.shape[1], dtype=torch.float64, device=d.device)
    for j in range(0, d.shape[1], chunk):
        hits[j : j + chunk] = ((signs @ d[:, j : j + chunk]).abs_() >= threshold[j : j + chunk]).sum(0)
    p = hits / len(signs) if exact else (1 + hits) / (1 + len(signs))
    return SignFlipResult(mean, p, len(signs), exact)


def benjamini_hochberg(
    p: Tensor, alpha: float, *, dependence: Literal["independent", "arbitrary"] = "independent"
) -> Tensor:
    """Benjamini-Hochberg step-up rejections at false-discovery rate ``alpha``.

    ``"independent"`` (BH) is valid under independence or positive dependence; ``"arbitrary"`` is
    Benjamini-Yekutieli (alpha divided by ``1 + 1/2 + ... + 1/m``), valid under any dependence.

    Args:
        p: P-values in [0, 1], any shape (m values).
        alpha: FDR level in (0, 1).
        dependence: ``"independent"`` or ``"arbitrary"``.

    Returns:
        Boolean rejections, shaped like ``p``.
    """
    _check_unit(alpha, "alpha")
    if dependence not in ("independent", "arbitrary"):
        raise ValueError(f"dependence must be 'independent' or 'arbitrary', got {dependence!r}")
    pv = torch.as_tensor(p).detach().to(torch.float64)
    if bool((pv.isnan() | (pv < 0) | (pv > 1)).any()):
        raise ValueError("p must hold p-values in [0, 1] (no NaN)")
    flat = pv.reshape(-1)
    ranks = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=pv.device)
    harmonic = float(ranks.reciprocal().sum()) if dependence == "arbitrary" else 1.0
    sorted_p, order = torch.sort(flat)
    passing = (sorted_p <= alpha * ranks / (flat.numel() * harmonic)).nonzero()
    reject = torch.zeros(flat.numel(), dtype=torch.bool, device=pv.device)
    if passing.numel():
        reject[order[: int(passing.max()) + 1]] = True
    return reject.reshape(pv.shape)


def holm(p: Tensor, alpha: float) -> Tensor:
    """Holm step-down rejections at family-wise error rate ``alpha`` (valid under any dependence).

    With probability at least ``1 - alpha`` every rejection is a true effect, so the number of
    rejections among any set of features is a ``1 - alpha`` lower confidence bound on the true effects
    in that set.

    Args:
        p: P-values in [0, 1], any shape (m values).
        alpha: FWER level in (0, 1).

    Returns:
        Boolean rejections, shaped like ``p``.
    """
    _check_unit(alpha, "alpha")
    pv = torch.as_tensor(p).detach().to(torch.float64)
    if bool((pv.isnan() | (pv < 0) | (pv > 1)).any()):
        raise ValueError("p must hold p-values in [0, 1] (no NaN)")
    flat = pv.reshape(-1)
    m = flat.numel()
    sorted_p, order = torch.sort(flat)
    cut = alpha / (m - torch.arange(m, dtype=torch.float64, device=pv.device))
    failing = (sorted_p > cut).nonzero()
    n_reject = int(failing.min()) if failing.numel() else m
    reject = torch.zeros(m, dtype=torch.bool, device=pv.device)
    reject[order[:n_reject]] = True
    return reject.reshape(pv.shape)


def null_percentile(observed: float, draws: Tensor) -> float:
    """Mid-rank percentile of ``observed`` among null ``draws``: percent strictly below plus half the ties.

    Mid-ranks keep a discrete statistic (a fraction of features, with many ties) centred on 50 under
    the null, where counting ties fully (or not at all) would bias it up (or down).

    Args:
        observed: The observed statistic.
        draws: Null draws ``[B]``.

    Returns:
        A percentile in [0, 100].
    """
    dr = _float64(draws, "draws", "[B]", ndim=1)
    _check_at_least(dr.numel(), "the number of draws")
    below, ties = int((dr < observed).sum()), int((dr == observed).sum())
    return 100.0 * (below + 0.5 * ties) / dr.numel()


def summarize_null(observed: float, draws: Tensor) -> NullSummary:
    """Summarise null draws and place an observed value among them.

    Args:
        observed: The observed statistic.
        draws: Null draws ``[B]``.

    Returns:
        Mean, SD, 5th and 95th percentiles of the draws, their number and the percentile of ``observed``.
    """
    dr = _float64(draws, "draws", "[B]", ndim=1)
    _check_at_least(dr.numel(), "the number of draws")
    q05, q95 = torch.quantile(dr, torch.tensor([0.05, 0.95], dtype=torch.float64, device=dr.device)).tolist()
    sd = float(dr.std()) if dr.numel() > 1 else 0.0
    return NullSummary(float(dr.mean()), sd, q05, q95, dr.numel(), null_percentile(observed, dr))


def fraction_null(
    diffs: Tensor,
    statistic: Statistic,
    *,
    n_perm: int = 2000,
    generator: GeneratorLike = None,
    chunk: int = 500,
) -> NullDistribution:
    """Sign-flip null of a whole-matrix statistic (e.g. the fraction of active features with mean < 0).

    Each sign vector flips whole rows (items), which is what "the labels carry no information" means.

    Args:
        diffs: Paired differences ``[n_items, d]``, ``n_items >= 2``.
        statistic: Maps mean-difference vectors ``[B, d]`` to values ``[B]``.
        n_perm: Number of sign vectors (all ``2**n_items`` are enumerated when that is fewer).
        generator: Generator or integer seed.
        chunk: Sign vectors per batch passed to ``statistic``.

    Returns:
        The observed statistic, its draws ``[B]`` and their summary.
    """
    d = _float64(diffs, "diffs", "[n_items, d]", ndim=2)
    _check_at_least(n_perm, "n_perm")
    _check_at_least(chunk, "chunk")
    signs, exact = _sign_matrix(d.shape[0], n_perm, generator)
    signs /= d.shape[0]
    # The observed means go through the same product as the draws, so the identity flip ties exactly.
    observed = float(_batched_statistic(statistic, signs.new_ones(1, d.shape[0]) / d.shape[0], d, 1)[0])
    draws = _batched_statistic(statistic, signs, d, chunk)
    s = summarize_null(observed, draws)
    return NullDistribution(observed, draws, s.percentile, s.mean, s.q05, s.q95, exact)


def bootstrap_items(
    diffs: Tensor,
    statistic: Statistic,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    generator: GeneratorLike = None,
    groups: Groups = None,
    chunk: int = 500,
) -> Interval:
    """Percentile bootstrap over items of a whole-matrix statistic.

    Rows are resampled with replacement (within groups, groups weighted equally) through a ``[B, n]``
    count-weight matrix W, so the resampled means are ``W @ diffs``.

    Args:
        diffs: Per-item rows ``[n_items, d]``, ``n_items >= 2``.
        statistic: Maps mean vectors ``[B, d]`` to values ``[B]``.
        n_boot: Bootstrap draws.
        level: Two-sided confidence level.
        generator: Generator or integer seed.
        groups: Group label per item ``[n_items]`` (2+ items per group), or None.
        chunk: Draws per batch passed to ``statistic``.

    Returns:
        The statistic of the (group-balanced) means and its percentile interval.
    """
    d = _float64(diffs, "diffs", "[n_items, d]", ndim=2)
    _check_at_least(n_boot, "n_boot")
    _check_at_least(chunk, "chunk")
    _check_unit(level)
    idx, n_groups = _group_index(groups, d.shape[0])
    estimate = float(_batched_statistic(statistic, _item_weights(idx, n_groups)[None], d, 1)[0])
    weights = _resample_weights(idx, n_groups, n_boot, as_generator(generator))
    low, high = _percentile_interval(_batched_statistic(statistic, weights, d, chunk), level)
    return Interval(estimate, low, high, level, n_boot)
