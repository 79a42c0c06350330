"""Bootstraps over items and intervals that hold their level: percentile, basic, and the unbiased norm.

Items are resampled (within groups, groups weighted equally) through a ``[B, n]`` weight matrix, so
resampled means are one matrix product. Resampling items and recomputing ``v* = mean of the resampled
differences`` gives draws centred on the sample mean v, not on the population mean mu, so a nonlinear
figure g(v*) (a norm, a share, a cosine gap) is biased twice over and the plain percentile interval can
exclude g(v) itself. The *basic* (reverse percentile) interval ``[2 g(v) - q_hi, 2 g(v) - q_lo]``
corrects the first-order bias; for ``||mu||^2`` the U-statistic ``sum_{i != j} d_i . d_j / (n (n - 1))``
is unbiased.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sae_steer_checks.stats.draws import GeneratorLike, as_generator
from sae_steer_checks.stats.estimates import (
    Groups,
    Interval,
    Statistic,
    _check_at_least,
    _check_unit,
    _float64,
    _group_index,
    _item_weights,
)

__all__ = ["basic_interval", "bootstrap_items", "percentile_interval", "resample_weights", "squared_norm_u"]


def percentile_interval(draws: Tensor, level: float = 0.95) -> tuple[float, float]:
    """The two-sided percentile interval of bootstrap ``draws [B]`` at ``level``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d = draws.detach().to(torch.float64).reshape(-1)
    if d.numel() < 1:
        raise ValueError("draws must hold at least one value, got none")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = d.quantile(q).tolist()
    return low, high


def basic_interval(
    estimate: float,
    draws: Tensor,
    level: float = 0.95,
    *,
    lower: float = -math.inf,
    upper: float = math.inf,
) -> tuple[float, float]:
    """Basic (reverse percentile) bootstrap interval ``[2 t - q_hi, 2 t - q_lo]``, clipped to the range.

    Args:
        estimate: The figure t on the data.
        draws: The figure on bootstrap resamples ``[B]``.
        level: Two-sided confidence level.
        lower: Smallest value the figure can take (e.g. 0 for a share); the interval is clipped to it.
        upper: Largest value the figure can take (e.g. 1 for a share).

    Returns:
        ``(low, high)``.
    """
    q_lo, q_hi = percentile_interval(draws, level)
    low, high = 2 * estimate - q_hi, 2 * estimate - q_lo
    return min(max(low, lower), upper), min(max(high, lower), upper)


def squared_norm_u(diffs: Tensor) -> tuple[float, float]:
    """Unbiased estimate of ``||mu||^2`` from per-item differences ``[n, d]``, and its standard error.

    ``U = sum_{i != j} d_i . d_j / (n (n - 1))``. Its standard error is the jackknife's (leave one item
    out), which is consistent for U-statistics.

    Args:
        diffs: One row per item ``[n_items, d]``, ``n_items >= 3``.

    Returns:
        ``(U, se)``; U can be negative when ``||mu||`` is small next to the noise.
    """
    d = diffs.detach().to(torch.float64)
    if d.ndim != 2 or d.shape[0] < 3:
        raise ValueError(f"diffs must be [n_items >= 3, d], got shape {list(d.shape)}")
    n = d.shape[0]
    total = d.sum(0)
    sq = (d * d).sum(1)  # ||d_i||^2
    u = (float(total @ total) - float(sq.sum())) / (n * (n - 1))
    # leave item i out: sums lose d_i
    loo_total = total[None, :] - d
    loo_cross = (loo_total * loo_total).sum(1) - (float(sq.sum()) - sq)
    loo = loo_cross / ((n - 1) * (n - 2))
    se = math.sqrt(max((n - 1) / n * float(((loo - loo.mean()) ** 2).sum()), 0.0))
    return u, se


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
    low, high = percentile_interval(_batched_statistic(statistic, weights, d, chunk), level)
    return Interval(estimate, low, high, level, n_boot)


def resample_weights(
    n_items: int, n_boot: int, generator: GeneratorLike = None, groups: Groups = None
) -> Tensor:
    """``[n_boot, n_items]`` bootstrap weights (float64, rows sum to 1) of items resampled with replacement.

    ``weights @ per_item`` are the resampled (group-balanced) means.

    Args:
        n_items: Items resampled.
        n_boot: Draws.
        generator: Generator or integer seed.
        groups: Group label per item (resampled within groups, groups weighted equally), or None.
    """
    _check_at_least(n_boot, "n_boot")
    idx, n_groups = _group_index(groups, n_items)
    return _resample_weights(idx, n_groups, n_boot, as_generator(generator))
