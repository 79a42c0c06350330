"""Unit tests of the chunked negatively-aligned pair search and the spurious-projection check."""

from __future__ import annotations

import math

import pytest
import torch

from sae_steer_checks.diagnostics.pairs import find_aligned_pairs, spurious_check
from tests.helpers.hand_saes import orthonormal_rows, random_unit_rows
from tests.helpers.reference_impl import pairs_loop


@pytest.mark.parametrize("block_size", [1, 3, 7, 64, 4096])
def test_block_search_matches_double_loop(block_size: int) -> None:
    W = random_unit_rows(40, 6, seed=0) * torch.linspace(0.5, 2.0, 40)[:, None]
    found = find_aligned_pairs(W, -0.6, block_size=block_size)
    ref = pairs_loop(W.numpy(), -0.6)
    assert [(i, j) for i, j, _ in found.pairs] == [(i, j) for i, j, _ in ref]
    for (_, _, c), (_, _, r) in zip(found.pairs, ref, strict=True):
        assert c == pytest.approx(r, abs=1e-6)
    assert len(ref) > 0


def test_live_and_dead_pairs_are_told_apart() -> None:
    B = orthonormal_rows(4, 8, seed=1)
    rho = 0.8
    W = torch.stack([B[0], -rho * B[0] + math.sqrt(1 - rho**2) * B[1], B[2], -B[2], B[3]])
    live = torch.tensor([True, True, False, False, True])
    found = find_aligned_pairs(W, -0.5, live=live)
    assert found.pairs[0][:2] == (2, 3)
    assert found.pairs[1][:2] == (0, 1)
    assert found.pairs[1][2] == pytest.approx(-rho, abs=1e-6)
    summary = found.to_dict()
    assert (summary["n_live"], summary["n_dead"], summary["n_mixed"]) == (1, 1, 0)
    assert found.status() == ["dead", "live"]


def test_zero_rows_and_bad_inputs() -> None:
    W = torch.zeros(3, 4)
    W[0, 0], W[1, 0] = 1.0, -1.0
    assert [p[:2] for p in find_aligned_pairs(W, -0.5).pairs] == [(0, 1)]
    with pytest.raises(ValueError, match="threshold must be a cosine"):
        find_aligned_pairs(W, -1.5)
    with pytest.raises(ValueError, match="W_dec must be finite"):
        find_aligned_pairs(torch.full((2, 2), float("nan")))
    with pytest.raises(ValueError, match="live must be a bool tensor"):
        find_aligned_pairs(W, live=torch.ones(2, dtype=torch.bool))


def test_bfloat16_decoder_is_searched_in_float32() -> None:
    W = random_unit_rows(30, 5, seed=2)
    a = find_aligned_pairs(W.to(torch.bfloat16), -0.7)
    ref = pairs_loop(W.to(torch.bfloat16).float().numpy(), -0.7)
    assert [p[:2] for p in a.pairs] == [r[:2] for r in ref]


def _pair_setup() -> tuple[torch.Tensor, torch.Tensor]:
    B = orthonormal_rows(4, 8, seed=5)
    rho = 0.82
    W = torch.stack([B[0], -rho * B[0] + math.sqrt(1 - rho**2) * B[1], B[2], B[3]])
    return W, B


def test_negative_projection_explains_partner_positive() -> None:
    W, _ = _pair_setup()
    v = -3.0 * W[0]
    f_v = torch.relu(v @ W.T)  # ReLU SAE with tied encoder and zero biases
    f_0 = torch.tensor([0.0, 0.0, 0.0, 5.0])
    f_v[3] = 5.0  # on from the bias alone
    rate = torch.tensor([0.5, 0.0, 0.0, 0.0])
    negative = torch.tensor([True, False, False, False])
    result = spurious_check(W, W.T, v, f_v, f_0, rate, negative=negative, threshold=-0.5)
    assert [(s.feature, s.explained_by) for s in result.spurious] == [(1, 0)]
    assert result.spurious[0].cosine == pytest.approx(-0.82, abs=1e-5)
    assert result.spurious[0].partner_projection == pytest.approx(-3.0, abs=1e-5)
    assert result.bias_explained == (3,)
    assert result.unexplained == ()


def test_sign_conflicts_list_positive_values_against_the_vector() -> None:
    W, _ = _pair_setup()
    v = -2.0 * W[2] + 1.0 * W[3]
    f_v = torch.tensor([0.0, 0.0, 4.0, 1.0])  # feature 2 positive although v points against it
    signed = torch.tensor([0.0, 0.0, -2.0, 1.0])
    result = spurious_check(W, W.T, v, f_v, torch.zeros(4), torch.ones(4), signed_coefficients=signed)
    assert [c.feature for c in result.sign_conflicts] == [2]
    assert result.sign_conflicts[0].projection == pytest.approx(-2.0, abs=1e-5)
    assert result.sign_conflicts[0].signed_coefficient == -2.0


def test_positive_threshold_never_pairs_zero_rows() -> None:
    W = random_unit_rows(12, 5, seed=7)
    W[[2, 9]] = 0.0
    for block_size in (1, 4, 64):
        found = find_aligned_pairs(W, 0.3, block_size=block_size)
        ref = [(i, j) for i, j, _ in pairs_loop(W.numpy(), 0.3) if i not in (2, 9) and j not in (2, 9)]
        assert [(i, j) for i, j, _ in found.pairs] == ref
        assert not {2, 9} & {i for p in found.pairs for i in p[:2]}
    assert len(ref) > 0
    # With a threshold at or below 0 a zero row (cosine 0) was never below it in the first place.
    assert len(find_aligned_pairs(W, 0.0)) == len(
        [p for p in pairs_loop(W.numpy(), 0.0) if p[0] not in (2, 9) and p[1] not in (2, 9)]
    )


def test_spurious_names_stay_importable_from_pairs() -> None:
    from sae_steer_checks.diagnostics import pairs, spurious

    assert pairs.spurious_check is spurious.spurious_check
    assert pairs.SpuriousCheck is spurious.SpuriousCheck


def test_null_expected_pairs_matches_random_unit_directions() -> None:
    gen = torch.Generator().manual_seed(0)
    counts = []
    for _ in range(20):
        g = torch.randn(192, 64, generator=gen, dtype=torch.float64)
        g = g / g.norm(dim=1, keepdim=True)
        counts.append(int((torch.triu(g @ g.T, 1) < -0.1).sum()))
    found = find_aligned_pairs(g.float(), -0.1)
    expected = found.null_expected_pairs()
    assert expected is not None
    # the analytic count agrees with simulated random directions within 3 standard errors
    mean = sum(counts) / len(counts)
    sd = (sum((c - mean) ** 2 for c in counts) / (len(counts) - 1)) ** 0.5
    assert abs(mean - expected) < 3 * sd / len(counts) ** 0.5 + 1.0
    assert found.to_dict()["null_expected_pairs"] == expected
    assert find_aligned_pairs(g.float(), 0.1).null_expected_pairs() is None
