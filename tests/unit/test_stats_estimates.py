"""stats.estimates: slopes, item means over copies, group-balanced slope summaries, t quantiles, ranks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy import stats as scipy_stats

from sae_steer_checks.stats import (
    cluster_mean,
    fit_slope,
    item_slopes_summary,
    null_percentile,
    summarize_null,
    t_quantile,
)

SEEDS = st.integers(0, 2**31 - 1)


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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
