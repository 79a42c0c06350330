"""Random-direction nulls for steering: does a vector steer more than directions of its norm?"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sae_steer_checks.stats.core import SlopeEstimate, item_slopes_summary, summarize_null

__all__ = ["SteeringNull", "beats_null", "random_directions", "slope_estimate", "steering_null"]


@dataclass(frozen=True)
class SteeringNull:
    """Slopes of random directions with the original vector's norm, and where the vector falls among them."""

    kinds: tuple[str, ...]
    """How each direction was drawn: ``"isotropic"`` or ``"covariance"`` (N(0, activation covariance))."""
    slopes: tuple[float, ...]
    """Mean slope of each random direction."""
    mean: float
    """Mean of the random slopes."""
    sd: float
    """Standard deviation of the random slopes."""
    abs_q95: float
    """95th percentile of the random |slope|."""
    percentile: float
    """Mid-rank percentile of the vector's |slope| among the random |slope| (0-100)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "n": len(self.slopes),
            "kinds": list(self.kinds),
            "slopes": list(self.slopes),
            "mean": self.mean,
            "sd": self.sd,
            "abs_q95": self.abs_q95,
            "percentile": self.percentile,
        }


def random_directions(
    vector: Tensor,
    n: int,
    *,
    activations: Tensor | None = None,
    generator: torch.Generator | int | None = None,
) -> tuple[Tensor, tuple[str, ...]]:
    """Random vectors with the norm of ``vector [d]``: ``n`` isotropic, then ``n`` from N(0, Sigma).

    Sigma is the covariance of ``activations [m, d]`` (residual streams are far from isotropic); a draw
    is ``X_c^T g / sqrt(m - 1)`` with ``X_c`` the centred activations and ``g ~ N(0, I_m)``, so no
    ``d x d`` matrix is formed. Draws come from a CPU generator (an int seeds one; None means 0).

    Returns:
        ``(directions [n or 2n, d]`` float32 on the vector's device, ``kinds)``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if vector.ndim != 1:
        raise ValueError(f"vector must be [d], got shape {list(vector.shape)}")
    gen = (
        generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(generator or 0)
    )
    draws = [torch.randn(n, vector.shape[0], generator=gen, dtype=torch.float64)]
    kinds = ["isotropic"] * n
    if activations is not None:
        if activations.ndim != 2 or activations.shape[1] != vector.shape[0] or activations.shape[0] < 2:
            raise ValueError(
                f"activations must be [m >= 2, {vector.shape[0]}], got shape {list(activations.shape)}"
            )
        x = activations.detach().to(device="cpu", dtype=torch.float64)
        x = x - x.mean(0)
        g = torch.randn(n, x.shape[0], generator=gen, dtype=torch.float64)
        draws.append(g @ x / math.sqrt(x.shape[0] - 1))
        kinds += ["covariance"] * n
    out = torch.cat(draws)
    out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-300) * float(vector.detach().double().norm())
    return out.to(device=vector.device, dtype=torch.float32), tuple(kinds)


def steering_null(observed: float, slopes: Sequence[float] | Tensor, kinds: Sequence[str]) -> SteeringNull:
    """Summarise random-direction ``slopes [n]``; ``observed`` is the vector's slope."""
    s = torch.as_tensor(slopes, dtype=torch.float64).reshape(-1)
    if s.numel() != len(kinds) or s.numel() == 0:
        raise ValueError(
            f"slopes and kinds must have the same non-zero length, got {s.numel()} and {len(kinds)}"
        )
    abs_summary = summarize_null(abs(observed), s.abs())
    sd = float(s.std()) if s.numel() > 1 else 0.0
    return SteeringNull(
        tuple(kinds), tuple(s.tolist()), float(s.mean()), sd, abs_summary.q95, abs_summary.percentile
    )


def beats_null(slope: float, estimate: SlopeEstimate | None, null: SteeringNull) -> bool:
    """Whether a vector steers: ``|slope|`` above the null's q95 of |slope| AND a t interval excluding 0.

    No interval (as without per-item scores) means no.
    """
    if estimate is None:
        return False
    return abs(slope) > null.abs_q95 and (estimate.ci_low > 0 or estimate.ci_high < 0)


def slope_estimate(
    item_slopes: Tensor, groups: Sequence[int] | None = None, *, level: float = 0.95
) -> SlopeEstimate | None:
    """``stats.item_slopes_summary`` of per-item slopes ``[n_items]``, or None without a spread to use.

    None with fewer than 2 items, or a group with fewer than 2.
    """
    if item_slopes.numel() < 2:
        return None
    if (
        groups is not None
        and min(torch.bincount(torch.unique(torch.tensor(groups), return_inverse=True)[1])) < 2
    ):
        return None
    return item_slopes_summary(item_slopes, groups, level=level)
