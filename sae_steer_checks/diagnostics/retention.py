"""Retention: does steering with a reconstruction move the behaviour like the original vector?

Steerability is the slope of a least-squares line through the behaviour score against the
multiplier. A reconstruction that keeps the geometry but loses the behaviour-carrying part shows up
here as a slope ratio well below one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_MULTIPLIERS",
    "Retention",
    "ScoreFn",
    "Slope",
    "retention",
    "steerability_slope",
]

ScoreFn = Callable[[Tensor], float]
"""Behaviour score when the (already multiplied) steering vector ``u [d_model]`` is added."""

DEFAULT_MULTIPLIERS: tuple[float, ...] = (-1.0, 0.0, 1.0)


@dataclass(frozen=True)
class Slope:
    """A least-squares line through (multiplier, score) points."""

    slope: float
    """Change of the score per unit multiplier."""
    intercept: float
    """Score at multiplier 0 on the fitted line."""
    stderr: float | None
    """Standard error of the slope (None with fewer than three multipliers)."""
    scores: tuple[float, ...]
    """Score at each multiplier."""


def _check_multipliers(multipliers: Sequence[float]) -> tuple[float, ...]:
    ms = tuple(float(m) for m in multipliers)
    if len(ms) < 2 or len(set(ms)) < 2:
        raise ValueError(f"multipliers must hold at least two distinct values, got {list(ms)}")
    if not all(math.isfinite(m) for m in ms):
        raise ValueError(f"multipliers must be finite, got {list(ms)}")
    return ms


def steerability_slope(score_fn: ScoreFn, vector: Tensor, multipliers: Sequence[float]) -> Slope:
    """Fit ``score_fn(m * vector)`` against ``m`` over ``multipliers``.

    Args:
        score_fn: behaviour score of an added vector ``[d_model]``.
        vector: the direction to steer with ``[d_model]``.
        multipliers: at least two distinct multipliers.

    Returns:
        A :class:`Slope`.
    """
    ms = _check_multipliers(multipliers)
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got a {type(score_fn).__name__}")
    v = vector.detach().to(torch.float32)
    scores = []
    for m in ms:
        s = float(score_fn(m * v))
        if not math.isfinite(s):
            raise ValueError(f"score_fn returned a non-finite score {s} at multiplier {m}")
        scores.append(s)
    n = len(ms)
    mx, my = sum(ms) / n, sum(scores) / n
    sxx = sum((m - mx) ** 2 for m in ms)
    slope = sum((m - mx) * (s - my) for m, s in zip(ms, scores, strict=True)) / sxx
    intercept = my - slope * mx
    stderr = None
    if n > 2:
        rss = sum((s - intercept - slope * m) ** 2 for m, s in zip(ms, scores, strict=True))
        stderr = math.sqrt(rss / (n - 2) / sxx)
    return Slope(slope=slope, intercept=intercept, stderr=stderr, scores=tuple(scores))


@dataclass(frozen=True)
class Retention:
    """Steerability of the original vector and of its reconstructions."""

    multipliers: tuple[float, ...]
    """Multipliers the slopes were fitted over."""
    slopes: dict[str, Slope]
    """Name (``original``, ``sae``, ``signed``, ...) -> fitted slope."""

    def __post_init__(self) -> None:
        if "original" not in self.slopes:
            raise ValueError(f"slopes must include 'original', got {sorted(self.slopes)}")

    def ratio(self, name: str) -> float | None:
        """``slope[name] / slope['original']`` (None when the original slope is 0)."""
        base = self.slopes["original"].slope
        return self.slopes[name].slope / base if base != 0 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with the stable keys of the report's ``retention`` section."""
        out: dict[str, Any] = {
            "multipliers": list(self.multipliers),
            "slopes": {name: s.slope for name, s in sorted(self.slopes.items())},
            "stderr": {name: s.stderr for name, s in sorted(self.slopes.items())},
            "scores": {name: list(s.scores) for name, s in sorted(self.slopes.items())},
        }
        for name in sorted(self.slopes):
            if name != "original":
                out[f"ratio_{name}"] = self.ratio(name)
        return out


def retention(
    score_fn: ScoreFn,
    vectors: dict[str, Tensor],
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
) -> Retention:
    """Steerability slopes of several vectors ``{name: [d_model]}``; must include ``"original"``.

    Returns:
        A :class:`Retention` whose ``ratio(name)`` is the share of the original slope kept.
    """
    if "original" not in vectors:
        raise ValueError(f"vectors must include 'original', got {sorted(vectors)}")
    ms = _check_multipliers(multipliers)
    slopes = {name: steerability_slope(score_fn, v, ms) for name, v in vectors.items()}
    return Retention(multipliers=ms, slopes=slopes)
