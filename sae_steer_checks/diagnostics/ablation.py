"""Ablation of the lost projections: does the part of v that SAE(v) drops carry the behaviour?

The leaning check flags the features that lean negative (significant, past the minimum effect) and
get 0 in SAE(v): *the lost projections*. Whether they matter for steering is a behavioural question,
so this check steers with

- **without**: v minus its component in the span of those features' decoder rows, and
- **only**: that component alone,

and reads the share of v's slope each keeps (per-item slopes over the retention multipliers; the
ratio and its interval come from ``stats.ratio_test``). The **cost** of removing the lost span is
``1 - share kept without it``.

**Projection.** Decoder rows are directions of the SAE's input space, into which a model-space vector
goes as ``to_sae(v) = factor * v`` (centred first for a ``layer_norm`` SAE) and out of which it comes
as ``from_sae(x) = x / factor``. The component is projected where the rows live and mapped back:
``removed = from_sae(P to_sae(v))``, ``P`` the orthogonal projector onto the rows' span (an SVD, so
dependent rows are handled), and ``without = v - removed``. A scale commutes with ``P``, so this is
the plain model-space projection of v: ``v = without + removed`` exactly, ``removed`` lies in the
span and ``without`` is orthogonal to it. Under ``layer_norm`` the SAE sees only the centred part of
an input, so the rows are centred too before the projector is built (a row's mean component is
invisible to the SAE), and the mean component of v stays in ``without``.

**Energy share.** ``s^2 = (||removed|| / ||v||)^2`` is reported beside the cost: it is the cost one
would expect if the behaviour were spread over v in proportion to energy, the yardstick that says
whether the lost span carries more or less of the behaviour than its size.

**Random-row baseline (reported, not a gate).** The same removal of the span of as many decoder rows
of *live* features (firing on the ordinary activations), other than the lost ones, drawn at random
``n_null`` times (only when the pool has at least ``n_null + 1`` such row sets); each draw gives a cost
on the same items, reported as a mean, a 95th percentile and a Monte Carlo p-value
``(1 + #{null cost >= observed cost}) / (1 + #finite null costs)``. It is not comparable to the lost
span: k random rows hold about ``k / d`` of ``||v||^2`` while v leans along the lost features' rows,
so the lost span holds a large share of v and its removal costs more than any random removal even
when the behaviour is spread over v in proportion to energy. The p-value therefore rejects at a true
cost near ``s^2`` and cannot decide anything; the verdict is an absolute claim about the cost.

**Verdict** (:attr:`Ablation.status`), needing v to steer (retention's gate, ``Retention.steers``).
The lost features are leaning's ``flagged`` set (Benjamini-Hochberg at ``alpha``, past the minimum
effect), not its Holm-``confirmed`` subset. The cost's interval is ``1 - 2 alpha`` (each end a one-sided
``alpha`` test):

- ``problem``: the interval's low end lies above ``max_cost``: removing v's component along the flagged
  lost features' decoder rows costs more than ``max_cost`` of v's slope;
- ``fine``: the interval's high end lies below ``max_cost``: removing that component costs less than
  ``max_cost`` of v's slope (a claim about the cost of removal only, not that the features are
  irrelevant in every other sense);
- ``inconclusive``: otherwise (the interval straddles ``max_cost``), or when v does not steer, the score
  gives one number per vector, or v's slope is not clearly non-zero;
- ``not run``: no score function, or no lost feature (the reason says which).

Random draws come from separate streams spawned from the one generator or seed: ``ablation.null``
(the random rows), ``ablation.ratio.kept`` and ``ablation.ratio.only`` (the bootstraps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from sae_steer_checks._validate import validate_fraction, validate_positive_int, validate_vector
from sae_steer_checks.diagnostics.retention import (
    DEFAULT_MULTIPLIERS,
    NOT_STEERING,
    ScoreFn,
    score_vectors,
)
from sae_steer_checks.diagnostics.space import SaeSpace
from sae_steer_checks.stats import RatioTest, fit_slope, group_mean, ratio_test, summarize_null
from sae_steer_checks.stats.draws import GeneratorLike, streams_from

__all__ = ["Ablation", "ablation_check", "lost_component", "monte_carlo_p"]

Status = Literal["problem", "fine", "inconclusive", "not run"]
NO_SCORE = "no behaviour score was given"
NO_LOST = "SAE(v) drops no flagged negative-leaning feature, so there is no lost projection to remove"
PROJECTION = (
    "removed = from_sae(P to_sae(v)), P the orthogonal projector onto the lost features' decoder rows"
    " (centred under layer_norm)"
)
STREAMS = ("ablation.null", "ablation.ratio.kept", "ablation.ratio.only")
BASELINE_NOTE = (
    "random live rows hold about k/d of ||v||^2 while the lost span holds a large share of v, so their "
    "costs are a reported baseline, not a gate"
)


@dataclass(frozen=True)
class Ablation:
    """Steering without the lost projections and with them alone; random removals as a baseline."""

    features: tuple[int, ...]
    """The lost features whose decoder rows span the removed component."""
    status: Status
    """``problem``, ``fine``, ``inconclusive`` or ``not run`` (module notes)."""
    reason: str
    """Why, in plain words."""
    multipliers: tuple[float, ...] = ()
    """Multipliers the slopes were fitted over (retention's)."""
    rank: int = 0
    """Dimension of the span removed."""
    removed_norm_share: float | None = None
    """``s = ||removed|| / ||v||``."""
    slopes: dict[str, float] = field(default_factory=dict)
    """``original``, ``without`` (v minus the lost span) and ``only`` (the lost component) -> mean slope."""
    share_kept: RatioTest | None = None
    """Slope of ``without`` over v's, tested against ``1 - max_cost``, with its interval."""
    share_removed: RatioTest | None = None
    """Slope of ``only`` over v's, tested against ``max_cost``, with its interval (reported beside)."""
    null_costs: Tensor | None = field(default=None, repr=False)
    """Finite costs of removing the span of as many random live decoder rows (float64): a baseline."""
    p_value: float | None = None
    """Monte Carlo p-value of the observed cost among the null costs (reported, not a gate)."""
    critical: float | None = None
    """The null cost a cost must exceed for ``p_value <= alpha`` (reported, not a gate)."""
    max_cost: float = 0.2
    """Share of v's slope the cost's interval is judged against (``problem`` above, ``fine`` below)."""
    alpha: float = 0.05
    """Each end of the cost's interval is a one-sided test at this level (and the baseline's p)."""
    steers: bool = False
    """Whether v beats its random directions (retention's gate)."""
    n_items: int = 0
    """Held-out items behind each slope (1: the score gave one number per vector)."""
    n_pool: int = 0
    """Live features the null draws its rows from."""

    @property
    def cost(self) -> float | None:
        """``1 - share kept without the lost span`` (None when not measured)."""
        if self.share_kept is None or not math.isfinite(self.share_kept.ratio):
            return None
        return 1.0 - self.share_kept.ratio

    @property
    def cost_interval(self) -> tuple[float, float] | None:
        """The cost's interval (``1 - 2 alpha``), None when unbounded or not measured."""
        r = self.share_kept
        if r is None or not r.bounded:
            return None
        return 1.0 - r.ci_high, 1.0 - r.ci_low

    @property
    def energy_share(self) -> float | None:
        """``s^2 = (||removed|| / ||v||)^2``: the cost expected were the behaviour spread over v by energy."""
        return None if self.removed_norm_share is None else self.removed_norm_share**2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: the report's ``ablation`` section (non-finite numbers as None)."""
        null = None
        if self.null_costs is not None and self.cost is not None and self.null_costs.numel():
            summary = summarize_null(self.cost, self.null_costs)
            null = {**summary.to_dict(), "p_value": self.p_value, "critical": self.critical,
                    "gate": False, "note": BASELINE_NOTE}  # fmt: skip
        return {
            "features": list(self.features),
            "n_features": len(self.features),
            "rank": self.rank,
            "projection": PROJECTION,
            "removed_norm_share": self.removed_norm_share,
            "energy_share": self.energy_share,
            "multipliers": list(self.multipliers),
            "slopes": dict(self.slopes),
            "cost": self.cost,
            "cost_interval": None if self.cost_interval is None else list(self.cost_interval),
            "share_kept": _ratio_dict(self.share_kept),
            "share_removed": _ratio_dict(self.share_removed),
            "null": null,
            "p_value": self.p_value,
            "bound": self.max_cost,
            "max_cost": self.max_cost,
            "alpha": self.alpha,
            "steers": self.steers,
            "n_items": self.n_items,
            "n_pool": self.n_pool,
            "status": self.status,
            "reason": self.reason,
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _ratio_dict(r: RatioTest | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"ratio": _finite(r.ratio), "ci_low": _finite(r.ci_low), "ci_high": _finite(r.ci_high),
            "bounded": r.bounded, "level": r.level, "method": r.method, "r0": r.r0,
            "p_value": r.p_value, "p_value_above": r.p_value_above}  # fmt: skip


def _project(rows: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(P x, rank)`` for rows ``[..., k, d]`` and ``x [d]``: P projects onto each row set's span."""
    _, s, vh = torch.linalg.svd(rows, full_matrices=False)
    tol = s.amax(-1, keepdim=True) * max(rows.shape[-2:]) * torch.finfo(rows.dtype).eps
    keep = (s > tol).to(rows.dtype)  # drop the directions of dependent rows
    coeffs = (vh @ x) * keep
    return (coeffs[..., None] * vh).sum(-2), keep.sum(-1)


def lost_component(space: SaeSpace, vector: Tensor, features: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Split ``vector [d_in]`` (model space) along the span of ``features``' decoder rows.

    Returns:
        ``(without, removed)``, both ``[d_in]`` float32 in model space: ``removed`` is
        ``from_sae(P to_sae(vector))`` with P the orthogonal projector onto the rows' span (module
        notes), ``without = vector - removed``.

    Raises:
        ValueError: naming ``vector`` or ``features`` when they do not fit the SAE.
    """
    v = validate_vector(vector, space.d_in, "vector")
    without, removed, _ = _split(space, v, _feature_ids(features, space.d_sae))
    return without, removed


def _split(space: SaeSpace, v: Tensor, ids: tuple[int, ...]) -> tuple[Tensor, Tensor, int]:
    """``(without, removed, rank)`` of a validated ``v`` (see :func:`lost_component`)."""
    if not ids:
        return v.clone(), torch.zeros_like(v), 0
    rows = _rows(space, space.W_dec[list(ids)])
    removed_sae, rank = _project(rows, space.to_sae(v).to(torch.float64).cpu())
    removed = space.from_sae(removed_sae).to(v.device)
    return v - removed, removed, int(rank)


def _rows(space: SaeSpace, rows: Tensor) -> Tensor:
    """Decoder rows ``[..., k, d_in]`` in float64, centred under ``layer_norm`` (as the SAE sees inputs)."""
    rows = rows.to(torch.float64)
    if space.normalization == "layer_norm":
        rows = rows - rows.mean(dim=-1, keepdim=True)
    return rows


def _feature_ids(features: Sequence[int], d_sae: int) -> tuple[int, ...]:
    ids = tuple(int(f) for f in features)
    if len(set(ids)) != len(ids) or any(not 0 <= f < d_sae for f in ids):
        raise ValueError(f"features must be distinct feature ids in [0, {d_sae}), got {list(ids)[:8]}")
    return ids


def _null_removed(space: SaeSpace, v: Tensor, pool: Tensor, k: int, n: int, gen: torch.Generator) -> Tensor:
    """``[n, d_in]``: v's component in the span of ``k`` random rows of ``pool`` (ids), per draw."""
    picks = torch.rand(n, pool.numel(), generator=gen).argsort(dim=1)[:, :k]
    rows = _rows(space, space.W_dec[pool[picks]])  # [n, k, d_in]
    removed, _ = _project(rows, space.to_sae(v).to(torch.float64).cpu())
    return space.from_sae(removed)


def monte_carlo_p(cost: float, null_costs: Tensor, alpha: float) -> tuple[float | None, float | None]:
    """``(p, critical)`` of ``cost`` among the finite ``null_costs`` (non-finite ones are dropped).

    ``p = (1 + #{null >= cost}) / (1 + n)`` with n the finite null costs (ties count against the cost);
    ``critical`` is the ``floor(alpha (n + 1))``-th largest null cost, what a cost must exceed for
    ``p <= alpha`` (None when ``alpha (n + 1) < 1``). Both None without a finite null cost.
    """
    null = null_costs[torch.isfinite(null_costs)]
    n = int(null.numel())
    if n == 0:
        return None, None
    p = (1 + int((null >= cost).sum())) / (1 + n)
    j = math.floor(alpha * (n + 1) + 1e-9)
    critical = float(null.sort(descending=True).values[j - 1]) if j >= 1 else None
    return p, critical


def _slopes(score_fn: ScoreFn, vectors: Tensor, ms: tuple[float, ...]) -> Tensor:
    """Per-item slopes ``[k, n_items]`` of each vector ``[k, d]``, all scored in one call."""
    us = torch.tensor(ms, dtype=torch.float32)[None, :, None] * vectors.float().cpu()[:, None, :]
    unique, inverse = torch.unique(us.reshape(-1, vectors.shape[1]), dim=0, return_inverse=True)
    label = f"ablation: {vectors.shape[0]} vectors x {len(ms)} multipliers"
    scores = score_vectors(score_fn, unique.to(vectors.device), label=label)
    return fit_slope(ms, scores[inverse].reshape(vectors.shape[0], len(ms), -1).transpose(1, 2))


def ablation_check(
    score_fn: ScoreFn | None,
    space: SaeSpace,
    vector: Tensor,
    features: Sequence[int],
    live: Tensor,
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    *,
    steers: bool,
    n_null: int = 39,
    alpha: float = 0.05,
    max_cost: float = 0.2,
    n_boot: int = 200,
    generator: GeneratorLike = None,
) -> Ablation:
    """Steer without the lost projections and with them alone; judge the cost against random removals.

    Args:
        score_fn: behaviour score of an added vector (see ``retention.ScoreFn``), or None (not run).
        space: the SAE's input space (:func:`~sae_steer_checks.diagnostics.space.sae_space`).
        vector: the steering vector ``[d_in]`` in model space.
        features: the lost features (``LeaningCheck.flagged``); none: not run.
        live: features that fire on ordinary activations ``[d_sae]`` (bool): the null's pool.
        multipliers: at least two distinct multipliers (retention's).
        steers: whether v beats its random directions (``Retention.steers``).
        n_null: random removals in the null.
        alpha: level of the Monte Carlo test and of each end of the cost's interval.
        max_cost: share of v's slope in (0, 1) the lost projections must carry for ``problem``, and
            that the interval's upper end must stay below for ``fine``.
        n_boot: bootstrap draws of the ratio tests.
        generator: generator or seed of the null draws and the bootstraps.

    Returns:
        A finished :class:`Ablation`. Every vector (v, v without the lost span, the span's component,
        and the ``n_null`` random removals) is scored at every multiplier in one ``score_vectors`` call.

    Raises:
        ValueError: naming the bad argument.
    """
    v = validate_vector(vector, space.d_in, "vector")
    ids = _feature_ids(features, space.d_sae)
    n_null = validate_positive_int(n_null, "n_null")
    alpha = validate_fraction(alpha, "alpha")
    if alpha * (n_null + 1) < 1 - 1e-9:
        raise ValueError(
            f"n_null={n_null} random removals cannot give a Monte Carlo p-value at or below "
            f"alpha={alpha:g}: use n_null >= {math.ceil(1 / alpha - 1)}"
        )
    max_cost = validate_fraction(max_cost, "max_cost")
    n_boot = validate_positive_int(n_boot, "n_boot")
    if not isinstance(live, Tensor) or live.dtype != torch.bool or tuple(live.shape) != (space.d_sae,):
        got = (
            f"shape {list(live.shape)}, dtype {live.dtype}"
            if isinstance(live, Tensor)
            else type(live).__name__
        )
        raise ValueError(f"live must be a bool tensor of shape [{space.d_sae}], got {got}")
    ms = tuple(float(m) for m in multipliers)
    if len(set(ms)) < 2 or not all(math.isfinite(m) for m in ms):
        raise ValueError(f"multipliers must hold two distinct finite values, got {list(ms)}")
    common: dict[str, Any] = {"features": ids, "multipliers": ms, "max_cost": max_cost, "alpha": alpha,
                              "steers": bool(steers)}  # fmt: skip
    if score_fn is None or not ids:
        return Ablation(status="not run", reason=NO_SCORE if score_fn is None else NO_LOST, **common)
    rng = streams_from(generator, STREAMS)
    without, removed, rank = _split(space, v, ids)
    pool_mask = live.cpu().clone()
    pool_mask[list(ids)] = False
    pool = torch.nonzero(pool_mask).flatten()
    # a baseline needs at least n_null + 1 distinct row sets to draw from
    has_null = pool.numel() >= len(ids) and math.comb(int(pool.numel()), len(ids)) >= n_null + 1
    nulls = (
        _null_removed(space, v, pool, len(ids), n_null, rng["ablation.null"])
        if has_null
        else v.new_zeros(0, space.d_in)
    )
    # one scoring call for v, v without the lost span, the span's component and every random removal
    vectors = torch.cat([torch.stack([v, without, removed]), v[None] - nulls.to(v)])
    per_item = _slopes(score_fn, vectors, ms)
    groups = getattr(score_fn, "item_groups", None)
    means = group_mean(per_item, groups)
    v_norm = float(v.norm())
    common.update(
        rank=rank,
        removed_norm_share=float(removed.norm()) / v_norm if v_norm > 0 else None,
        slopes={"original": float(means[0]), "without": float(means[1]), "only": float(means[2])},
        n_items=int(per_item.shape[1]),
        n_pool=int(pool.numel()),
    )
    if per_item.shape[1] < 2:
        return Ablation(status="inconclusive", reason="the score gives one number per vector, not one per "
                        "item, so the shares have no interval", **common)  # fmt: skip
    tests: dict[str, Any] = {"groups": groups, "level": 1 - 2 * alpha, "n_boot": n_boot}
    kept = ratio_test(per_item[1], per_item[0], 1 - max_cost, generator=rng["ablation.ratio.kept"], **tests)
    only = ratio_test(per_item[2], per_item[0], max_cost, generator=rng["ablation.ratio.only"], **tests)
    common.update(share_kept=kept, share_removed=only)
    if not kept.bounded:
        return Ablation(status="inconclusive", reason="v's slope is not clearly non-zero, so the shares "
                        "have no bounded interval", **common)  # fmt: skip
    cost = 1.0 - kept.ratio
    if has_null:
        all_null = (1.0 - means[3:] / means[0]).to(torch.float64)
        null_costs = all_null[torch.isfinite(all_null)]
        p, critical = monte_carlo_p(cost, null_costs, alpha)
        common.update(null_costs=null_costs, p_value=p, critical=critical)
    status, reason = _judge(kept, bool(steers), max_cost, common["removed_norm_share"])
    return Ablation(status=status, reason=reason, **common)


def _judge(kept: RatioTest, steers: bool, max_cost: float, share: float | None) -> tuple[Status, str]:
    """The cost's interval against ``max_cost``: ``problem`` reads its low end, ``fine`` its high end."""
    if not steers:
        return "inconclusive", NOT_STEERING
    low, high = 1.0 - kept.ci_high, 1.0 - kept.ci_low
    span = f"{kept.level:.0%} interval [{low:.2f}, {high:.2f}]"
    energy = (
        ""
        if share is None
        else f"; s^2 = {share**2:.2f}, the cost if the behaviour were spread over v by energy"
    )
    what = "removing v's component along the flagged lost features' decoder rows"
    if low > max_cost:
        return "problem", f"{what} costs more than {max_cost:g} of v's slope: {span}{energy}"
    if high < max_cost:
        return "fine", f"{what} costs less than {max_cost:g} of v's slope: {span}{energy}"
    return "inconclusive", (
        f"the cost of {what} ({span}{energy}) is neither clearly above nor clearly below {max_cost:g}"
    )
