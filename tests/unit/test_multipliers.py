"""Default multipliers: ``|m| * ||v||`` at fixed fractions of the median activation norm."""

from __future__ import annotations

import pytest
import torch

from sae_steer_checks.steering.multipliers import DEFAULT_FRACTIONS, default_multipliers


def test_default_multipliers_reach_half_the_median_norm() -> None:
    acts = torch.tensor([[3.0, 4.0], [6.0, 8.0], [30.0, 40.0]])  # norms 5, 10, 50: median 10
    v = torch.tensor([0.0, 2.0])
    ms = default_multipliers(v, acts)
    assert len(ms) == len(DEFAULT_FRACTIONS) == 5
    assert [m * 2.0 for m in ms] == pytest.approx([-5.0, -2.5, 0.0, 2.5, 5.0])


def test_multipliers_scale_inversely_with_the_vector_and_with_the_activations() -> None:
    gen = torch.Generator().manual_seed(0)
    acts, v = torch.randn(9, 4, generator=gen), torch.randn(4, generator=gen)
    base = default_multipliers(v, acts, (-1.0, 0.5))
    assert default_multipliers(3 * v, acts, (-1.0, 0.5)) == pytest.approx([m / 3 for m in base])
    assert default_multipliers(v, 2 * acts, (-1.0, 0.5)) == pytest.approx([m * 2 for m in base])
    # the sign of the vector does not change the multipliers; their product with it flips
    assert default_multipliers(-v, acts, (-1.0, 0.5)) == pytest.approx(base)


def test_a_zero_vector_or_zero_activations_fall_back_to_plain_caa() -> None:
    assert default_multipliers(torch.zeros(3), torch.ones(4, 3)) == (-1.0, 0.0, 1.0)
    assert default_multipliers(torch.ones(3), torch.zeros(4, 3)) == (-1.0, 0.0, 1.0)


@pytest.mark.parametrize(
    ("vector", "activations", "message"),
    [
        (torch.ones(2, 3), torch.ones(4, 3), r"vector must be \[d\]"),
        (torch.ones(3), torch.ones(4, 2), r"activations must be a non-empty \[n, 3\]"),
        (torch.ones(3), torch.ones(0, 3), r"activations must be a non-empty \[n, 3\]"),
    ],
)
def test_bad_shapes_name_the_argument(vector: torch.Tensor, activations: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        default_multipliers(vector, activations)
