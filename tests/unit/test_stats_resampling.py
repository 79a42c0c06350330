from __future__ import annotations

import math

import pytest
import torch

from sae_steer_checks.stats.resampling import basic_interval, percentile_interval, squared_norm_u


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
