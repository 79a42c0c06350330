"""Unit tests of the statistical primitives: slopes, ratio intervals, sign-flip nulls, FDR and bootstrap."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy import stats as scipy_stats
from torch import Tensor

from sae_steer_checks.stats import (
    benjamini_hochberg,
    bootstrap_items,
    cluster_mean,
    fit_slope,
    fraction_null,
    item_slopes_summary,
    null_percentile,
    ratio_interval,
    sign_flip_test,
    summarize_null,
    t_quantile,
)

SEEDS = st.integers(0, 2**31 - 1)


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mc_bound(rate: float, n: int) -> float:
    """Three Monte-Carlo standard errors of a proportion ``rate`` estimated from ``n`` draws."""
    return 3 * math.sqrt(rate * (1 - rate) / n)


def _share_negative(means: Tensor) -> Tensor:
    return (means < 0).double().mean(1)


# ----------------------------------------------------------------------------------------------- slopes


@given(m=st.integers(2, 10), batch=st.integers(1, 4), seed=SEEDS)
def test_fit_slope_matches_polyfit(m: int, batch: int, seed: int) -> None:
    """The slope equals numpy's degree-1 polyfit, row by row, with repeated design points."""
    gen = _gen(seed)
    x = torch.randint(-3, 4, (m,), generator=gen).double() / 2
    assume(torch.unique(x).numel() >= 2)
    y = torch.randn(batch, m, generator=gen, dtype=torch.float64)
    expected = [np.polyfit(x.numpy(), row, 1)[0] for row in y.numpy()]
    assert_allclose(fit_slope(x.tolist(), y).numpy(), expected, rtol=1e-9, atol=1e-12)


@given(seed=SEEDS, scale=st.floats(-5, 5), shift=st.floats(-5, 5))
def test_fit_slope_is_affine_in_y_and_shift_invariant_in_x(seed: int, scale: float, shift: float) -> None:
    """Slopes scale with y, ignore shifts of y and x, and halve when x doubles."""
    gen = _gen(seed)
    x = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    y = torch.randn(3, 2, 4, generator=gen, dtype=torch.float64)
    base = fit_slope(x, y)
    assert base.shape == (3, 2)
    assert_allclose(fit_slope(x, scale * y + shift), scale * base, rtol=1e-9, atol=1e-9)
    assert_allclose(fit_slope(x + shift, y), base, rtol=1e-9, atol=1e-9)
    assert_allclose(fit_slope(2 * x, y), base / 2, rtol=1e-12, atol=1e-12)


def test_fit_slope_rejects_bad_input() -> None:
    """A single design point, mismatched shapes and NaNs are refused by name."""
    with pytest.raises(ValueError, match="at least 2 distinct"):
        fit_slope([1.0, 1.0, 1.0], torch.randn(3))
    with pytest.raises(ValueError, match="got shapes"):
        fit_slope([0.0, 1.0], torch.randn(4, 3))
    with pytest.raises(ValueError, match="y must be finite"):
        fit_slope([0.0, 1.0], torch.tensor([0.0, math.nan]))


def test_cluster_mean_by_hand() -> None:
    """Rows sharing an id average into one row; ids come back sorted."""
    values = torch.tensor([[1.0, 2.0], [10.0, 20.0], [3.0, 6.0]])
    ids, means = cluster_mean(values, torch.tensor([5, 2, 5]))
    assert ids.tolist() == [2, 5]
    assert means.tolist() == [[10.0, 20.0], [2.0, 4.0]]


@given(n=st.integers(1, 8), seed=SEEDS)
def test_cluster_mean_merges_twin_copies_into_their_item(n: int, seed: int) -> None:
    """An item and its identical swapped copy merge back into the item."""
    items = torch.randn(n, 3, 2, generator=_gen(seed), dtype=torch.float64)
    twins = torch.cat([items, items])
    ids, means = cluster_mean(twins, torch.arange(n).repeat(2))
    assert ids.tolist() == list(range(n))
    assert_allclose(means, items, rtol=1e-15)


def test_cluster_mean_rejects_mismatched_ids() -> None:
    """One cluster id per row is required."""
    with pytest.raises(ValueError, match="clusters must be"):
        cluster_mean(torch.randn(4, 2), torch.tensor([0, 1, 1]))


# --------------------------------------------------------------------------------------- mean of slopes


def test_item_slopes_summary_balanced_by_hand() -> None:
    """Group-balanced mean, SE and t interval match a hand computation."""
    est = item_slopes_summary(torch.tensor([1.0, 2.0, 3.0, 10.0, 14.0]), [0, 0, 0, 1, 1])
    # group means 2 and 12; group variances 1 (n=3) and 8 (n=2)
    se = math.sqrt(1 / 3 + 8 / 2) / 2
    half = scipy_stats.t.ppf(0.975, 3) * se
    assert (est.mean, est.n_items, est.n_groups, est.df) == (7.0, 5, 2, 3)
    assert est.se == pytest.approx(se, rel=1e-12)
    assert (est.ci_low, est.ci_high) == pytest.approx((7.0 - half, 7.0 + half), rel=1e-12)


def test_item_slopes_summary_without_groups_is_the_t_interval() -> None:
    """Without groups the summary is scipy's one-sample t interval."""
    slopes = torch.randn(9, generator=_gen(3), dtype=torch.float64)
    est = item_slopes_summary(slopes, level=0.9)
    values = slopes.numpy()
    low, high = scipy_stats.t.interval(0.9, 8, loc=values.mean(), scale=scipy_stats.sem(values))
    assert est.mean == pytest.approx(values.mean(), rel=1e-12)
    assert est.se == pytest.approx(scipy_stats.sem(values), rel=1e-12)
    assert (est.ci_low, est.ci_high, est.df, est.level) == pytest.approx((low, high, 8, 0.9), rel=1e-12)


@given(n_groups=st.integers(1, 4), per_group=st.integers(2, 6), seed=SEEDS)
def test_balanced_mean_of_equal_groups_is_the_plain_mean(n_groups: int, per_group: int, seed: int) -> None:
    """Equal-size groups weigh every item equally."""
    slopes = torch.randn(n_groups * per_group, generator=_gen(seed), dtype=torch.float64)
    groups = torch.randperm(n_groups * per_group, generator=_gen(seed + 1)) % n_groups
    est = item_slopes_summary(slopes, groups)
    assert est.mean == pytest.approx(float(slopes.mean()), rel=1e-9, abs=1e-12)
    assert est.df == n_groups * per_group - n_groups


def test_item_slopes_summary_rejects_bad_input() -> None:
    """Too few items, a bad shape, a singleton group and a bad level are refused."""
    with pytest.raises(ValueError, match="n_items must be at least 2, got 1"):
        item_slopes_summary(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"slopes must have shape \[n_items\]"):
        item_slopes_summary(torch.ones(2, 2))
    with pytest.raises(ValueError, match="group 1 has 1"):
        item_slopes_summary(torch.tensor([1.0, 2.0, 3.0]), [0, 0, 1])
    with pytest.raises(ValueError, match=r"groups must have shape \[3\]"):
        item_slopes_summary(torch.tensor([1.0, 2.0, 3.0]), [0, 0])
    with pytest.raises(ValueError, match="level must be in"):
        item_slopes_summary(torch.tensor([1.0, 2.0]), level=1.0)


def test_t_quantile_known_values() -> None:
    """Two-sided t critical values match tables; df < 1 is refused."""
    assert t_quantile(0.95, 10) == pytest.approx(2.228138851986, rel=1e-9)
    assert t_quantile(0.95, 10**7) == pytest.approx(1.959964, rel=1e-5)
    with pytest.raises(ValueError, match="df must be at least 1, got 0"):
        t_quantile(0.95, 0)


# ------------------------------------------------------------------------------------------------ ratios


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


# ------------------------------------------------------------------------------------------- sign flips


def test_sign_flip_pvalues_are_uniform_under_the_null() -> None:
    """Null p-values are uniform: tail shares within 3 MC SE and a KS check."""
    diffs = torch.randn(12, 3000, generator=_gen(0), dtype=torch.float64)
    p = sign_flip_test(diffs, n_perm=999, generator=1, chunk=700).p_values
    assert p.shape == (3000,)
    assert float(p.min()) >= 1 / 1000
    for level in (0.05, 0.5):
        assert abs(float((p <= level).double().mean()) - level) <= _mc_bound(level, 3000)
    assert scipy_stats.kstest(p.numpy(), "uniform").pvalue > 0.001


def test_sign_flip_is_conservative_on_zero_inflated_codes() -> None:
    """Sparse, heavy-tailed symmetric codes do not inflate the false-positive rate."""
    gen = _gen(4)
    signs = torch.randint(0, 2, (15, 2000), generator=gen) * 2 - 1
    laplace = signs * -torch.log(torch.rand(15, 2000, generator=gen))
    diffs = laplace * (torch.rand(15, 2000, generator=gen) < 0.3)
    p = sign_flip_test(diffs, n_perm=999, generator=gen).p_values
    assert float((p <= 0.05).double().mean()) <= 0.05 + _mc_bound(0.05, 2000)


def test_sign_flip_pvalues_are_tiny_for_a_planted_shift() -> None:
    """A planted shift gives p-values at the floor for every feature."""
    diffs = torch.randn(20, 6, generator=_gen(8)) + 1.5
    res = sign_flip_test(diffs, n_perm=999, generator=2)
    assert not res.exact
    assert res.n_perm == 999
    assert bool((res.p_values <= 0.01).all())
    far = sign_flip_test(diffs + 2, n_perm=999, generator=2).p_values
    assert far.tolist() == [1 / 1000] * 6  # no flip comes close: the +1 floor of a random-draw test
    assert_allclose(res.mean, diffs.double().mean(0), rtol=1e-12)


def test_sign_flip_exact_enumeration_matches_a_loop() -> None:
    """With 2**n <= n_perm the p-values equal a brute-force loop over all sign vectors, ties included."""
    tenths = torch.randint(-9, 10, (5, 8), generator=_gen(9))
    tenths[:, 6] = torch.tensor([3, -3, 3, 3, -3])  # every |T(s)| ties with others
    tenths[:, 7] = 0  # no information at all: p = 1
    res = sign_flip_test(tenths.double() / 10, n_perm=32)
    assert res.exact
    assert res.n_perm == 32
    expected = []
    for column in tenths.T.tolist():
        # exact rational arithmetic: sums that tie in decimals tie here, whatever the float rounding
        values = [Fraction(v, 10) for v in column]
        observed = abs(sum(values))
        flips = itertools.product((-1, 1), repeat=5)
        hits = sum(abs(sum(s * v for s, v in zip(signs, values, strict=True))) >= observed for signs in flips)
        expected.append(hits / 32)
    assert res.p_values.tolist() == expected
    assert res.p_values[7] == 1.0
    assert not sign_flip_test(tenths.double(), n_perm=31).exact


@given(seed=SEEDS, n=st.integers(2, 9), power=st.integers(-3, 3))
def test_sign_flip_ignores_negation_and_scale(seed: int, n: int, power: int) -> None:
    """Negating or rescaling the differences leaves the p-values unchanged."""
    diffs = torch.randn(n, 7, generator=_gen(seed), dtype=torch.float64) + 0.3
    base = sign_flip_test(diffs, n_perm=200, generator=seed)
    flipped = sign_flip_test(-(2.0**power) * diffs, n_perm=200, generator=seed)
    assert torch.equal(flipped.p_values, base.p_values)
    assert_allclose(flipped.mean, -(2.0**power) * base.mean, rtol=1e-12)


def test_sign_flip_is_reproducible_from_a_seed() -> None:
    """The same seed (int or generator) gives the same p-values; another seed differs."""
    diffs = torch.randn(14, 40, generator=_gen(1))
    first = sign_flip_test(diffs, n_perm=300, generator=7).p_values
    assert torch.equal(first, sign_flip_test(diffs, n_perm=300, generator=7).p_values)
    assert torch.equal(first, sign_flip_test(diffs, n_perm=300, generator=_gen(7)).p_values)
    assert not torch.equal(first, sign_flip_test(diffs, n_perm=300, generator=8).p_values)


def test_sign_flip_rejects_bad_input() -> None:
    """A 1-D matrix, one item, no permutations and infinities are refused."""
    with pytest.raises(ValueError, match=r"diffs must have shape \[n_items, d\], got shape \[5\]"):
        sign_flip_test(torch.randn(5))
    with pytest.raises(ValueError, match="n_items must be at least 2, got 1"):
        sign_flip_test(torch.randn(1, 4))
    with pytest.raises(ValueError, match="n_perm must be at least 1, got 0"):
        sign_flip_test(torch.randn(3, 4), n_perm=0)
    with pytest.raises(ValueError, match="diffs must be finite"):
        sign_flip_test(torch.tensor([[1.0], [math.inf]]))


# ------------------------------------------------------------------------------------------------ FDR


def _bh_reference(p: list[float], alpha: float, harmonic: float) -> list[bool]:
    """Step-up by the book: the largest k with p_(k) <= k alpha / (m c_m); reject every p <= p_(k)."""
    m, ordered = len(p), sorted(p)
    largest = 0
    for k in range(1, m + 1):
        if ordered[k - 1] <= alpha * k / (m * harmonic):
            largest = k
    return [largest > 0 and value <= ordered[largest - 1] for value in p]


@given(
    m=st.integers(1, 40),
    seed=SEEDS,
    alpha=st.sampled_from([0.01, 0.05, 0.1, 0.25]),
    dependence=st.sampled_from(["independent", "arbitrary"]),
)
def test_benjamini_hochberg_matches_a_loop(m: int, seed: int, alpha: float, dependence: str) -> None:
    """BH and BY rejections equal a textbook step-up loop, ties included."""
    gen = _gen(seed)
    small = torch.rand(m, generator=gen) < 0.4
    p = torch.where(small, torch.rand(m, generator=gen) * 0.02, torch.rand(m, generator=gen))
    p = torch.round(p.double(), decimals=3)  # ties included
    harmonic = sum(1 / k for k in range(1, m + 1)) if dependence == "arbitrary" else 1.0
    got = benjamini_hochberg(p, alpha, dependence=dependence)  # type: ignore[arg-type]
    assert got.dtype == torch.bool
    assert got.tolist() == _bh_reference(p.tolist(), alpha, harmonic)


def test_benjamini_hochberg_by_hand_and_shape() -> None:
    """A worked example; the mask keeps p's shape; an empty input is fine."""
    p = torch.tensor([0.01, 0.04, 0.03, 0.2], dtype=torch.float64)
    assert benjamini_hochberg(p, 0.05).tolist() == [True, False, False, False]
    assert benjamini_hochberg(p, 0.15).tolist() == [True, True, True, False]
    assert benjamini_hochberg(p, 0.2).tolist() == [True, True, True, True]  # p_(4) = 0.2 * 4 / 4 rejects
    assert benjamini_hochberg(torch.full((3, 4), 0.001), 0.05).shape == (3, 4)
    assert benjamini_hochberg(torch.empty(0), 0.05).numel() == 0


@given(m=st.integers(1, 60), seed=SEEDS, alpha=st.floats(0.001, 0.5))
def test_benjamini_yekutieli_is_more_conservative(m: int, seed: int, alpha: float) -> None:
    """BY rejects a subset of what BH rejects (the same set for one test)."""
    p = torch.rand(m, generator=_gen(seed)) ** 3
    bh = benjamini_hochberg(p, alpha)
    by = benjamini_hochberg(p, alpha, dependence="arbitrary")
    assert not bool((by & ~bh).any())
    if m == 1:
        assert torch.equal(by, bh)


def test_benjamini_hochberg_rejects_bad_input() -> None:
    """An alpha outside (0, 1), p outside [0, 1] or NaN, and an unknown dependence are refused."""
    for alpha in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=f"alpha must be in \\(0, 1\\), got {alpha}"):
            benjamini_hochberg(torch.rand(3), alpha)
    with pytest.raises(ValueError, match="p must hold p-values"):
        benjamini_hochberg(torch.tensor([0.1, 1.2]), 0.05)
    with pytest.raises(ValueError, match="p must hold p-values"):
        benjamini_hochberg(torch.tensor([0.1, math.nan]), 0.05)
    with pytest.raises(ValueError, match="dependence must be"):
        benjamini_hochberg(torch.rand(3), 0.05, dependence="positive")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- nulls and bootstrap


def test_null_percentile_uses_mid_ranks() -> None:
    """Percentiles count half the ties; the summary matches numpy."""
    draws = torch.tensor([1.0, 2.0, 2.0, 3.0])
    assert null_percentile(2.0, draws) == 50.0
    assert [null_percentile(x, draws) for x in (0.0, 9.0, 2.5)] == [0.0, 100.0, 75.0]
    summary = summarize_null(2.5, draws)
    values = draws.numpy()
    assert (summary.mean, summary.n, summary.percentile) == (2.0, 4, 75.0)
    assert summary.sd == pytest.approx(values.std(ddof=1), rel=1e-12)
    assert (summary.q05, summary.q95) == pytest.approx(tuple(np.percentile(values, [5, 95])), rel=1e-12)
    with pytest.raises(ValueError, match="the number of draws must be at least 1, got 0"):
        null_percentile(0.0, torch.empty(0))


def test_fraction_null_percentile_is_centred_on_null_worlds() -> None:
    """On null worlds the observed fraction's percentile averages 50 and is rarely extreme."""
    gen, worlds = _gen(21), 120
    percentiles = []
    for _ in range(worlds):
        res = fraction_null(torch.randn(16, 30, generator=gen), _share_negative, n_perm=200, generator=gen)
        assert res.draws.shape == (200,)
        percentiles.append(res.percentile)
    share_low = float(np.mean(np.asarray(percentiles) <= 5.0))
    # a uniform percentile on [0, 100] has sd 100 / sqrt(12)
    assert abs(np.mean(percentiles) - 50.0) <= 3 * (100 / math.sqrt(12)) / math.sqrt(worlds)
    assert share_low <= 0.05 + _mc_bound(0.05, worlds)


def test_fraction_null_flags_a_planted_lean() -> None:
    """A planted negative (positive) lean puts the fraction at the top (bottom) of its null."""
    noise = torch.randn(20, 40, generator=_gen(3))
    negative = fraction_null(noise - 0.8, _share_negative, n_perm=500, generator=0)
    positive = fraction_null(noise + 0.8, _share_negative, n_perm=500, generator=0)
    assert negative.observed > 0.9
    assert negative.percentile > 99
    assert positive.observed < 0.1
    assert positive.percentile < 1
    # sign vectors come in +/- pairs in distribution, so the null share of negative means centres on 1/2
    assert abs(negative.null_mean - 0.5) < 0.03
    assert negative.null_q05 < 0.5 < negative.null_q95


def test_fraction_null_enumerates_small_designs_exactly() -> None:
    """Small designs use all 2**n sign vectors, the identity first."""
    diffs = torch.randn(4, 9, generator=_gen(6))
    res = fraction_null(diffs, _share_negative, n_perm=100)
    assert res.exact
    assert res.draws.shape == (16,)
    assert res.observed == float(res.draws[0])  # the all-plus sign vector comes first
    assert res.percentile == null_percentile(res.observed, res.draws)


def test_bootstrap_interval_covers_the_truth() -> None:
    """Over 200 worlds the 95% bootstrap interval covers the mean 95% +- 3 MC SE."""
    gen, worlds = _gen(13), 200
    covered = 0
    for _ in range(worlds):
        diffs = torch.randn(40, 3, generator=gen) + 0.3
        res = bootstrap_items(diffs, lambda means: means[:, 0], n_boot=300, generator=gen)
        covered += res.ci_low <= 0.3 <= res.ci_high
    assert abs(covered / worlds - 0.95) <= _mc_bound(0.95, worlds)


def test_bootstrap_items_estimates_and_respects_groups() -> None:
    """Estimates use (balanced) means and resampling never moves items across groups."""
    diffs = torch.randn(7, 2, generator=_gen(2), dtype=torch.float64)
    diffs[:, 1] = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0])  # indicator of group 0
    groups = [0, 0, 0, 0, 0, 1, 1]
    plain = bootstrap_items(diffs, lambda means: means[:, 0], n_boot=50)
    assert plain.estimate == pytest.approx(float(diffs[:, 0].mean()), rel=1e-12)
    balanced = bootstrap_items(diffs, lambda means: means[:, 0], n_boot=50, groups=groups)
    expected = (float(diffs[:5, 0].mean()) + float(diffs[5:, 0].mean())) / 2
    assert balanced.estimate == pytest.approx(expected, rel=1e-12)
    # within-group resampling keeps each group's weight at exactly 1/2
    share = bootstrap_items(diffs, lambda means: means[:, 1], n_boot=200, groups=groups)
    assert (share.ci_low, share.ci_high) == pytest.approx((0.5, 0.5), abs=1e-12)
    assert bootstrap_items(diffs, lambda means: means[:, 1], n_boot=200).ci_low < 0.5


def test_bootstrap_and_null_are_reproducible_from_a_seed() -> None:
    """Seeds reproduce draws whatever the chunk size; another seed differs."""
    diffs = torch.randn(10, 5, generator=_gen(4))
    first = bootstrap_items(diffs, _share_negative, n_boot=100, generator=3, chunk=7)
    assert first == bootstrap_items(diffs, _share_negative, n_boot=100, generator=3, chunk=100)
    null_a = fraction_null(diffs, _share_negative, n_perm=100, generator=3, chunk=9)
    null_b = fraction_null(diffs, _share_negative, n_perm=100, generator=_gen(3))
    assert torch.equal(null_a.draws, null_b.draws)
    assert not torch.equal(null_a.draws, fraction_null(diffs, _share_negative, n_perm=100, generator=4).draws)


def test_statistic_callbacks_are_checked() -> None:
    """A statistic that does not map [B, d] to [B] is refused, as are bad n and level."""
    diffs = torch.randn(6, 3)
    with pytest.raises(ValueError, match="statistic must map means"):
        fraction_null(diffs, lambda means: means, n_perm=10)
    with pytest.raises(ValueError, match="statistic must map means"):
        bootstrap_items(diffs, lambda means: means.sum(), n_boot=10)
    with pytest.raises(ValueError, match="n_items must be at least 2, got 1"):
        bootstrap_items(torch.randn(1, 3), _share_negative)
    with pytest.raises(ValueError, match="level must be in"):
        bootstrap_items(diffs, _share_negative, level=1.5)


def test_holm_steps_down_and_stops_at_the_first_failure() -> None:
    from sae_steer_checks.stats import holm

    # cut-offs 0.05/4, 0.05/3, 0.05/2, 0.05/1 against the sorted p-values
    p = torch.tensor([0.04, 0.001, 0.03, 0.012])
    assert holm(p, 0.05).tolist() == [False, True, False, True]  # 0.03 > 0.05 / 2 stops it
    assert holm(torch.tensor([0.011, 0.2]), 0.05).tolist() == [True, False]
    assert not holm(torch.tensor([0.03, 0.03]), 0.05).any()  # 0.03 > 0.025: nothing
    assert holm(torch.tensor([0.01, 0.04]), 0.05).all()
    with pytest.raises(ValueError, match="p must hold p-values"):
        holm(torch.tensor([1.5]), 0.05)
