"""stats.gate: random-direction nulls of a steering slope and the Monte Carlo gate that reads them."""

from __future__ import annotations

import pytest
import torch

from sae_steer_checks.stats import (
    SlopeEstimate,
    beats_null,
    random_directions,
    steering_null,
    steering_p_value,
)

D = 16


pytestmark = pytest.mark.usefixtures("one_thread")


def test_random_directions_have_the_norm_and_the_covariance_shape() -> None:
    v = torch.randn(D, generator=torch.Generator().manual_seed(2))
    acts = torch.randn(4000, D, generator=torch.Generator().manual_seed(3)) * torch.linspace(0.01, 3.0, D)
    dirs, _ = random_directions(v, 200, activations=acts, generator=4)
    assert dirs.shape == (400, D)
    torch.testing.assert_close(dirs.norm(dim=1), v.norm().expand(400), rtol=1e-5, atol=1e-5)
    iso, cov = dirs[:200].pow(2).mean(0), dirs[200:].pow(2).mean(0)
    # the covariance draws put their energy where the activations vary most
    assert float(cov[-1] / cov[0]) > 100 > float(iso[-1] / iso[0])
    again, _ = random_directions(v, 200, activations=acts, generator=4)
    assert torch.equal(dirs, again)
    with pytest.raises(ValueError, match="activations must be"):
        random_directions(v, 2, activations=acts[:, :3])


def test_the_gate_is_a_monte_carlo_p_value() -> None:
    null_slopes = [0.1 * k for k in range(1, 40)]  # 39 random |slope| up to 3.9
    kinds = ["isotropic"] * 39
    sure = SlopeEstimate(4.0, 0.5, 20, 1, 19, 3.0, 5.0, 0.95)
    null = steering_null(4.0, null_slopes, kinds)
    assert null.p_value == pytest.approx(1 / 40)
    assert null.to_dict()["p_value"] == null.p_value
    assert beats_null(4.0, sure, null)
    # tied with the largest random |slope| counts as "as extreme"
    assert steering_p_value(3.9, null_slopes) == pytest.approx(2 / 40)
    assert steering_p_value(-3.85, null_slopes) == pytest.approx(2 / 40)
    assert beats_null(3.9, sure, null)  # 2/40 = 0.05 <= 0.05
    assert not beats_null(3.9, sure, null, alpha=0.04)
    assert not beats_null(3.8, sure, null)  # 3/40
    # above all 8 draws is p = 1/9: the old "above the 95th percentile of 8" passed, this cannot
    few = steering_null(4.0, null_slopes[:8], kinds[:8])
    assert few.p_value == pytest.approx(1 / 9)
    assert not beats_null(4.0, sure, few)
    # the t interval must also exclude 0
    unsure = SlopeEstimate(4.0, 3.0, 20, 1, 19, -2.0, 10.0, 0.95)
    assert not beats_null(4.0, unsure, null)
    assert not beats_null(4.0, None, null)
