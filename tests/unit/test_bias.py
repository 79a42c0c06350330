"""Unit tests of encoder-bias dominance on hand-set sae-lens SAEs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from sae_steer_checks.diagnostics.bias import BiasCheck, bias_check, bottom_features, jaccard, top_features
from sae_steer_checks.diagnostics.resample import encode_draws, vector_draws
from sae_steer_checks.diagnostics.space import encode_sample, sae_space
from sae_steer_checks.stats import NullSummary as Draws
from tests.helpers.hand_saes import make_sae, orthonormal_rows
from tests.helpers.reference_impl import jaccard_loop


def _gemma_like() -> tuple[torch.nn.Module, torch.Tensor]:
    W = orthonormal_rows(6, 8, seed=0)
    b_enc = torch.tensor([86.2, 30.0, -1.0, -1.0, -1.0, -1.0])
    return make_sae(W, b_enc, architecture="jumprelu", threshold=0.5), W


def test_small_vector_keeps_the_zero_vector_top_features() -> None:
    sae, W = _gemma_like()
    v = 0.1 * W[0] + 0.2 * W[1] + 3.0 * W[4]
    result = bias_check(sae, v, top_k=2)
    assert [i for i, _ in result.own.top_vector] == [0, 1]
    assert [i for i, _ in result.own.top_zero] == [0, 1]
    assert result.own.overlap == 1.0
    assert result.own.top_vector[0][1] == pytest.approx(86.3, abs=1e-4)
    # Only feature 4 (value ~2.0) is new; the rest of the mass is already in SAE(0).
    assert result.own.mass_in_zero == pytest.approx(116.2 / (86.3 + 30.2 + 2.0), abs=1e-4)
    assert not result.own.same_support
    assert result.own.subtract_b_dec is False
    assert result.other.subtract_b_dec is True


def test_other_convention_shifts_by_b_dec() -> None:
    W = torch.eye(6)[:4]  # exact basis rows, so "nothing fires" is exact
    b_dec = 5.0 * W[2]
    sae = make_sae(W, torch.zeros(4), architecture="relu", b_dec=b_dec)
    result = bias_check(sae, torch.zeros(6))
    # The SAE subtracts b_dec: SAE(0) fires nothing (pre = -5 on feature 2); without subtracting, 0.
    assert result.own.subtract_b_dec is True
    assert result.own.top_zero == ()
    assert result.other.top_zero == ()
    sae_jump = make_sae(W, torch.zeros(4), architecture="jumprelu", b_dec=-b_dec)
    other = bias_check(sae_jump, torch.zeros(6)).other
    assert other.subtract_b_dec is True
    assert [i for i, _ in other.top_zero] == [2]
    assert other.top_zero[0][1] == pytest.approx(5.0, abs=1e-5)


def test_delta_view_recovers_the_vector_on_real_activations() -> None:
    W = orthonormal_rows(4, 8, seed=2)
    sae = make_sae(W, torch.tensor([50.0, 0.0, 0.0, 0.0]), architecture="relu", apply_b_dec_to_input=False)
    acts = 10.0 * W[1] + 10.0 * W[2] - 60.0 * W[0]
    acts = acts.expand(5, 8).clone()
    v = 2.0 * W[3] - 1.0 * W[1]
    result = bias_check(sae, v, acts, top_k=3)
    assert result.delta_mean is not None
    assert result.delta_mean[3] == pytest.approx(2.0, abs=1e-4)
    assert result.delta_mean[1] == pytest.approx(-1.0, abs=1e-4)
    assert result.delta_mean[0] == pytest.approx(0.0, abs=1e-5)
    assert [i for i, _ in (result.delta_top or ())] == [3]
    # Mechanism 2 shows up as a decrease: the delta view lists it too.
    assert result.delta_bottom is not None
    assert result.delta_bottom[0][0] == 1  # (feature 2 may follow with a float32 rounding-level change)
    assert result.to_dict()["delta_bottom_features"][0]["value"] == pytest.approx(-1.0, abs=1e-4)


def test_bottom_features_and_the_changes_of_sae_v_against_sae_0() -> None:
    values = torch.tensor([-1.0, -3.0, -3.0, 0.0, 2.0])
    assert bottom_features(values, 4) == ((1, -3.0), (2, -3.0), (0, -1.0))
    sae, W = _gemma_like()
    # v lowers feature 1 (on at 30 in SAE(0)) and raises feature 4.
    result = bias_check(sae, -5.0 * W[1] + 3.0 * W[4], top_k=2)
    assert [i for i, _ in result.own.decreases] == [1]
    assert result.own.decreases[0][1] == pytest.approx(-5.0, abs=1e-4)
    assert [i for i, _ in result.own.increases] == [4]
    summary = result.to_dict()
    assert [e["feature"] for e in summary["top_decreases"]] == [1]
    assert [e["feature"] for e in summary["top_increases"]] == [4]


def test_top_features_breaks_ties_by_id_and_skips_zeros() -> None:
    values = torch.tensor([1.0, 3.0, 3.0, 0.0, -1.0])
    assert top_features(values, 4) == ((1, 3.0), (2, 3.0), (0, 1.0))


@pytest.mark.parametrize(("a", "b"), [([], []), ([1, 2], [2, 3]), ([5], [6]), ([1, 2, 3], [3, 2, 1])])
def test_jaccard_matches_loop(a: list[int], b: list[int]) -> None:
    assert jaccard(set(a), set(b)) == jaccard_loop(a, b)


def test_wrong_width_vector_is_rejected() -> None:
    sae, _ = _gemma_like()
    with pytest.raises(ValueError, match="vector must have shape \\[8\\]"):
        bias_check(sae, torch.zeros(7))
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        bias_check(sae, torch.zeros(8), top_k=0)


def test_ordinary_activations_give_the_in_distribution_reference() -> None:
    sae, W = _gemma_like()
    # large in-distribution activations: their codes are mostly their own features, not the bias
    acts = torch.stack([200.0 * W[2] + 150.0 * W[3], 180.0 * W[4] + 220.0 * W[5], 300.0 * W[2]])
    v = 0.1 * W[0] + 3.0 * W[4]
    result = bias_check(sae, v, acts)
    assert result.mass_reference is not None
    assert result.mass_reference.n == 3
    # each code keeps features 0 and 1 at their bias values (86.2 + 30.0) beside its own (b_enc -1 each)
    shares = [116.2 / (116.2 + 199.0 + 149.0), 116.2 / (116.2 + 179.0 + 219.0), 116.2 / (116.2 + 299.0)]
    assert result.mass_reference.mean == pytest.approx(sum(shares) / 3, abs=1e-4)
    assert result.mass_reference.percentile == 100.0  # v's share (~0.97) is above every one
    assert result.to_dict()["mass_reference"]["n"] == 3
    assert bias_check(sae, v).mass_reference is None


def bias_with(mass: float, *, reference_q95: float | None) -> BiasCheck:
    """A finished check whose SAE(v) has ``mass`` of its mass in SAE(0), beside a reference of that q95."""
    sae, W = _gemma_like()
    check = bias_check(sae, 0.1 * W[0] + 3.0 * W[4])
    reference = None if reference_q95 is None else Draws(0.3, 0.1, 0.1, reference_q95, 100, 99.0)
    return replace(check, own=replace(check.own, mass_in_zero=mass), mass_reference=reference)


@pytest.mark.parametrize(
    ("mass", "q95", "status"),
    [(0.7, 0.55, "problem"), (0.3, 0.55, "fine"), (0.52, 0.55, "fine"), (0.9, 0.95, "fine"),
     (0.9, 0.2, "problem"), (0.9, None, "inconclusive")],
)  # fmt: skip
def test_the_verdict_reads_the_given_vectors_share_against_half_and_the_reference(
    mass: float, q95: float | None, status: str
) -> None:
    # (0.9, 0.95): no problem where ordinary activations lean on the bias as much
    check = bias_with(mass, reference_q95=q95)
    assert check.status == status
    assert check.mass_bound == max(0.5, q95 or 0.0)
    entry = check.to_dict()
    assert (entry["verdict"], entry["reason"]) == (status, check.reason)
    assert entry["mass_bound"] == check.mass_bound


def test_one_call_gives_the_interval_the_null_and_the_reference() -> None:
    sae, W = _gemma_like()
    acts = torch.stack([200.0 * W[2] + 150.0 * W[3], 180.0 * W[4] + 220.0 * W[5], 300.0 * W[2]])
    v = 0.1 * W[0] + 3.0 * W[4]
    gen = torch.Generator().manual_seed(0)
    diffs = v + 0.5 * torch.randn(12, 8, generator=gen, dtype=torch.float64)
    draws = vector_draws(v, diffs, n_boot=30, n_shuffled=19, generator=1)
    check = bias_check(sae, v, acts, draws=draws)
    assert check.mass_interval is not None
    assert check.mass_null is not None
    assert check.mass_null.n == 19
    assert check.mass_reference is not None
    assert check.mass_reference.n == 3
    assert 0.0 <= check.mass_interval[0] <= check.mass_interval[1] <= 1.0
    # the same draws encoded once by the caller give the same check
    space = sae_space(sae, acts)
    again = bias_check(space, v, encode_sample(space, acts), draws=encode_draws(space, draws))
    assert again.to_dict() == check.to_dict()
    assert check.status == "problem"  # SAE(v) is mostly SAE(0), unlike the ordinary activations' codes
