"""Norm check: where the steering vector's length falls among the norms of real activations.

A steering vector is a difference of activations, so it is usually far shorter than the
activations the SAE was trained on; fed to the encoder on its own it is out of distribution.

The claim is about the vector at hand, whose norm is known exactly, and about the population CAA
vector it estimates (the mean difference over all items). ``||v||`` of a mean of noisy differences is
biased upward (``E ||v||^2 = ||mu||^2 + tr(Sigma) / n``), so the population norm is estimated by the
unbiased U-statistic ``sum_{i != j} d_i . d_j / (n (n - 1))`` of ``||mu||^2`` with a jackknife normal
interval, whose ends are square-rooted (clipped at 0).

Verdict (:attr:`NormCheck.status`), read on the interval that holds both ``||v||`` and the interval of
``||mu||``: ``problem`` when it lies wholly below the bound (the activation norm at ``bound_percentile``,
the 1st by default), ``fine`` when it lies wholly at or above it, else ``inconclusive``, as it is
without paired items (no interval for ``||mu||``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from scipy import stats as scipy_stats
from torch import Tensor

from sae_steer_checks._validate import validate_batch, validate_vector
from sae_steer_checks.diagnostics.judged import Judged, Verdict
from sae_steer_checks.stats.resampling import squared_norm_u

__all__ = ["DEFAULT_QUANTILES", "NormCheck", "norm_check"]

DEFAULT_QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
INTERVAL_METHOD = "U-statistic of ||mu||^2, jackknife normal interval, square-rooted"


@dataclass(frozen=True)
class NormCheck(Judged):
    """The steering vector's L2 norm placed within the distribution of activation norms."""

    steering_norm: float
    """L2 norm of the steering vector."""
    activation_norm_median: float
    """Median L2 norm of the activations."""
    quantiles: dict[float, float] = field(default_factory=dict)
    """Quantile level -> activation norm at that level."""
    ratio: float = 0.0
    """``steering_norm / activation_norm_median`` (0 when the median is 0)."""
    percentile: float = 0.0
    """Percentage of activation norms below the vector's norm, ties counted half (0-100)."""
    n_activations: int = 0
    """Number of activation rows the distribution was taken from."""
    interval: tuple[float, float] | None = None
    """95% interval of the population CAA vector's norm ``||mu||`` (None without paired activations)."""
    percentile_interval: tuple[float, float] | None = None
    """Percentiles of the interval's two ends among the activation norms."""
    population_norm: float | None = None
    """Unbiased estimate of ``||mu||`` (square root of the U-statistic, 0 when it is negative)."""
    bound_percentile: float = 1.0
    """Percentile of activation norms below which a vector counts as out of distribution."""
    bound: float = 0.0
    """The activation norm at ``bound_percentile`` (the verdict's bound)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must lie in [0, 100], got {self.percentile}")
        if self.n_activations < 1:
            raise ValueError(f"n_activations must be >= 1, got {self.n_activations}")

    @property
    def verdict_interval(self) -> tuple[float, float] | None:
        """The interval the verdict reads, holding ``||v||`` and the interval of ``||mu||`` (or None)."""
        if self.interval is None:
            return None
        return min(self.interval[0], self.steering_norm), max(self.interval[1], self.steering_norm)

    def _judge(self) -> tuple[Verdict, str]:
        level = f"percentile {self.bound_percentile:g} of activation norms"
        iv = self.verdict_interval
        if iv is None:
            return "inconclusive", "without paired items the population vector's norm has no interval"
        if iv[1] < self.bound:
            return "problem", f"the vector's norm and the population norm's interval lie below {level}"
        if iv[0] >= self.bound:
            return "fine", f"the vector's norm and the population norm's interval lie at or above {level}"
        return "inconclusive", f"the norms straddle {level}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (quantile levels as strings)."""
        iv = self.verdict_interval
        return {
            "steering_norm": self.steering_norm,
            "activation_norm_median": self.activation_norm_median,
            "quantiles": {f"{q:g}": v for q, v in sorted(self.quantiles.items())},
            "ratio": self.ratio,
            "percentile": self.percentile,
            "n_activations": self.n_activations,
            "interval": None if self.interval is None else list(self.interval),
            "percentile_interval": (
                None if self.percentile_interval is None else list(self.percentile_interval)
            ),
            "population_norm": self.population_norm,
            "bound_percentile": self.bound_percentile,
            "bound": self.bound,
            "interval_method": INTERVAL_METHOD,
            "verdict_interval": None if iv is None else list(iv),
            "verdict": self.status,
            "reason": self.reason,
        }


def _mid_rank(norms: Tensor, value: float) -> float:
    """Percentage of ``norms`` below ``value``, ties counted half (0-100)."""
    below = int((norms < value).sum())
    ties = int((norms == value).sum())
    return 100.0 * (below + 0.5 * ties) / norms.numel()


def norm_check(
    vector: Tensor,
    activations: Tensor,
    *,
    items: Tensor | None = None,
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
    bound_percentile: float = 1.0,
    level: float = 0.95,
) -> NormCheck:
    """Compare ``||vector||`` with the norms of ``activations``, and judge it.

    Args:
        vector: steering vector ``[d_model]``.
        activations: activations at the same layer ``[n, d_model]`` (or ``[batch, seq, d_model]``).
        items: per-item pair differences ``[n_items, d_model]`` (``resample.item_differences``) of
            which ``vector`` estimates the mean: the population norm and its interval need at least
            3 items (with fewer, or None, there is no interval and the verdict is inconclusive).
        quantiles: quantile levels in ``[0, 1]`` to report.
        bound_percentile: percentile (0-100) of activation norms that is the verdict's bound.
        level: confidence level of the population norm's interval.

    Returns:
        A finished :class:`NormCheck`; the percentile is the mid-rank of the vector's norm among the
        activation norms, so scaling both by the same ``c > 0`` leaves ratio and percentile fixed.
    """
    if not isinstance(activations, Tensor):
        raise TypeError(f"activations must be a torch.Tensor, got a {type(activations).__name__}")
    d_model = int(activations.shape[-1]) if activations.ndim >= 1 else 0
    x = validate_batch(activations, d_model, "activations")
    v = validate_vector(vector, d_model, "vector")
    if not 0.0 < bound_percentile < 100.0:
        raise ValueError(f"bound_percentile must be in (0, 100), got {bound_percentile}")
    for q in quantiles:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantiles must lie in [0, 1], got {q}")
    # float64 for the norms keeps the ratio and ranks stable under a common rescaling.
    norms = x.to(torch.float64).norm(dim=-1)
    v_norm = float(v.to(torch.float64).norm())
    median = float(norms.quantile(0.5))
    percentile = _mid_rank(norms, v_norm)
    q_values = norms.quantile(torch.tensor(list(quantiles), dtype=torch.float64)) if quantiles else []
    interval = percentiles = population = None
    if items is not None:
        if items.ndim != 2 or items.shape[1] != d_model:
            raise ValueError(f"items must have shape [n_items, {d_model}], got {list(items.shape)}")
        if items.shape[0] >= 3:
            u, se = squared_norm_u(items)
            z = float(scipy_stats.norm.ppf(0.5 + level / 2))
            low, high = (math.sqrt(max(x, 0.0)) for x in (u - z * se, u + z * se))
            interval, population = (low, high), math.sqrt(max(u, 0.0))
            percentiles = (_mid_rank(norms, low), _mid_rank(norms, high))
    return NormCheck(
        steering_norm=v_norm,
        activation_norm_median=median,
        quantiles={float(q): float(val) for q, val in zip(quantiles, q_values, strict=True)},
        ratio=v_norm / median if median > 0 else 0.0,
        percentile=percentile,
        n_activations=int(norms.numel()),
        interval=interval,
        percentile_interval=percentiles,
        population_norm=population,
        bound_percentile=float(bound_percentile),
        bound=float(norms.quantile(bound_percentile / 100)),
    )
