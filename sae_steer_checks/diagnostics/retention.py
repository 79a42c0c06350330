"""Retention: does steering with a reconstruction move the behaviour like the original vector?

Each vector is swept over the multipliers; with per-item scores every held-out item gets its own
least-squares slope, and a vector's steerability is their mean with an item-level standard error.

Before any ratio the original must steer. Its |slope| is compared with those of N random directions of
its norm (isotropic, plus covariance-shaped ones when activations are given; 40 in all by default) as a
Monte Carlo test: ``p = (1 + #{|b_rand| >= |b_orig|}) / (1 + N) <= alpha``, whose null is "v is a
random direction drawn from the isotropic/covariance mixture"; and its t interval must exclude 0.
Otherwise retention is inconclusive ("the vector does not steer this behaviour here").

The retention ratio ``b_recon / b_orig`` is then tested against the threshold on the per-item
contrasts ``a_i - threshold * b_i`` (``stats.ratio_test``: a studentised bootstrap over items by
default, which holds its level with skewed and heavy-tailed per-item slopes where Fieller's interval
does not). The claims are one-sided, each at level alpha (5% by default):

- ``"problem"``: the test rejects "the ratio is at or above the threshold" (p <= alpha);
- ``"fine"``: the mirror test rejects "the ratio is below the threshold" (p <= alpha);
- ``"inconclusive"``: neither rejects, the original's mean slope is not clearly non-zero (the ratio's
  interval is unbounded), the vector does not steer, or there is nothing to compare.

The ratio's interval inverts the same test at ``alpha`` on each side (a 90% interval at alpha = 5%),
so "problem" is exactly "the interval lies below the threshold" and "fine" "it lies at or above it".
A score function that returns one float per vector (no items) still gives slopes and ratios, but no
interval: its status is inconclusive. The random directions and the "beats its null" rule live in
``stats.gate`` so that steering's steerability check uses the same ones.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from sae_steer_checks.stats import (
    RatioMethod,
    RatioTest,
    SlopeEstimate,
    SteeringNull,
    beats_null,
    fit_slope,
    group_mean,
    item_slopes_summary,
    min_random_directions,
    random_directions,
    ratio_test,
    slope_estimate,
    steering_null,
    streams_from,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MULTIPLIERS",
    "DEFAULT_N_RANDOM",
    "DEFAULT_THRESHOLD",
    "NOT_STEERING",
    "Retention",
    "ScoreFn",
    "Slope",
    "retention_check",
    "score_vectors",
]


@runtime_checkable
class ScoreFn(Protocol):
    """Behaviour score with the (already multiplied) steering vector ``u [d_model]`` added.

    A float, or one score per held-out item ``[n_items]``. Any callable of one tensor qualifies. It may
    also offer ``score_batch(us [k, d_model]) -> [k, n_items]`` (several vectors at once) and
    ``item_groups`` (group of each item, or None), as ``steering.scoring.ItemScoreFn`` does; the checks
    look for both with ``getattr``.
    """

    def __call__(self, u: Tensor, /) -> Any:
        """The score(s) with ``u`` added."""


DEFAULT_MULTIPLIERS: tuple[float, ...] = (-1.0, 0.0, 1.0)
DEFAULT_THRESHOLD = 0.8
DEFAULT_ALPHA = 0.05
DEFAULT_N_RANDOM = 40
"""Random directions in the steering null when ``n_random`` is None: 20 per kind with activations, else
40 isotropic."""
NOT_STEERING = "the vector does not steer this behaviour here"
_NO_ITEMS = "the score gives one number per vector, not one per item, so the ratio has no interval"


@dataclass(frozen=True)
class Slope:
    """A vector's steerability: the mean of per-item least-squares slopes over the multipliers."""

    slope: float
    """Change of the (group-balanced) mean score per unit multiplier."""
    intercept: float
    """Mean score at multiplier 0 on the fitted line."""
    stderr: float | None
    """Item-level standard error of the slope (None without per-item scores)."""
    scores: tuple[float, ...]
    """(Group-balanced) mean score at each multiplier."""
    estimate: SlopeEstimate | None = None
    """Mean slope with its SE and t interval over items (None without per-item scores)."""
    item_slopes: Tensor | None = field(default=None, repr=False)
    """Per-item slopes ``[n_items]`` (float64)."""
    score_se: tuple[float, ...] | None = None
    """Item-level standard error of each mean score in ``scores`` (for a confidence band), or None."""


def score_vectors(score_fn: ScoreFn, us: Tensor, *, label: str | None = None) -> Tensor:
    """Scores of each added vector ``us [k, d]`` as ``[k, n_items]`` float64 (``n_items = 1`` for floats).

    Uses ``score_fn.score_batch`` when there is one (several vectors per forward), else one call each;
    ``label`` (what is scored, for a progress bar) is passed on when ``score_batch`` takes one.
    """
    batch = getattr(score_fn, "score_batch", None)
    if callable(batch):
        takes_label = label is not None and "label" in inspect.signature(batch).parameters
        out = torch.as_tensor(batch(us, label=label) if takes_label else batch(us))
        out = out.detach().to(torch.float64).cpu()
    else:
        each = [torch.as_tensor(score_fn(u)).detach().to(torch.float64).cpu() for u in us]
        if any(t.ndim > 1 for t in each):
            raise ValueError(f"score_fn must give one score or one per item, got shape {list(each[0].shape)}")
        out = torch.stack([t.reshape(-1) for t in each])
    if out.ndim != 2 or out.shape[0] != us.shape[0]:
        raise ValueError(f"score_fn must give one score or one per item per vector, got {list(out.shape)}")
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"score_fn returned a non-finite score {out[~torch.isfinite(out)][0].item()}")
    return out


def _sweep_scores(score_fn: ScoreFn, vectors: Tensor, ms: tuple[float, ...], label: str) -> Tensor:
    """Scores ``[k, n_mult, n_items]`` of ``m * v`` for every vector ``[k, d]`` and multiplier.

    Each distinct added vector is scored once (multiplier 0 is shared by all); ``label`` names the
    vectors for a progress bar.
    """
    us = torch.tensor(ms, dtype=torch.float32)[None, :, None] * vectors.detach().float()[:, None, :].cpu()
    flat = us.reshape(-1, vectors.shape[1])
    unique, inverse = torch.unique(flat, dim=0, return_inverse=True)
    scores = score_vectors(score_fn, unique.to(vectors.device), label=f"{label} x {len(ms)} multipliers")
    return scores[inverse].reshape(vectors.shape[0], len(ms), -1)


def _check_multipliers(multipliers: Sequence[float]) -> tuple[float, ...]:
    ms = tuple(float(m) for m in multipliers)
    if len(ms) < 2 or len(set(ms)) < 2:
        raise ValueError(f"multipliers must hold at least two distinct values, got {list(ms)}")
    if not all(math.isfinite(m) for m in ms):
        raise ValueError(f"multipliers must be finite, got {list(ms)}")
    return ms


def _slope(ms: tuple[float, ...], scores: Tensor, groups: Sequence[int] | None, level: float) -> Slope:
    """A :class:`Slope` from scores ``[n_mult, n_items]``."""
    per_item = fit_slope(ms, scores.T)
    means = group_mean(scores, groups)
    estimate = slope_estimate(per_item, groups, level=level) if scores.shape[1] > 1 else None
    slope = float(group_mean(per_item, groups))
    intercept = float(means.mean()) - slope * sum(ms) / len(ms)
    stderr = None if estimate is None else estimate.se
    score_se = None
    if estimate is not None:
        score_se = tuple(item_slopes_summary(row, groups, level=level).se for row in scores)
    return Slope(slope, intercept, stderr, tuple(means.tolist()), estimate, per_item, score_se)


@dataclass(frozen=True)
class Retention:
    """Steerability of the original vector and of its reconstructions, with the null and ratio intervals."""

    multipliers: tuple[float, ...]
    """Multipliers the slopes were fitted over."""
    slopes: dict[str, Slope]
    """Name (``original``, ``sae``, ``signed``, ...) -> its slope."""
    null: SteeringNull | None = None
    """Random directions of the original's norm (None when not measured: no per-item scores)."""
    steers: bool = False
    """Whether the original beats its null (Monte Carlo p <= alpha and a t interval excluding 0)."""
    ratios: dict[str, RatioTest] = field(default_factory=dict)
    """Name -> ``b_name / b_original`` with its interval over items and the one-sided p-values against
    the threshold (empty without per-item scores)."""
    statuses: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Name -> ``(status, reason)``: ``problem``, ``fine`` or ``inconclusive`` and why (module notes)."""
    threshold: float = DEFAULT_THRESHOLD
    """Share of the original slope that counts as retained."""
    n_items: int = 1
    """Held-out items behind each slope (1: the score function gave one number per vector)."""
    alpha: float = DEFAULT_ALPHA
    """Level of each one-sided test: the steering gate, "problem" and "fine"."""

    def __post_init__(self) -> None:
        if "original" not in self.slopes:
            raise ValueError(f"slopes must include 'original', got {sorted(self.slopes)}")

    def ratio(self, name: str) -> float | None:
        """``slope[name] / slope['original']`` (None when the original slope is 0)."""
        base = self.slopes["original"].slope
        return self.slopes[name].slope / base if base != 0 else None

    @property
    def status(self) -> str:
        """Status of SAE(v) (``"sae"``), else of the first reconstruction; ``"not run"`` if none."""
        return self._headline()[0]

    @property
    def reason(self) -> str:
        """Why :attr:`status` is what it is, in plain words."""
        return self._headline()[1]

    def _headline(self) -> tuple[str, str]:
        if not self.statuses:
            return "not run", "no reconstruction was compared"
        key = "sae" if "sae" in self.statuses else next(iter(self.statuses))
        return self.statuses[key]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with the report's stable keys and the calibrated ones.

        Stable: ``multipliers``, ``slopes``, ``stderr``, ``scores``, ``ratio_<name>``. Calibrated:
        ``slope_estimates`` (with ``score_se`` per multiplier), ``null`` (with the gate's ``p_value``),
        ``steers``, ``ratio_intervals`` (each with ``p_value`` of "ratio >= threshold",
        ``p_value_above`` of "ratio <= threshold" and ``alpha``), ``statuses``, ``status``,
        ``reason``, ``threshold``, ``n_items``.
        """
        names = sorted(self.slopes)
        out: dict[str, Any] = {
            "multipliers": list(self.multipliers),
            "slopes": {n: self.slopes[n].slope for n in names},
            "stderr": {n: self.slopes[n].stderr for n in names},
            "scores": {n: list(self.slopes[n].scores) for n in names},
            "slope_estimates": {n: _estimate_dict(self.slopes[n]) for n in names},
            "null": None if self.null is None else self.null.to_dict(),
            "steers": self.steers,
            "ratio_intervals": {n: _ratio_dict(r, self.alpha) for n, r in sorted(self.ratios.items())},
            "statuses": {n: {"status": s, "reason": r} for n, (s, r) in sorted(self.statuses.items())},
            "status": self.status,
            "reason": self.reason,
            "threshold": self.threshold,
            "n_items": self.n_items,
        }
        for name in names:
            if name != "original":
                out[f"ratio_{name}"] = self.ratio(name)
        return out


def _estimate_dict(slope: Slope) -> dict[str, Any] | None:
    e = slope.estimate
    if e is None:
        return None
    return {"mean": e.mean, "se": e.se, "ci_low": e.ci_low, "ci_high": e.ci_high, "df": e.df,
            "n_items": e.n_items, "level": e.level,
            "score_se": None if slope.score_se is None else list(slope.score_se)}  # fmt: skip


def _ratio_dict(r: RatioTest, alpha: float) -> dict[str, Any]:
    # JSON has no infinity: an unbounded end is None
    return {"ratio": r.ratio if math.isfinite(r.ratio) else None,
            "ci_low": r.ci_low if math.isfinite(r.ci_low) else None,
            "ci_high": r.ci_high if math.isfinite(r.ci_high) else None,
            "bounded": r.bounded, "method": r.method, "level": r.level,
            "p_value": r.p_value, "p_value_above": r.p_value_above, "alpha": alpha}  # fmt: skip


def _span(ratio: RatioTest) -> str:
    return f"{ratio.level:.0%} interval [{ratio.ci_low:.2f}, {ratio.ci_high:.2f}]"


def _status(steers: bool, ratio: RatioTest | None, threshold: float, alpha: float) -> tuple[str, str]:
    if ratio is None:
        return "inconclusive", _NO_ITEMS
    if not steers:
        return "inconclusive", NOT_STEERING
    if not ratio.bounded:
        return (
            "inconclusive",
            "the original slope is not clearly non-zero, so the ratio has no bounded interval",
        )
    test = f"one-sided {alpha * 100:g}% test"
    # the bootstrap-t acceptance set need not be one interval: a side is claimed only when the test
    # rejects at the threshold AND the reported interval lies wholly on that side
    if ratio.p_value <= alpha and ratio.ci_high < threshold:
        return "problem", (
            f"the ratio is below the retained threshold {threshold:g}: a {test} rejects a ratio at or "
            f"above it (p = {ratio.p_value:.2g}; {_span(ratio)})"
        )
    if ratio.p_value_above <= alpha and ratio.ci_low >= threshold:
        return "fine", (
            f"the ratio is at or above the retained threshold {threshold:g}: a {test} rejects a ratio "
            f"below it (p = {ratio.p_value_above:.2g}; {_span(ratio)})"
        )
    return "inconclusive", (
        f"neither {test} separates the ratio from the retained threshold {threshold:g} "
        f"(p = {ratio.p_value:.2g} for below, {ratio.p_value_above:.2g} for at or above; {_span(ratio)})"
    )


def retention_check(
    score_fn: ScoreFn,
    vectors: dict[str, Tensor],
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    *,
    n_random: int | None = None,
    activations: Tensor | None = None,
    generator: torch.Generator | int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    level: float = 0.95,
    alpha: float = DEFAULT_ALPHA,
    method: RatioMethod = "bootstrap_t",
    n_boot: int = 2000,
) -> Retention:
    """Steerability of several vectors, its random null, and the retention ratios tested against a threshold.

    Args:
        score_fn: behaviour score of an added vector (a float or ``[n_items]``; see :data:`ScoreFn`).
        vectors: name -> vector ``[d_model]``; ``"original"`` is the reference.
        multipliers: at least two distinct multipliers.
        n_random: random directions per kind (isotropic; and N(0, Sigma) when ``activations`` are given),
            or None for :data:`DEFAULT_N_RANDOM` in all (20 per kind, or 40 isotropic). All kinds are
            pooled into one Monte Carlo p-value, which needs at least ``1/alpha - 1`` of them.
        activations: ordinary activations ``[m, d_model]`` for the covariance-shaped null, or None.
        generator: generator or seed (None: seed 0); the random directions and each ratio's bootstrap
            draw from their own stream spawned from it.
        threshold: share of the original slope that counts as retained (in (0, 1]).
        level: two-sided confidence level of the slope intervals (the ratio's interval is at ``1 - 2 alpha``).
        alpha: level of each one-sided test (the steering gate, "problem", "fine").
        method: ratio test, ``"bootstrap_t"`` (studentised bootstrap of the contrasts), ``"fieller"``
            (the same contrasts against Student's t) or ``"bootstrap"`` (percentile, over items).
        n_boot: bootstrap draws (the bootstrap methods only).

    Returns:
        A :class:`Retention`; ``ratio(name)`` is the share of the original slope kept, ``statuses`` the
        verdict per reconstruction. The null is only run with per-item scores (without them no
        verdict can pass, so its forwards would be wasted).

    Raises:
        ValueError: on a bad argument, including too few random directions for ``alpha``.
    """
    if "original" not in vectors:
        raise ValueError(f"vectors must include 'original', got {sorted(vectors)}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    kinds_drawn = 1 if activations is None else 2
    if n_random is None:
        n_random = math.ceil(DEFAULT_N_RANDOM / kinds_drawn)
    if n_random < 1:
        raise ValueError(f"n_random must be >= 1, got {n_random}")
    needed = min_random_directions(alpha)
    if n_random * kinds_drawn < needed:
        raise ValueError(
            f"n_random={n_random} gives {n_random * kinds_drawn} random directions, but the Monte Carlo "
            f"p-value (1 + #{{|b_rand| >= |b_orig|}}) / (1 + N) is at least 1 / (1 + N) = "
            f"{1 / (1 + n_random * kinds_drawn):.3f} > alpha = {alpha:g}, so no vector could steer: "
            f"use n_random >= {math.ceil(needed / kinds_drawn)} (2x that to have resolution)"
        )
    ms = _check_multipliers(multipliers)
    names = list(vectors)
    stacked = torch.stack([vectors[n].detach().float().reshape(-1) for n in names])
    groups = getattr(score_fn, "item_groups", None)
    others = [n for n in names if n != "original"]
    rng = streams_from(generator, ["retention.random_directions", *(f"retention.ratio.{n}" for n in others)])
    directions, kinds = random_directions(
        vectors["original"].detach().float().cpu(),
        n_random,
        activations=activations,
        generator=rng["retention.random_directions"],
    )
    directions = directions.to(stacked.device)
    null_label = f"{directions.shape[0]} random directions"
    null_scores: Tensor | None = None
    if callable(getattr(score_fn, "score_batch", None)):
        # one batched sweep for the vectors and their null: the prompts' shared work is done once
        both = _sweep_scores(
            score_fn, torch.cat([stacked, directions]), ms, f"{len(names)} vectors and {null_label}"
        )
        scores, null_scores = both[: len(names)], both[len(names) :]
    else:
        scores = _sweep_scores(score_fn, stacked, ms, "/".join(names))
    n_items = scores.shape[2]
    slopes = {n: _slope(ms, scores[i], groups, level) for i, n in enumerate(names)}
    per_item = {n: fit_slope(ms, scores[i].T) for i, n in enumerate(names)}
    if n_items < 2:
        undecided = {n: _status(False, None, threshold, alpha) for n in names if n != "original"}
        return Retention(ms, slopes, None, False, {}, undecided, threshold, n_items, alpha)
    original = slopes["original"]
    if null_scores is None:
        null_scores = _sweep_scores(score_fn, directions, ms, null_label)
    null_slopes = group_mean(fit_slope(ms, null_scores.transpose(1, 2)), groups)
    null = steering_null(original.slope, null_slopes, kinds)
    steers = beats_null(original.slope, original.estimate, null, alpha=alpha)
    ratios: dict[str, RatioTest] = {}
    statuses: dict[str, tuple[str, str]] = {}
    for name in others:
        ratios[name] = ratio_test(
            per_item[name],
            per_item["original"],
            threshold,
            groups=groups,
            level=1 - 2 * alpha,
            method=method,
            n_boot=n_boot,
            generator=rng[f"retention.ratio.{name}"],
        )
        statuses[name] = _status(steers, ratios[name], threshold, alpha)
    return Retention(ms, slopes, null, steers, ratios, statuses, threshold, n_items, alpha)
