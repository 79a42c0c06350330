"""Random-direction nulls for steering: does a vector steer more than directions of its norm?

The gate is a Monte Carlo test. Its null is "v is a random direction of its norm, drawn like the N
random directions" (isotropic, or the isotropic/covariance mixture when both kinds are drawn): then v's
|slope| and the N random |slope| are exchangeable, and ``p = (1 + #{k: |b_k| >= |b_v|}) / (1 + N)`` is a
valid p-value. It can never be below ``1 / (1 + N)``, so a test at level alpha needs
``N >= 1/alpha - 1`` draws (19 at 5%) and about twice that to have any resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sae_steer_checks.stats.draws import as_generator, covariance_draws
from sae_steer_checks.stats.estimates import SlopeEstimate, item_slopes_summary, summarize_null

__all__ = [
    "SteeringNull",
    "beats_null",
    "min_random_directions",
    "random_directions",
    "slope_estimate",
    "steering_null",
    "steering_p_value",
]


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
    p_value: float
    """Monte Carlo p-value ``(1 + #{|random slope| >= |slope|}) / (1 + N)`` of "v is a random direction"."""

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
            "p_value": self.p_value,
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
    gen = as_generator(generator)
    draws = [torch.randn(n, vector.shape[0], generator=gen, dtype=torch.float64)]
    kinds = ["isotropic"] * n
    if activations is not None:
        if activations.ndim != 2 or activations.shape[1] != vector.shape[0] or activations.shape[0] < 2:
            raise ValueError(
                f"activations must be [m >= 2, {vector.shape[0]}], got shape {list(activations.shape)}"
            )
        draws.append(covariance_draws(activations, n, gen))
        kinds += ["covariance"] * n
    out = torch.cat(draws)
    out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-300) * float(vector.detach().double().norm())
    return out.to(device=vector.device, dtype=torch.float32), tuple(kinds)


def steering_p_value(observed: float, slopes: Sequence[float] | Tensor) -> float:
    """Monte Carlo p-value of ``|observed|`` among random-direction ``slopes [N]`` (module notes).

    Returns:
        ``(1 + #{k: |slopes_k| >= |observed|}) / (1 + N)``, in ``[1 / (1 + N), 1]``.
    """
    s = torch.as_tensor(slopes, dtype=torch.float64).reshape(-1)
    if s.numel() == 0:
        raise ValueError("slopes must hold at least one random slope")
    return (1 + int((s.abs() >= abs(observed)).sum())) / (1 + s.numel())


def min_random_directions(alpha: float) -> int:
    """The fewest random directions whose Monte Carlo p-value can reach ``alpha`` (19 at 0.05)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = max(1, math.ceil(1.0 / alpha - 1.0))
    while 1.0 / (1 + n) > alpha:  # the same comparison the gate makes, so rounding cannot split them
        n += 1
    while n > 1 and 1.0 / n <= alpha:
        n -= 1
    return n


def steering_null(observed: float, slopes: Sequence[float] | Tensor, kinds: Sequence[str]) -> SteeringNull:
    """Summarise random-direction ``slopes [N]``; ``observed`` is the vector's slope."""
    s = torch.as_tensor(slopes, dtype=torch.float64).reshape(-1)
    if s.numel() != len(kinds) or s.numel() == 0:
        raise ValueError(
            f"slopes and kinds must have the same non-zero length, got {s.numel()} and {len(kinds)}"
        )
    abs_summary = summarize_null(abs(observed), s.abs())
    sd = float(s.std()) if s.numel() > 1 else 0.0
    return SteeringNull(
        tuple(kinds),
        tuple(s.tolist()),
        float(s.mean()),
        sd,
        abs_summary.q95,
        abs_summary.percentile,
        steering_p_value(observed, s),
    )


def beats_null(
    slope: float, estimate: SlopeEstimate | None, null: SteeringNull, *, alpha: float = 0.05
) -> bool:
    """Whether a vector steers: its Monte Carlo p-value is at most ``alpha`` AND its t interval excludes 0.

    The p-value is :func:`steering_p_value` of ``slope`` among the null's random slopes (module notes).
    With fewer than :func:`min_random_directions` draws it can never reach ``alpha``, so the answer is
    always no. No interval (as without per-item scores) also means no.

    Args:
        slope: The vector's mean slope.
        estimate: Its item-level estimate with a t interval, or None.
        null: Slopes of random directions of the vector's norm.
        alpha: Level of the Monte Carlo test, in (0, 1).

    Returns:
        True when both conditions hold.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if estimate is None:
        return False
    p = steering_p_value(slope, null.slopes)
    return p <= alpha and (estimate.ci_low > 0 or estimate.ci_high < 0)


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
