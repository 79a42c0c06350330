"""Unit tests of the norm check."""

from __future__ import annotations

import math

import pytest
import torch

from sae_steer_checks.diagnostics.norms import NormCheck, norm_check
from sae_steer_checks.stats.resampling import squared_norm_u
from tests.helpers.reference_impl import percentile_loop


def test_known_norms_give_ratio_and_percentile() -> None:
    acts = torch.zeros(4, 3)
    acts[:, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    result = norm_check(torch.tensor([2.0, 0.0, 0.0]), acts)
    assert result.steering_norm == 2.0
    assert result.activation_norm_median == 2.5
    assert result.ratio == pytest.approx(0.8)
    assert result.percentile == pytest.approx(37.5)  # one below, one tie counted half
    assert result.quantiles[0.5] == pytest.approx(2.5)


def test_percentile_matches_loop_reference() -> None:
    gen = torch.Generator().manual_seed(3)
    acts = torch.randn(257, 16, generator=gen) * 5
    v = torch.randn(16, generator=gen) * 4
    result = norm_check(v, acts)
    norms = acts.double().norm(dim=1).tolist()
    assert result.percentile == pytest.approx(percentile_loop(float(v.double().norm()), norms))


def test_zero_vector_is_valid() -> None:
    result = norm_check(torch.zeros(8), torch.ones(5, 8))
    assert result.steering_norm == 0.0
    assert result.ratio == 0.0
    assert result.percentile == 0.0


def test_low_precision_input_is_computed_in_float32() -> None:
    acts = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))
    v = acts[0] * 0.1
    full = norm_check(v, acts)
    half = norm_check(v.to(torch.bfloat16), acts.to(torch.bfloat16))
    assert half.ratio == pytest.approx(full.ratio, rel=2e-2)


@pytest.mark.parametrize(
    ("vector", "acts", "match"),
    [
        (torch.zeros(4), torch.zeros(3, 5), "vector must have shape"),
        (torch.zeros(4), torch.zeros(0, 4), "at least 1 row"),
        (torch.tensor([float("nan"), 0, 0, 0]), torch.ones(3, 4), "vector must be finite"),
        (torch.zeros(4), torch.full((3, 4), float("inf")), "activations must be finite"),
    ],
)
def test_bad_input_names_the_argument(vector: torch.Tensor, acts: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        norm_check(vector, acts)


def test_items_give_the_population_norm_and_its_interval() -> None:
    gen = torch.Generator().manual_seed(4)
    acts = 10.0 * torch.randn(300, 6, generator=gen)
    mu = torch.tensor([3.0, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    items = mu + torch.randn(40, 6, generator=gen, dtype=torch.float64)
    result = norm_check(items.mean(0), acts, items=items)
    u, se = squared_norm_u(items)
    assert result.population_norm == pytest.approx(math.sqrt(u))
    assert result.interval is not None
    assert result.interval[0] == pytest.approx(math.sqrt(max(u - 1.959963984540054 * se, 0.0)))
    assert result.interval[0] < 3.0 < result.interval[1]
    assert result.percentile_interval is not None
    # two items are too few for the U-statistic's jackknife: no interval, no verdict
    assert norm_check(items.mean(0), acts, items=items[:2]).interval is None
    assert norm_check(items.mean(0), acts, items=items[:2]).status == "inconclusive"
    with pytest.raises(ValueError, match="items must have shape"):
        norm_check(items.mean(0), acts, items=items[:, :5])


@pytest.mark.parametrize(
    ("norm", "interval", "status"),
    [(12.5, (10.0, 12.0), "problem"), (12.5, (100.0, 119.0), "problem"),
     (12.5, (100.0, 130.0), "inconclusive"), (150.0, (120.0, 300.0), "fine"),
     (130.0, (10.0, 119.0), "inconclusive"), (120.0, (120.0, 130.0), "fine"), (12.5, None, "inconclusive")],
)  # fmt: skip
def test_the_verdict_needs_the_vector_and_the_population_norm_below_the_bound(
    norm: float, interval: tuple[float, float] | None, status: str
) -> None:
    check = NormCheck(
        steering_norm=norm, activation_norm_median=150.0, n_activations=10, interval=interval, bound=120.0
    )
    assert check.status == status
    if interval is None:
        assert check.verdict_interval is None
    else:
        assert check.verdict_interval == (min(norm, interval[0]), max(norm, interval[1]))
    entry = check.to_dict()
    assert (entry["verdict"], entry["reason"]) == (status, check.reason)
