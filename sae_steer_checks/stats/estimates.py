"""Estimates with the item as the unit: slopes, item means, group-balanced moments, null summaries.

Inputs hold one row per item (merge pseudo-replicated copies with :func:`cluster_mean`). Arithmetic is
float64; tensors come back float64 on the data's device. Groups (e.g. answer letters) are weighted
equally everywhere: means are means of group means.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from scipy import stats as scipy_stats
from torch import Tensor

__all__ = [
    "Groups",
    "Interval",
    "NullSummary",
    "SlopeEstimate",
    "Statistic",
    "cluster_mean",
    "fit_slope",
    "group_mean",
    "item_slopes_summary",
    "null_percentile",
    "summarize_null",
    "t_quantile",
]

Groups = Sequence[int] | Tensor | None


Statistic = Callable[[Tensor], Tensor]


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


def group_mean(values: Tensor, groups: Groups = None) -> Tensor:
    """Mean over the last axis of ``values [..., n_items]``, each group weighing the same.

    Args:
        values: Per-item values ``[..., n_items]``.
        groups: Group label per item ``[n_items]``, or None for one group.

    Returns:
        ``[...]``: the mean of the group means.
    """
    if groups is None:
        return values.mean(-1)
    g = torch.as_tensor(list(groups) if not isinstance(groups, Tensor) else groups).to(values.device)
    return torch.stack([values[..., g == k].mean(-1) for k in torch.unique(g)]).mean(0)
