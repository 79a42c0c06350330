"""Norm check: where the steering vector's length falls among the norms of real activations.

A steering vector is a difference of activations, so it is usually far shorter than the
activations the SAE was trained on; fed to the encoder on its own it is out of distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from sae_steer_checks._validate import validate_batch, validate_vector

__all__ = ["DEFAULT_QUANTILES", "NormCheck", "norm_check"]

DEFAULT_QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass(frozen=True)
class NormCheck:
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
    """95% bootstrap interval of ``steering_norm`` over items (None without paired activations)."""
    percentile_interval: tuple[float, float] | None = None
    """Percentiles of the interval's two ends among the activation norms."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must lie in [0, 100], got {self.percentile}")
        if self.n_activations < 1:
            raise ValueError(f"n_activations must be >= 1, got {self.n_activations}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (quantile levels as strings)."""
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
        }

    def with_draws(self, norms: Tensor, activation_norms: Tensor) -> NormCheck:
        """This check with the bootstrap interval of the vector's norm from draws ``norms [n_boot]``.

        ``activation_norms [n]`` are the norms the percentile is taken among (mid-rank, as above).
        """
        levels = torch.tensor([0.025, 0.975], dtype=torch.float64)
        low, high = (float(q) for q in norms.to(torch.float64).quantile(levels))
        pct = tuple(_mid_rank(activation_norms.to(torch.float64), x) for x in (low, high))
        return replace(self, interval=(low, high), percentile_interval=(pct[0], pct[1]))


def _mid_rank(norms: Tensor, value: float) -> float:
    """Percentage of ``norms`` below ``value``, ties counted half (0-100)."""
    below = int((norms < value).sum())
    ties = int((norms == value).sum())
    return 100.0 * (below + 0.5 * ties) / norms.numel()


def norm_check(
    vector: Tensor,
    activations: Tensor,
    *,
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
) -> NormCheck:
    """Compare ``||vector||`` with the norms of ``activations``.

    Args:
        vector: steering vector ``[d_model]``.
        activations: activations at the same layer ``[n, d_model]`` (or ``[batch, seq, d_model]``).
        quantiles: quantile levels in ``[0, 1]`` to report.

    Returns:
        A :class:`NormCheck`; the percentile is the mid-rank of the vector's norm among the
        activation norms, so scaling both by the same ``c > 0`` leaves ratio and percentile fixed.
    """
    if not isinstance(activations, Tensor):
        raise TypeError(f"activations must be a torch.Tensor, got a {type(activations).__name__}")
    d_model = int(activations.shape[-1]) if activations.ndim >= 1 else 0
    x = validate_batch(activations, d_model, "activations")
    v = validate_vector(vector, d_model, "vector")
    for q in quantiles:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantiles must lie in [0, 1], got {q}")
    # float64 for the norms keeps the ratio and ranks stable under a common rescaling.
    norms = x.to(torch.float64).norm(dim=-1)
    v_norm = float(v.to(torch.float64).norm())
    median = float(norms.quantile(0.5))
    percentile = _mid_rank(norms, v_norm)
    q_values = norms.quantile(torch.tensor(list(quantiles), dtype=torch.float64)) if quantiles else []
    return NormCheck(
        steering_norm=v_norm,
        activation_norm_median=median,
        quantiles={float(q): float(val) for q, val in zip(quantiles, q_values, strict=True)},
        ratio=v_norm / median if median > 0 else 0.0,
        percentile=percentile,
        n_activations=int(norms.numel()),
    )
