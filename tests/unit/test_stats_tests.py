"""stats.tests: sign-flip tests, whole-matrix nulls of a fraction, Benjamini-Hochberg/Yekutieli and Holm."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy import stats as scipy_stats
from torch import Tensor

from sae_steer_checks.stats import (
    benjamini_hochberg,
    fraction_null,
    null_percentile,
    sign_flip_test,
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


def test_fraction_null_is_reproducible_from_a_seed() -> None:
    """Seeds reproduce draws whatever the chunk size; another seed differs."""
    diffs = torch.randn(10, 5, generator=_gen(4))
    null_a = fraction_null(diffs, _share_negative, n_perm=100, generator=3, chunk=9)
    null_b = fraction_null(diffs, _share_negative, n_perm=100, generator=_gen(3))
    assert torch.equal(null_a.draws, null_b.draws)
    assert not torch.equal(null_a.draws, fraction_null(diffs, _share_negative, n_perm=100, generator=4).draws)


def test_fraction_null_checks_its_statistic() -> None:
    """A statistic that does not map [B, d] to [B] is refused."""
    diffs = torch.randn(6, 3)
    with pytest.raises(ValueError, match="statistic must map means"):
        fraction_null(diffs, lambda means: means, n_perm=10)


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
