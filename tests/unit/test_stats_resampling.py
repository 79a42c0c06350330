"""stats.resampling: bootstraps over items, percentile and basic intervals, the unbiased squared norm."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from sae_steer_checks.stats import bootstrap_items
from sae_steer_checks.stats.resampling import basic_interval, percentile_interval, squared_norm_u

pytestmark = pytest.mark.usefixtures("one_thread")


def test_basic_interval_reflects_the_percentile_interval_about_the_estimate() -> None:
    draws = torch.linspace(0.0, 10.0, 1001, dtype=torch.float64)
    low, high = percentile_interval(draws, 0.9)
    b_low, b_high = basic_interval(4.0, draws, 0.9)
    assert b_low == pytest.approx(8.0 - high)
    assert b_high == pytest.approx(8.0 - low)


def test_basic_interval_is_clipped_to_the_figures_range() -> None:
    draws = torch.tensor([0.0, 0.0, 0.1, 0.9, 1.0], dtype=torch.float64)
    low, high = basic_interval(0.95, draws, 0.95, lower=0.0, upper=1.0)
    assert 0.0 <= low <= high <= 1.0


def test_squared_norm_u_matches_the_pairwise_definition() -> None:
    d = torch.randn(9, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    n = d.shape[0]
    pairwise = sum(float(d[i] @ d[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    u, se = squared_norm_u(d)
    assert u == pytest.approx(pairwise)
    assert se > 0


def test_squared_norm_u_is_unbiased_where_the_plain_norm_is_not() -> None:
    gen = torch.Generator().manual_seed(1)
    mu = torch.zeros(20, dtype=torch.float64)
    mu[0] = 0.5
    us, plain = [], []
    for _ in range(400):
        d = mu + torch.randn(12, 20, generator=gen, dtype=torch.float64)
        us.append(squared_norm_u(d)[0])
        plain.append(float(d.mean(0).norm() ** 2))
    truth = float(mu @ mu)
    se = torch.tensor(us).std().item() / math.sqrt(len(us))
    assert abs(sum(us) / len(us) - truth) < 3 * se
    assert sum(plain) / len(plain) > truth + 1.0  # E ||mean||^2 = ||mu||^2 + 20 / 12


def test_squared_norm_u_needs_three_items() -> None:
    with pytest.raises(ValueError, match="n_items >= 3"):
        squared_norm_u(torch.zeros(2, 4))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mc_bound(rate: float, n: int) -> float:
    """Three Monte-Carlo standard errors of a proportion ``rate`` estimated from ``n`` draws."""
    return 3 * math.sqrt(rate * (1 - rate) / n)


def _share_negative(means: Tensor) -> Tensor:
    return (means < 0).double().mean(1)


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


def test_bootstrap_is_reproducible_from_a_seed() -> None:
    """Seeds reproduce draws whatever the chunk size."""
    diffs = torch.randn(10, 5, generator=_gen(4))
    first = bootstrap_items(diffs, _share_negative, n_boot=100, generator=3, chunk=7)
    assert first == bootstrap_items(diffs, _share_negative, n_boot=100, generator=3, chunk=100)


def test_statistic_callbacks_are_checked() -> None:
    """A statistic that does not map [B, d] to [B] is refused, as are bad n and level."""
    diffs = torch.randn(6, 3)
    with pytest.raises(ValueError, match="statistic must map means"):
        bootstrap_items(diffs, lambda means: means.sum(), n_boot=10)
    with pytest.raises(ValueError, match="n_items must be at least 2, got 1"):
        bootstrap_items(torch.randn(1, 3), _share_negative)
    with pytest.raises(ValueError, match="level must be in"):
        bootstrap_items(diffs, _share_negative, level=1.5)
