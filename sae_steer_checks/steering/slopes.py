"""Steerability: the behaviour score's slope against the steering multiplier, and its random null.

Every held-out item gets its own least-squares slope over the multipliers (``stats.fit_slope``); the
steerability is their mean (group-balanced when letters are weighted equally) with an item-level
standard error (``stats.item_slopes_summary``, df = items - groups). The null is the same slope for
random directions of the vector's norm, isotropic and (when activations are given) drawn from the
activation covariance; a vector steers when its Monte Carlo p-value ``(1 + #{|b_rand| >= |b|}) / (1 + N)``
is at most alpha and its t interval excludes 0 (``stats.beats_null``, one rule for both checks; 20
directions per kind by default, so N = 40 pooled with activations, 20 without). All
vectors and multipliers of a check are scored in shared, batched forwards (``scoring.score_grid``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from sae_steer_checks.stats import (
    SlopeEstimate,
    SteeringNull,
    beats_null,
    fit_slope,
    random_directions,
    slope_estimate,
    steering_null,
)
from sae_steer_checks.steering.scoring import SteerPositions, group_mean, item_scores, score_grid
from sae_steer_checks.steering.tasks import BehaviourTask

__all__ = [
    "Steerability",
    "SweepResult",
    "random_like",
    "relative_multipliers",
    "steerability",
    "sweep",
    "sweeps",
]


@dataclass(frozen=True)
class SweepResult:
    """Behaviour scores across a multiplier sweep and the fitted steerability slope."""

    multipliers: tuple[float, ...]
    """Multipliers of the vector, in sweep order."""
    scores: tuple[float, ...]
    """Group-balanced mean score at each multiplier (logit difference or log-odds)."""
    probs: tuple[float, ...]
    """Group-balanced mean two-way probability of the behaviour side (sigmoid of each prompt's score)."""
    slope: float
    """Steerability: the (group-balanced) mean of per-item least-squares slopes."""
    slope_se: float
    """Item-level standard error of ``slope`` (``nan`` with fewer than 2 items in a group)."""
    intercept: float
    """Least-squares intercept of the group-balanced mean score."""
    item_scores: Tensor = field(repr=False)
    """Per-item scores ``[n_multipliers, n_items]`` (copies of an item averaged)."""
    estimate: SlopeEstimate | None = None
    """The slope with its SE, df and t interval over items (None where it has no spread)."""
    item_slopes: Tensor | None = field(default=None, repr=False)
    """Per-item slopes ``[n_items]``."""

    def to_dict(self) -> dict[str, Any]:
        """The sweep as a JSON-ready dict (without per-item scores)."""
        e = self.estimate
        return {
            "multipliers": list(self.multipliers),
            "scores": list(self.scores),
            "probs": list(self.probs),
            "slope": self.slope,
            "slope_se": self.slope_se,
            "intercept": self.intercept,
            "n_items": int(self.item_scores.shape[1]),
            "ci": None if e is None else [e.ci_low, e.ci_high],
            "df": None if e is None else e.df,
        }


def relative_multipliers(
    vector_norm: float,
    activation_norm: float,
    fractions: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0),
) -> tuple[float, ...]:
    """Multipliers ``m`` with ``||m v|| = |f| * activation_norm`` for each fraction ``f`` (signed)."""
    if not vector_norm > 0 or not activation_norm > 0:
        raise ValueError(
            f"vector_norm and activation_norm must be > 0, got {vector_norm} and {activation_norm}"
        )
    return tuple(float(f) * activation_norm / vector_norm for f in fractions)


def _result(task: BehaviourTask, ms: tuple[float, ...], prompt_scores: Tensor) -> SweepResult:
    """A :class:`SweepResult` from per-prompt scores ``[n_mult, n_prompts]``."""
    per_item = item_scores(task, prompt_scores)  # [n_mult, n_items]
    slopes = fit_slope(ms, per_item.T)
    groups = task.item_groups
    estimate = slope_estimate(slopes, groups)
    means = [group_mean(row, task.groups) for row in prompt_scores]
    slope = estimate.mean if estimate is not None else group_mean(slopes, groups or (0,) * slopes.shape[0])
    return SweepResult(
        multipliers=ms,
        scores=tuple(means),
        probs=tuple(group_mean(torch.sigmoid(row), task.groups) for row in prompt_scores),
        slope=slope,
        slope_se=math.nan if estimate is None else estimate.se,
        intercept=sum(means) / len(means) - slope * sum(ms) / len(ms),
        item_scores=per_item,
        estimate=estimate,
        item_slopes=slopes,
    )


def _multipliers(multipliers: Sequence[float]) -> tuple[float, ...]:
    ms = tuple(float(m) for m in multipliers)
    if len(set(ms)) < 2 or not all(math.isfinite(m) for m in ms):
        raise ValueError(f"multipliers must hold at least two distinct finite values, got {list(ms)}")
    return ms


def sweeps(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    vectors: Tensor,
    multipliers: Sequence[float],
    *,
    positions: SteerPositions = "answer",
    batch_size: int = 16,
    vectors_per_batch: int | None = None,
    progress: bool = False,
) -> list[SweepResult]:
    """Sweep every vector of ``vectors [k, d_model]`` over ``multipliers`` in shared, batched forwards.

    ``positions`` are the steered positions (``answer``: from each prompt's last token on, CAA's
    convention; ``all``: every position; see ``scoring.score_grid``).
    """
    ms = _multipliers(multipliers)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be [k, d_model], got shape {list(vectors.shape)}")
    added = torch.tensor(ms, dtype=torch.float32)[None, :, None] * vectors.detach().float()[:, None, :]
    grid = score_grid(
        model,
        task,
        layer,
        added.reshape(-1, vectors.shape[1]),
        positions=positions,
        batch_size=batch_size,
        vectors_per_batch=vectors_per_batch,
        progress=progress,
        label=f"{vectors.shape[0]} vectors x {len(ms)} multipliers",
    ).reshape(vectors.shape[0], len(ms), -1)
    return [_result(task, ms, g) for g in grid]


def sweep(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    vector: Tensor,
    multipliers: Sequence[float],
    *,
    positions: SteerPositions = "answer",
    batch_size: int = 16,
    vectors_per_batch: int | None = None,
    progress: bool = False,
) -> SweepResult:
    """Score ``task`` with ``m * vector [d_model]`` added at ``layer`` for each multiplier; fit the slope."""
    return sweeps(
        model,
        task,
        layer,
        vector.reshape(1, -1),
        multipliers,
        positions=positions,
        batch_size=batch_size,
        vectors_per_batch=vectors_per_batch,
        progress=progress,
    )[0]


def random_like(vector: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """A random direction (Gaussian, drawn on the CPU) with the norm, dtype and device of ``vector``."""
    direction, _ = random_directions(vector.detach().float().cpu(), 1, generator=generator)
    return direction[0].to(dtype=vector.dtype, device=vector.device)


@dataclass(frozen=True)
class Steerability:
    """A vector's sweep beside sweeps of random directions of equal norm."""

    vector: SweepResult
    """Sweep of the steering vector."""
    null: tuple[SweepResult, ...]
    """Sweeps of the random directions."""
    null_kinds: tuple[str, ...]
    """How each random direction was drawn: ``"isotropic"`` or ``"covariance"``."""
    null_slope: float
    """Mean slope of the random directions."""
    null_slope_se: float
    """Standard error of ``null_slope`` (item spread plus spread across random directions)."""
    z: float
    """``(slope - null_slope) / sqrt(slope_se^2 + null_slope_se^2)``."""
    summary: SteeringNull
    """Where the vector's slope falls among the random slopes (``stats.steering_null``)."""
    steers: bool
    """The Monte Carlo p-value of ``summary`` is at most alpha and the slope's t interval excludes 0
    (``stats.beats_null``)."""

    @property
    def null_sd(self) -> float:
        """Standard deviation of the random slopes."""
        return self.summary.sd

    @property
    def null_abs_q95(self) -> float:
        """95th percentile of the random |slope|."""
        return self.summary.abs_q95

    @property
    def percentile(self) -> float:
        """Mid-rank percentile of the vector's |slope| among the random |slope| (0-100)."""
        return self.summary.percentile

    @property
    def p_value(self) -> float:
        """Monte Carlo p-value of "the vector is a random direction"."""
        return self.summary.p_value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of both sweeps and the comparison."""
        return {
            "vector": self.vector.to_dict(),
            "null": [n.to_dict() for n in self.null],
            "null_kinds": list(self.null_kinds),
            "null_slope": self.null_slope,
            "null_slope_se": self.null_slope_se,
            "z": self.z,
            "null_sd": self.null_sd,
            "null_abs_q95": self.null_abs_q95,
            "percentile": self.percentile,
            "p_value": self.p_value,
            "steers": self.steers,
        }


def steerability(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    vector: Tensor,
    multipliers: Sequence[float],
    *,
    n_random: int = 20,
    activations: Tensor | None = None,
    generator: torch.Generator | int | None = None,
    positions: SteerPositions = "answer",
    batch_size: int = 16,
    vectors_per_batch: int | None = None,
    progress: bool = False,
) -> Steerability:
    """Sweep ``vector [d_model]`` and random directions of its norm; compare their slopes.

    ``n_random`` isotropic directions, plus ``n_random`` from N(0, Sigma) when ``activations [m, d_model]``
    are given. Everything is scored in one batched sweep.
    """
    if n_random < 1:
        raise ValueError(f"n_random must be >= 1, got {n_random}")
    directions, kinds = random_directions(
        vector.detach().float().cpu(), n_random, activations=activations, generator=generator
    )
    stacked = torch.cat([vector.detach().float().cpu().reshape(1, -1), directions])
    main, *null = sweeps(
        model,
        task,
        layer,
        stacked,
        multipliers,
        positions=positions,
        batch_size=batch_size,
        vectors_per_batch=vectors_per_batch,
        progress=progress,
    )
    slopes = torch.tensor([n.slope for n in null], dtype=torch.float64)
    ses = torch.tensor([n.slope_se for n in null], dtype=torch.float64)
    null_var = float((ses**2).sum()) / len(null) ** 2
    if len(null) > 1:
        null_var += float(slopes.var()) / len(null)
    null_slope = float(slopes.mean())
    denom = (main.slope_se**2 + null_var) ** 0.5
    summary = steering_null(main.slope, slopes, kinds)
    return Steerability(
        vector=main,
        null=tuple(null),
        null_kinds=kinds,
        null_slope=null_slope,
        null_slope_se=null_var**0.5,
        z=(main.slope - null_slope) / denom if denom > 0 else float("nan"),
        summary=summary,
        steers=beats_null(main.slope, main.estimate, summary),
    )
