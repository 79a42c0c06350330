"""stats.ratio: the ratio test by inversion (a slow loop, the interval, signs, groups, level) and Fieller."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from torch import Tensor

from sae_steer_checks.stats import (
    RatioInterval,
    RatioTest,
    ratio_interval,
    ratio_test,
)
from sae_steer_checks.stats.estimates import _item_weights
from sae_steer_checks.stats.resampling import _resample_weights

pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(n: int, keep: float, seed: int, noise: float = 0.3) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    b = 1.0 + 0.5 * torch.randn(n, generator=gen, dtype=torch.float64)
    a = keep * b + noise * torch.randn(n, generator=gen, dtype=torch.float64)
    return a, b


def _mean_var_loop(values: list[float], groups: list[int]) -> tuple[float, float]:
    """Group-balanced mean of ``values`` and its variance, one group at a time."""
    labels = sorted(set(groups))
    means, variances = [], []
    for g in labels:
        xs = [v for v, k in zip(values, groups, strict=True) if k == g]
        m = sum(xs) / len(xs)
        means.append(m)
        variances.append(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))
    return sum(means) / len(labels), sum(variances) / len(labels) ** 2


def _t_loop(values: list[float], groups: list[int], centre: float) -> float:
    mean, var = _mean_var_loop(values, groups)
    if var == 0:
        return 0.0 if mean == centre else math.copysign(math.inf, mean - centre)
    return (mean - centre) / math.sqrt(var)


def _p_loop(
    a: Tensor, b: Tensor, r0: float, groups: list[int], n_boot: int, seed: int
) -> tuple[float, float]:
    """Bootstrap-t p-values by resampling item by item, with the draws of ``stats.resampling``."""
    idx = torch.unique(torch.tensor(groups), return_inverse=True)[1]
    n_groups = int(idx.max()) + 1
    weights = _resample_weights(idx, n_groups, n_boot, torch.Generator().manual_seed(seed))
    counts = torch.round(weights / _item_weights(idx, n_groups)).long().tolist()
    contrast = [float(x) - r0 * float(y) for x, y in zip(a, b, strict=True)]
    centre = _mean_var_loop(contrast, groups)[0]
    t = _t_loop(contrast, groups, 0.0)
    sign = 1.0 if _mean_var_loop(b.tolist(), groups)[0] >= 0 else -1.0  # which side is "below r0"
    low = high = 0
    for row in counts:
        drawn = [c for c, k in zip(contrast, row, strict=True) for _ in range(k)]
        drawn_groups = [lab for lab, k in zip(groups, row, strict=True) for _ in range(k)]
        t_star = _t_loop(drawn, drawn_groups, centre)
        low += sign * t_star <= sign * t
        high += sign * t_star >= sign * t
    return (1 + low) / (1 + n_boot), (1 + high) / (1 + n_boot)


@pytest.mark.parametrize("groups", [None, [0, 0, 0, 1, 1, 1, 1, 1, 1]])
@pytest.mark.parametrize("r0", [0.3, 0.55, 0.8])
def test_bootstrap_t_p_values_match_a_slow_loop(groups: list[int] | None, r0: float) -> None:
    a, b = _pair(9, 0.5, seed=1)
    got = ratio_test(a, b, r0, groups=groups, n_boot=300, generator=7)
    low, high = _p_loop(a, b, r0, groups or [0] * 9, 300, 7)
    assert isinstance(got, RatioTest)
    assert isinstance(got, RatioInterval)  # drop-in for the old interval
    assert (got.p_value, got.p_value_above) == pytest.approx((low, high), abs=1e-12)
    assert got.method == "bootstrap_t"
    assert got.n_boot == 300
    assert got.r0 == r0


def test_the_interval_is_the_inversion_of_the_two_one_sided_tests() -> None:
    a, b = _pair(25, 0.6, seed=2)
    r = ratio_test(a, b, 0.8, generator=3)
    assert r.bounded
    assert r.ci_low < r.ratio < r.ci_high
    # the same draws (same seed) at r0 just outside each end reject at 2.5%, just inside do not
    eps = 1e-6
    outside_high = ratio_test(a, b, r.ci_high + eps, generator=3)
    inside_high = ratio_test(a, b, r.ci_high - eps, generator=3)
    outside_low = ratio_test(a, b, r.ci_low - eps, generator=3)
    inside_low = ratio_test(a, b, r.ci_low + eps, generator=3)
    assert outside_high.p_value <= 0.025 < inside_high.p_value
    assert outside_low.p_value_above <= 0.025 < inside_low.p_value_above
    # and the interval agrees with the slow loop's p-values at those points
    low, _ = _p_loop(a, b, r.ci_high + eps, [0] * 25, 2000, 3)
    assert low == pytest.approx(outside_high.p_value, abs=1e-12)


def test_fieller_method_is_the_t_test_of_the_contrasts_and_fieller_interval() -> None:
    a, b = _pair(15, 0.6, seed=4)
    got = ratio_test(a, b, 0.8, method="fieller")
    ref = ratio_interval(a, b, method="fieller")
    assert (got.ratio, got.ci_low, got.ci_high, got.bounded) == pytest.approx(
        (ref.ratio, ref.ci_low, ref.ci_high, ref.bounded)
    )
    contrast = (a - 0.8 * b).numpy()
    assert got.p_value == pytest.approx(scipy_stats.ttest_1samp(contrast, 0, alternative="less").pvalue)
    assert got.p_value_above == pytest.approx(
        scipy_stats.ttest_1samp(contrast, 0, alternative="greater").pvalue
    )
    assert got.n_boot == 0


def test_percentile_bootstrap_keeps_the_old_interval_and_counts_the_ratios() -> None:
    a, b = _pair(15, 0.6, seed=5)
    got = ratio_test(a, b, 0.8, method="bootstrap", n_boot=400, generator=6)
    ref = ratio_interval(a, b, method="bootstrap", n_boot=400, generator=6)
    assert (got.ci_low, got.ci_high) == (ref.ci_low, ref.ci_high)
    idx = torch.zeros(15, dtype=torch.long)
    boot = _resample_weights(idx, 1, 400, torch.Generator().manual_seed(6)) @ torch.stack([a, b], 1)
    ratios = boot[:, 0] / boot[:, 1]
    assert got.p_value == pytest.approx((1 + int((ratios >= 0.8).sum())) / 401)
    assert got.p_value_above == pytest.approx((1 + int((ratios <= 0.8).sum())) / 401)


def test_a_negative_denominator_flips_the_inequality() -> None:
    a, b = _pair(20, 0.5, seed=8)
    pos = ratio_test(a, b, 0.8, generator=1)
    # the same ratio from negated slopes: the same claim, the same p-values
    both = ratio_test(-a, -b, 0.8, generator=1)
    assert (both.p_value, both.p_value_above) == pytest.approx((pos.p_value, pos.p_value_above))
    assert (both.ci_low, both.ci_high) == pytest.approx((pos.ci_low, pos.ci_high), rel=1e-6)
    # only the denominator negated: the ratio is -0.5, above -0.8, so "below -0.8" is rejected the other way
    neg = ratio_test(a, -b, -0.8, generator=1)
    assert (neg.p_value, neg.p_value_above) == pytest.approx((pos.p_value_above, pos.p_value))
    assert (neg.ci_low, neg.ci_high) == pytest.approx((-pos.ci_high, -pos.ci_low), rel=1e-6)
    assert pos.p_value < 0.01 < 0.99 < neg.p_value


def test_scaling_the_numerator_scales_the_interval() -> None:
    a, b = _pair(20, 0.7, seed=9)
    one = ratio_test(a, b, 0.8, generator=2)
    three = ratio_test(3 * a, b, 2.4, generator=2)
    assert (three.ratio, three.ci_low, three.ci_high) == pytest.approx(
        (3 * one.ratio, 3 * one.ci_low, 3 * one.ci_high), rel=1e-6
    )
    assert (three.p_value, three.p_value_above) == pytest.approx((one.p_value, one.p_value_above))


def test_groups_are_weighted_equally_and_resampled_within() -> None:
    a, b = _pair(12, 0.5, seed=10)
    groups = [0] * 4 + [1] * 8
    r = ratio_test(a, b, 0.8, groups=groups, generator=3)
    num = (a[:4].mean() + a[4:].mean()) / 2
    den = (b[:4].mean() + b[4:].mean()) / 2
    assert r.ratio == pytest.approx(float(num / den))
    # relabelling the groups in the same order changes nothing
    again = ratio_test(a, b, 0.8, groups=[5] * 4 + [9] * 8, generator=3)
    assert again == r
    with pytest.raises(ValueError, match="at least 2 items"):
        ratio_test(a, b, 0.8, groups=[0] + [1] * 11)


def test_a_denominator_not_clearly_non_zero_gives_an_unbounded_interval() -> None:
    gen = torch.Generator().manual_seed(11)
    b = 0.02 + torch.randn(20, generator=gen, dtype=torch.float64)
    a = torch.randn(20, generator=gen, dtype=torch.float64)
    r = ratio_test(a, b, 0.8, generator=0)
    assert not r.bounded
    assert (r.ci_low, r.ci_high) == (-math.inf, math.inf)


def test_identical_slopes_have_ratio_one() -> None:
    _, b = _pair(10, 1.0, seed=12, noise=0.0)
    r = ratio_test(b, b, 0.8, n_boot=500, generator=0)
    assert r.ratio == 1.0
    assert r.ci_low == pytest.approx(1.0, abs=1e-6)
    assert r.ci_high == pytest.approx(1.0, abs=1e-6)
    assert r.ci_low <= 1.0 <= r.ci_high
    assert r.p_value_above == pytest.approx(1 / 501)  # every contrast 0.2 b_i: surely above 0.8
    assert r.p_value == 1.0


def test_bad_arguments() -> None:
    a, b = _pair(10, 0.5, seed=13)
    with pytest.raises(ValueError, match="pair the same items"):
        ratio_test(a, b[:9], 0.8)
    with pytest.raises(ValueError, match="method must be one of"):
        ratio_test(a, b, 0.8, method="delta")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="r0 must be finite"):
        ratio_test(a, b, math.inf)
    with pytest.raises(ValueError, match="level"):
        ratio_test(a, b, 0.8, level=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        ratio_test(a, b, 0.8, n_boot=0)


@pytest.mark.parametrize("skewed", [False, True])
def test_level_at_the_threshold_in_a_small_simulation(skewed: bool) -> None:
    # true ratio exactly 0.8; "ratio >= 0.8" may be rejected at one-sided 5% in at most
    # 5% + 3 Monte Carlo SEs of the worlds
    worlds, n, hits = 200, 20, 0
    for w in range(worlds):
        gen = torch.Generator().manual_seed(1000 + w)
        b = 1.0 + 0.5 * torch.randn(n, generator=gen, dtype=torch.float64)
        z = torch.randn(n, generator=gen, dtype=torch.float64)
        noise = (torch.exp(0.5 * z) - math.exp(0.125)) / 0.6 if skewed else z
        a = 0.8 * b + 0.4 * noise
        hits += ratio_test(a, b, 0.8, n_boot=500, generator=w).p_value <= 0.05
    assert hits / worlds <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / worlds)


# --- Fieller and percentile-bootstrap intervals (ratio_interval) ----------------------------------

SEEDS = st.integers(0, 2**31 - 1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mc_bound(rate: float, n: int) -> float:
    """Three Monte-Carlo standard errors of a proportion ``rate`` estimated from ``n`` draws."""
    return 3 * math.sqrt(rate * (1 - rate) / n)


def _paired_slopes(gen: torch.Generator, n: int, mean_num: float, mean_den: float) -> tuple[Tensor, Tensor]:
    """Bivariate-normal per-item slopes: sds 0.5 and 0.6, correlation 0.5."""
    z = torch.randn(2, n, generator=gen, dtype=torch.float64)
    den = mean_den + 0.6 * z[0]
    num = mean_num + 0.5 * (0.5 * z[0] + math.sqrt(0.75) * z[1])
    return num, den


def test_fieller_covers_the_true_ratio_at_the_nominal_rate() -> None:
    """Over 400 normal worlds the 95% Fieller interval covers the ratio 95% +- 3 MC SE."""
    gen, worlds = _gen(11), 400
    covered = bounded = 0
    for _ in range(worlds):
        num, den = _paired_slopes(gen, 20, 0.5, 1.0)
        res = ratio_interval(num, den)
        covered += res.ci_low <= 0.5 <= res.ci_high
        bounded += res.bounded
    assert bounded == worlds
    assert abs(covered / worlds - 0.95) <= _mc_bound(0.95, worlds)


def test_fieller_is_unbounded_when_the_denominator_is_zero_mean_noise() -> None:
    """A denominator with mean exactly 0 gives an unbounded (inconclusive) interval."""
    gen = _gen(5)
    noise = torch.randn(30, generator=gen, dtype=torch.float64)
    res = ratio_interval(torch.randn(30, generator=gen) + 1, noise - noise.mean())
    assert not res.bounded
    assert (res.ci_low, res.ci_high) == (-math.inf, math.inf)
    boot = ratio_interval(torch.randn(30, generator=gen), noise - noise.mean(), method="bootstrap")
    assert not boot.bounded


def test_fieller_agrees_with_bootstrap_when_well_determined() -> None:
    """With many items and a clear denominator, Fieller and bootstrap ends agree."""
    num, den = _paired_slopes(_gen(2), 300, 1.0, 2.0)
    fieller = ratio_interval(num, den)
    boot = ratio_interval(num, den, method="bootstrap", n_boot=4000, generator=0)
    assert fieller.ratio == boot.ratio == pytest.approx(float(num.mean() / den.mean()), rel=1e-12)
    width = fieller.ci_high - fieller.ci_low
    assert fieller.bounded
    assert boot.bounded
    assert abs(boot.ci_low - fieller.ci_low) < 0.1 * width
    assert abs(boot.ci_high - fieller.ci_high) < 0.1 * width


@given(seed=SEEDS, scale=st.floats(0.1, 10))
def test_ratio_interval_scales_with_numerator_and_denominator(seed: int, scale: float) -> None:
    """Scaling num (den) by c scales the ratio and its interval by c (1/c)."""
    num, den = _paired_slopes(_gen(seed), 12, 0.5, 1.0)
    base = ratio_interval(num, den)
    assume(base.bounded)
    up, down = ratio_interval(scale * num, den), ratio_interval(num, scale * den)
    assert (up.ratio, up.ci_low, up.ci_high) == pytest.approx(
        (scale * base.ratio, scale * base.ci_low, scale * base.ci_high), rel=1e-8
    )
    assert (down.ratio, down.ci_low, down.ci_high) == pytest.approx(
        (base.ratio / scale, base.ci_low / scale, base.ci_high / scale), rel=1e-8
    )


def test_ratio_interval_rejects_bad_input() -> None:
    """Unknown method, unpaired inputs, bad level and n_boot are refused."""
    num = torch.ones(4)
    with pytest.raises(ValueError, match="method must be"):
        ratio_interval(num, num, method="delta")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got 4 and 3"):
        ratio_interval(num, torch.ones(3))
    with pytest.raises(ValueError, match="level must be in"):
        ratio_interval(num, num, level=0.0)
    with pytest.raises(ValueError, match="n_boot must be at least 1, got 0"):
        ratio_interval(num, num, method="bootstrap", n_boot=0)
