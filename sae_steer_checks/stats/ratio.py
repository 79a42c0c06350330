"""Ratio of two paired mean slopes, tested by inverting a studentised bootstrap of per-item contrasts.

The retention ratio ``r = mean(a) / mean(b)`` compares the mean slope of a reconstruction (``a``) with
that of the original vector (``b``) over the same items. For a candidate ``r0`` the per-item contrasts
``c_i = a_i - r0 b_i`` have mean ``mean(a) - r0 mean(b)``, which is 0 exactly when ``r = r0``. Their
t statistic is referred to a bootstrap-t (studentised) distribution: items are resampled with
replacement (within groups, groups weighted equally as in :mod:`sae_steer_checks.stats.resampling`) and each
draw gives ``(mean*(c) - mean(c)) / se*(c)``. Skewed or heavy-tailed per-item slopes bend that
reference distribution the way they bend the observed statistic, so the one-sided level holds where a
normal or t reference (Fieller's interval is the inversion of the t reference) does not.

Which side is which depends on the sign of ``mean(b)``: with ``mean(b) > 0`` a ratio below ``r0`` means
a negative mean contrast, with ``mean(b) < 0`` a positive one. The observed sign is used, which is only
meaningful when ``mean(b)`` is clearly non-zero; the interval says so (``bounded``).

The interval of the ratio is the set of ``r0`` neither one-sided test rejects at ``(1 - level) / 2``
(two-sided, equal tails: 2.5% each side at the default 95%). It is found on a grid of angles
``theta = atan(r0)`` over ``[-pi/2, pi/2]``, which covers the whole line including the two infinite
ends; its ends are then refined on finer grids inside the bracketing cells. The infinite end is not
rejected exactly when the bootstrap-t test of ``mean(b) = 0`` does not reject at ``(1 - level) / 2``:
then the interval is unbounded (reported as ``-inf, +inf``, "inconclusive"). All ``B`` bootstrap draws
times all grid points are evaluated as one ``[B, K]`` matrix computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from scipy import stats as scipy_stats
from torch import Tensor

from sae_steer_checks.stats.draws import GeneratorLike, as_generator
from sae_steer_checks.stats.estimates import (
    Groups,
    _balanced_moments,
    _check_at_least,
    _check_unit,
    _float64,
    _group_index,
    _item_weights,
    t_quantile,
)
from sae_steer_checks.stats.resampling import _resample_weights, percentile_interval

__all__ = ["RATIO_METHODS", "RatioInterval", "RatioMethod", "RatioTest", "ratio_interval", "ratio_test"]

RatioMethod = Literal["bootstrap_t", "fieller", "bootstrap"]
RATIO_METHODS: tuple[str, ...] = ("bootstrap_t", "fieller", "bootstrap")
"""Methods of :func:`ratio_test`: the studentised bootstrap (default), Fieller and the percentile
bootstrap."""

# Cells of the coarse grid of angles over [-pi/2, pi/2], points per refinement grid, and refinement
# passes: each pass shrinks the bracket of an end 16-fold (pi / 64 / 16**6: about 3e-9 radians).
_GRID = 64
_FINE = 17
_PASSES = 6
# A contrast variance this small relative to Var(a) + Var(b) counts as zero (the contrast is constant).
_VAR_RTOL = 1e-20
_NUM_RTOL = 1e-10


@dataclass(frozen=True)
class RatioInterval:
    """A ratio of two paired mean slopes with its interval."""

    ratio: float
    """mean(num) / mean(den), group-balanced when groups are given (inf or nan when mean(den) is 0)."""
    ci_low: float
    """Lower end; -inf when not ``bounded``."""
    ci_high: float
    """Upper end; +inf when not ``bounded``."""
    bounded: bool
    """False when the denominator is not significantly non-zero: no finite interval (inconclusive)."""
    method: str
    """``"fieller"`` or ``"bootstrap"``."""
    level: float
    """Confidence level."""


def ratio_interval(
    num: Tensor,
    den: Tensor,
    *,
    groups: Groups = None,
    level: float = 0.95,
    method: Literal["fieller", "bootstrap"] = "fieller",
    n_boot: int = 2000,
    generator: GeneratorLike = None,
) -> RatioInterval:
    """Interval for the ratio of two paired mean slopes (e.g. retention ``b_sae / b_orig``).

    Fieller: the r with ``(a - r b)^2 <= t^2 (V_aa - 2 r V_ab + r^2 V_bb)``, a and b the (balanced) means, V
    their covariance. That set is a finite interval exactly when ``b^2 > t^2 V_bb`` (the denominator is
    significantly non-zero); otherwise it is the whole line or two rays, reported as ``bounded=False`` with
    ends -inf, +inf ("inconclusive"). Bootstrap: items are resampled within groups and the interval is the
    percentile interval of the ratios; not bounded (infinite ends) when the denominators' interval holds 0.

    Args:
        num: Per-item numerator slopes ``[n_items]``.
        den: Per-item denominator slopes ``[n_items]``, paired with ``num``.
        groups: Group label per item ``[n_items]``, or None.
        level: Two-sided confidence level.
        method: ``"fieller"`` or ``"bootstrap"``.
        n_boot: Bootstrap draws (bootstrap only).
        generator: Generator or integer seed (bootstrap only).

    Returns:
        The ratio, its interval and whether the interval is bounded.
    """
    top, bottom = _float64(num, "num", "[n_items]", 1), _float64(den, "den", "[n_items]", 1)
    if top.shape != bottom.shape:
        raise ValueError(f"num and den must pair the same items, got {top.shape[0]} and {bottom.shape[0]}")
    _check_unit(level)
    a_b = torch.stack([top, bottom.to(top.device)], 1)
    idx, n_groups = _group_index(groups, a_b.shape[0])
    means, cov = _balanced_moments(a_b, idx, n_groups)
    ratio = float(means[0] / means[1])
    if method == "fieller":
        (a, b), ((vaa, vab), (_, vbb)) = means.tolist(), cov.tolist()
        t2 = t_quantile(level, a_b.shape[0] - n_groups) ** 2
        qa, qb, qc = b * b - t2 * vbb, a * b - t2 * vab, a * a - t2 * vaa
        if qa <= 0:
            return RatioInterval(ratio, -math.inf, math.inf, False, method, level)
        root = math.sqrt(max(qb * qb - qa * qc, 0.0))  # >= 0 in exact arithmetic when qa > 0
        return RatioInterval(ratio, (qb - root) / qa, (qb + root) / qa, True, method, level)
    if method != "bootstrap":
        raise ValueError(f"method must be 'fieller' or 'bootstrap', got {method!r}")
    _check_at_least(n_boot, "n_boot")
    boot = _resample_weights(idx, n_groups, n_boot, as_generator(generator)).to(a_b.device) @ a_b
    den_low, den_high = percentile_interval(boot[:, 1], level)
    if den_low <= 0 <= den_high:
        return RatioInterval(ratio, -math.inf, math.inf, False, method, level)
    low, high = percentile_interval(boot[:, 0] / boot[:, 1], level)
    return RatioInterval(ratio, low, high, True, method, level)


@dataclass(frozen=True)
class RatioTest(RatioInterval):
    """A :class:`RatioInterval` with the two one-sided tests of the ratio against ``r0``."""

    r0: float
    """The ratio tested against (e.g. the retained threshold)."""
    p_value: float
    """One-sided p-value of H0: ratio >= r0 (small: evidence that the ratio is below ``r0``)."""
    p_value_above: float
    """One-sided p-value of H0: ratio <= r0 (small: evidence that the ratio is above ``r0``)."""
    n_boot: int
    """Bootstrap draws behind the p-values and the interval (0 for Fieller)."""


def _studentise(num: Tensor, var: Tensor, num_scale: Tensor, var_scale: Tensor) -> Tensor:
    """``num / sqrt(var)``; a vanishing variance gives ``+-inf`` (or 0 when ``num`` vanishes too)."""
    flat = var <= _VAR_RTOL * var_scale
    zero = num.abs() <= _NUM_RTOL * num_scale
    t = num / var.clamp_min(0.0).sqrt().where(~flat, torch.ones_like(var))
    return t.where(~flat, torch.sign(num) * math.inf).where(~(flat & zero), torch.zeros_like(t))


def _boot_moments(x: Tensor, idx: Tensor, n_groups: int, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Balanced means ``[B, 2]`` and their covariances ``[B, 3]`` (aa, ab, bb) for every bootstrap draw.

    ``weights [B, n]`` are :func:`_resample_weights`; the items are centred on their observed group
    means first (means and covariances are computed from sums of counts times values, and centring
    keeps those sums from cancelling).
    """
    idx = idx.to(x.device)
    counts_g = torch.bincount(idx, minlength=n_groups).to(x.dtype)
    group_means = x.new_zeros(n_groups, 2).index_add_(0, idx, x) / counts_g[:, None]
    xc = x - group_means[idx]
    counts = torch.round(weights / _item_weights(idx, n_groups).to(x.device))  # [B, n] items drawn
    means = group_means.mean(0) + weights @ xc
    onehot = torch.nn.functional.one_hot(idx, n_groups).to(x.dtype)  # [n, G]
    ga = (counts * xc[:, 0]) @ onehot / counts_g  # [B, G] resampled group means (centred)
    gb = (counts * xc[:, 1]) @ onehot / counts_g
    w_g = 1.0 / ((counts_g - 1) * counts_g * n_groups**2)  # Cov(balanced mean) = sum_g S_g / (n_g G^2)
    w = w_g[idx]
    prods = torch.stack([xc[:, 0] ** 2, xc[:, 0] * xc[:, 1], xc[:, 1] ** 2], 1) * w[:, None]  # [n, 3]
    second = counts @ prods
    nw = counts_g * w_g
    cov = second - torch.stack([(ga * ga) @ nw, (ga * gb) @ nw, (gb * gb) @ nw], 1)
    return means, cov


class _BootstrapT:
    """Observed and bootstrap t statistics of the contrasts at any angle ``theta = atan(r0)``."""

    def __init__(self, x: Tensor, idx: Tensor, n_groups: int, weights: Tensor) -> None:
        means, cov = _balanced_moments(x, idx, n_groups)
        self.a, self.b = means[0], means[1]
        self.v = torch.stack([cov[0, 0], cov[0, 1], cov[1, 1]])
        self.boot_means, self.boot_v = _boot_moments(x, idx, n_groups, weights)
        self.sign = 1.0 if float(self.b) >= 0 else -1.0
        self.n_boot = weights.shape[0]
        self.num_scale = self.a.abs() + self.b.abs()
        self.var_scale = self.v[0] + self.v[2]
        self.var_floor = max(_VAR_RTOL * float(self.var_scale), torch.finfo(torch.float64).tiny)

    def p_values(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """One-sided p-values ``[K]`` of H0: ratio >= tan(theta) and of H0: ratio <= tan(theta).

        The statistic at ``theta`` is the t of ``cos(theta) a_i - sin(theta) b_i`` (the contrast at
        ``r0 = tan(theta)`` times ``cos(theta) > 0``), observed ``[K]`` and bootstrap ``[B, K]``.
        """
        c, s = torch.cos(theta), torch.sin(theta)
        quad = torch.stack([c * c, -2 * c * s, s * s])  # [3, K]
        num = c * self.a - s * self.b
        t = _studentise(num, self.v @ quad, self.num_scale, self.var_scale)
        # a draw whose contrasts are all equal (one item drawn per group) gets a huge |t*|, or 0
        boot = (self.boot_means[:, :1] * c - self.boot_means[:, 1:] * s - num).div_(
            (self.boot_v @ quad).clamp_min_(self.var_floor).sqrt_()
        )
        low, high = (boot <= t).sum(0), (boot >= t).sum(0)
        if self.sign < 0:  # mean(b) < 0: a ratio below r0 means a positive contrast
            low, high = high, low
        draws = 1.0 + self.n_boot
        return (1 + low).to(torch.float64) / draws, (1 + high).to(torch.float64) / draws

    def accepted(self, theta: Tensor, tail: float) -> Tensor:
        """Whether neither one-sided test rejects ``tan(theta)`` at ``tail`` (boolean ``[K]``)."""
        below, above = self.p_values(theta)
        return (below > tail) & (above > tail)

    def interval(self, level: float, extra: list[float]) -> tuple[float, float, bool]:
        """``(low, high, bounded)``: the ratios neither test rejects at ``(1 - level) / 2``."""
        tail = (1 - level) / 2
        device = self.a.device
        grid = torch.linspace(-math.pi / 2, math.pi / 2, _GRID + 1, dtype=torch.float64, device=device)
        points = torch.tensor([p for p in extra if math.isfinite(p)], dtype=torch.float64, device=device)
        theta = torch.unique(torch.cat([grid, points]))  # sorted
        ok = self.accepted(theta, tail)
        if bool(ok[0]) or bool(ok[-1]):  # an infinite ratio is not rejected
            return -math.inf, math.inf, False
        hits = ok.nonzero().flatten()
        if hits.numel() == 0:  # nothing survives (only in degenerate data): the point estimate
            r = float(self.a / self.b)
            return r, r, True
        lo, hi = int(hits[0]), int(hits[-1])
        # brackets (rejected, accepted) for each end, shrunk by finer grids
        ends = torch.stack([theta[[lo - 1, lo]], theta[[hi + 1, hi]]])  # [2, 2]
        steps = torch.linspace(0.0, 1.0, _FINE, dtype=torch.float64, device=device)
        for _ in range(_PASSES):
            fine = ends[:, :1] + (ends[:, 1:] - ends[:, :1]) * steps  # [2, F], rejected -> accepted
            fine_ok = self.accepted(fine.reshape(-1), tail).reshape(2, _FINE)
            fine_ok[:, -1] = True  # the accepted end of the bracket stays accepted
            first = fine_ok.to(torch.int8).argmax(1)  # first accepted point from the rejected side
            first = first.clamp_min(1)
            rows = torch.arange(2, device=device)
            ends = torch.stack([fine[rows, first - 1], fine[rows, first]], 1)
        low, high = math.tan(float(ends[0, 1])), math.tan(float(ends[1, 1]))
        estimate = float(self.a / self.b)  # tan(atan(r)) may differ from r in the last bit
        at = torch.tensor([math.atan(estimate)], dtype=torch.float64, device=device)
        if bool(self.accepted(at, tail)[0]):
            low, high = min(low, estimate), max(high, estimate)
        return low, high, True


def _fieller_p(x: Tensor, idx: Tensor, n_groups: int, r0: float) -> tuple[float, float]:
    """One-sided t p-values of the contrast at ``r0`` (the test Fieller's interval inverts)."""
    means, cov = _balanced_moments(x, idx, n_groups)
    (a, b), ((vaa, vab), (_, vbb)) = means.tolist(), cov.tolist()
    num = torch.tensor([a - r0 * b], dtype=torch.float64)
    var = torch.tensor([vaa - 2 * r0 * vab + r0 * r0 * vbb], dtype=torch.float64)
    t = float(_studentise(num, var, torch.tensor(abs(a) + abs(b)), torch.tensor(vaa + vbb))[0])
    st = t if b >= 0 else -t
    df = x.shape[0] - n_groups
    return float(scipy_stats.t.cdf(st, df)), float(scipy_stats.t.sf(st, df))


def ratio_test(
    num: Tensor,
    den: Tensor,
    r0: float,
    *,
    groups: Groups = None,
    level: float = 0.95,
    method: RatioMethod = "bootstrap_t",
    n_boot: int = 2000,
    generator: GeneratorLike = None,
) -> RatioTest:
    """Test the ratio of two paired mean slopes against ``r0`` and give its interval.

    With ``method="bootstrap_t"`` (the default) both one-sided tests use the studentised bootstrap of
    the contrasts ``num_i - r0 den_i`` (module notes) and the interval is their inversion. ``"fieller"``
    refers the same t statistic to Student's t with ``n_items - n_groups`` degrees of freedom and
    gives Fieller's interval; ``"bootstrap"`` gives the percentile interval of the resampled ratios
    and the p-values ``(1 + #{r* >= r0}) / (1 + B)`` and ``(1 + #{r* <= r0}) / (1 + B)``. Both assume
    roughly normal means and are kept for comparison.

    Args:
        num: Per-item numerator slopes ``[n_items]`` (e.g. of the reconstruction).
        den: Per-item denominator slopes ``[n_items]`` (e.g. of the original), paired with ``num``.
        r0: The ratio to test against.
        groups: Group label per item ``[n_items]`` (2+ items per group; groups weighted equally and
            resampled separately), or None.
        level: Two-sided confidence level of the interval (each end at ``(1 - level) / 2``).
        method: ``"bootstrap_t"``, ``"fieller"`` or ``"bootstrap"``.
        n_boot: Bootstrap draws (not used by Fieller).
        generator: Generator or integer seed of the bootstrap.

    Returns:
        The ratio with its interval (``bounded=False`` and infinite ends when the denominator's mean is
        not clearly non-zero) and the one-sided p-values of H0: ratio >= r0 (``p_value``) and of
        H0: ratio <= r0 (``p_value_above``).
    """
    top, bottom = _float64(num, "num", "[n_items]", 1), _float64(den, "den", "[n_items]", 1)
    if top.shape != bottom.shape:
        raise ValueError(f"num and den must pair the same items, got {top.shape[0]} and {bottom.shape[0]}")
    if not math.isfinite(r0):
        raise ValueError(f"r0 must be finite, got {r0}")
    _check_unit(level)
    if method not in RATIO_METHODS:
        raise ValueError(f"method must be one of {list(RATIO_METHODS)}, got {method!r}")
    x = torch.stack([top, bottom.to(top.device)], 1)
    idx, n_groups = _group_index(groups, x.shape[0])
    if method == "fieller":
        base = ratio_interval(top, bottom, groups=groups, level=level, method="fieller")
        p_below, p_above = _fieller_p(x, idx, n_groups, r0)
        return RatioTest(*_fields(base), r0, p_below, p_above, 0)
    _check_at_least(n_boot, "n_boot")
    gen = as_generator(generator)
    if method == "bootstrap":
        # core's percentile interval, then the same draws again (replayed from the generator's state)
        state = gen.get_state()
        base = ratio_interval(
            top, bottom, groups=groups, level=level, method="bootstrap", n_boot=n_boot, generator=gen
        )
        replay = torch.Generator(device=gen.device)
        replay.set_state(state)
        boot = _resample_weights(idx, n_groups, n_boot, replay).to(x.device) @ x
        ratios = boot[:, 0] / boot[:, 1]
        p_below = (1 + int((ratios >= r0).sum())) / (1 + n_boot)
        p_above = (1 + int((ratios <= r0).sum())) / (1 + n_boot)
        return RatioTest(*_fields(base), r0, p_below, p_above, n_boot)
    weights = _resample_weights(idx, n_groups, n_boot, gen).to(x.device)
    boot_t = _BootstrapT(x, idx, n_groups, weights)
    ratio = float(boot_t.a / boot_t.b)
    theta0 = torch.tensor([math.atan(r0)], dtype=torch.float64, device=x.device)
    below, above = boot_t.p_values(theta0)
    extra = [math.atan(r0), math.atan(ratio) if math.isfinite(ratio) else math.nan]
    low, high, bounded = boot_t.interval(level, extra)
    return RatioTest(ratio, low, high, bounded, method, level, r0, float(below[0]), float(above[0]), n_boot)


def _fields(r: RatioInterval) -> tuple[float, float, float, bool, str, float]:
    """The fields of a plain :class:`RatioInterval`, in order."""
    return r.ratio, r.ci_low, r.ci_high, r.bounded, r.method, r.level
