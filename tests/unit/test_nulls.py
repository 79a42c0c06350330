"""Unit tests of the decomposition claim: null vectors, the gates, the gap's interval and the verdict."""

from __future__ import annotations

import math

import pytest
import torch

from sae_steer_checks.diagnostics.nulls import (
    ACCOUNTS,
    DecompositionNulls,
    decomposition_nulls,
    default_k,
    null_vectors,
)
from sae_steer_checks.diagnostics.resample import vector_draws
from sae_steer_checks.sae.protocol import encode_in_sae_space
from sae_steer_checks.synthetic import PlantedWorld, WorldConfig, build_world
from tests.helpers.hand_saes import make_sae, orthonormal_rows


def _sae() -> torch.nn.Module:
    return make_sae(orthonormal_rows(12, 16, seed=0), torch.zeros(12), architecture="relu")


def test_null_vectors_have_the_norm_and_the_span_they_should() -> None:
    sae = _sae()
    gen = torch.Generator().manual_seed(1)
    basis = orthonormal_rows(3, 16, seed=2)
    acts = 5.0 + torch.randn(40, 3, generator=gen) @ basis  # a constant offset the covariance ignores
    pos = torch.randn(10, 2, generator=gen) @ basis[:2]
    neg = torch.zeros(10, 16)
    out = null_vectors(sae, 2.5, activations=acts, pos=pos, neg=neg, n_null=8, generator=3)
    assert sorted(out) == ["covariance", "isotropic", "shuffled"]
    for x in out.values():
        assert x.shape == (8, 16)
        torch.testing.assert_close(x.norm(dim=1), torch.full((8,), 2.5), rtol=1e-5, atol=1e-5)
    # Covariance draws live in the span of the centred activations, shuffled CAA in that of the pairs.
    for family, span in (("covariance", basis), ("shuffled", basis[:2])):
        inside = out[family] @ span.T @ span
        torch.testing.assert_close(inside, out[family], rtol=1e-4, atol=1e-4)
    assert null_vectors(sae, 1.0)["isotropic"].shape == (39, 16)  # the default resolves alpha = 0.05
    with pytest.raises(ValueError, match="pos and neg must be given together"):
        null_vectors(sae, 1.0, pos=pos)


def test_item_ids_average_copies_before_shuffling() -> None:
    sae = _sae()
    basis = orthonormal_rows(2, 16, seed=4)
    pos = torch.stack([basis[0], basis[0], basis[1], basis[1]])
    ids = torch.tensor([0, 0, 1, 1])
    out = null_vectors(sae, 1.0, pos=pos, neg=torch.zeros(4, 16), item_ids=ids, n_null=16, generator=5)
    # One sign per item: every draw is (+-b0 +- b1) / 2 rescaled, so both coordinates have modulus 1/sqrt 2.
    coords = out["shuffled"] @ basis.T
    torch.testing.assert_close(coords.abs(), torch.full((16, 2), 1 / math.sqrt(2)), rtol=1e-5, atol=1e-5)


def test_default_k_is_where_the_gain_over_the_null_stops_growing() -> None:
    null = torch.linspace(0.1, 0.7, 20, dtype=torch.float64)
    curve = null.clone()
    curve[:6] += torch.tensor([0.05, 0.10, 0.15, 0.20, 0.25, 0.30], dtype=torch.float64)
    curve[6:] += 0.30
    assert default_k(curve, null) == 6
    assert default_k(null + torch.arange(20, dtype=torch.float64) * 0.01, null) == 20  # keeps growing
    assert default_k(null.clone(), null) == 1


def _nulls(
    signed: float,
    sae: float,
    draws: list[float],
    *,
    gap_draws: list[float] | None = None,
    signal_p_value: float | None = None,
    high_reported: bool = False,
) -> DecompositionNulls:
    t = torch.tensor(draws, dtype=torch.float64)
    null = {"isotropic": {"sae": t * 0, "sae_minus_zero": t * 0, "signed": t}}
    if high_reported:  # a reported family whose signed fits beat v's: it must not gate
        null["shuffled"] = {"sae": t * 0, "sae_minus_zero": t * 0, "signed": t * 0 + 0.99}
    return DecompositionNulls(
        norm=1.0,
        k_default=1,
        cosines={"sae": sae, "sae_minus_zero": sae, "signed": signed},
        null_cosines=null,
        curve=torch.zeros(5, dtype=torch.float64),
        null_curves={f: torch.zeros(len(draws), 5, dtype=torch.float64) for f in null},
        gap_draws=None if gap_draws is None else torch.tensor(gap_draws, dtype=torch.float64),
        k_sae=3,
        signal_p_value=signal_p_value,
    )


DRAWS = [0.5 + 0.001 * i for i in range(39)]


def test_verdict_gates_on_the_isotropic_null_and_the_signal_then_reads_the_gap() -> None:
    assert _nulls(0.9, 0.2, DRAWS).status == "problem"
    assert _nulls(0.9, 0.85, DRAWS).status == "fine"  # gap 0.05 at or below min_gap 0.1
    assert _nulls(0.52, 0.1, DRAWS).status == "inconclusive"  # inside the isotropic null
    # The shuffled family is reported beside the gate, never a gate itself.
    assert _nulls(0.9, 0.2, DRAWS, high_reported=True).status == "problem"
    # A v that label-shuffled noise matches in length is no signal: its gap says nothing.
    assert _nulls(0.9, 0.2, DRAWS, signal_p_value=0.3).status == "inconclusive"
    assert _nulls(0.9, 0.2, DRAWS, signal_p_value=0.001).status == "problem"
    figures = _nulls(0.9, 0.2, DRAWS, high_reported=True).verdict_figures()
    assert figures["p_values"] == {"isotropic": pytest.approx(1 / 40), "shuffled": 1.0}
    assert figures["gate_family"] == "isotropic"
    assert figures["gate_p_value"] == pytest.approx(1 / 40)
    assert figures["beats_null"]
    assert figures["gap"] == pytest.approx(0.7)
    assert figures["needed_gap"] == 0.1  # min_gap; the null's spread is reported, not required
    assert figures["spread"] > 0
    assert figures["k"] == 3
    assert figures["interval_method"] == "basic"
    assert figures["gap_interval"] is None


def test_the_gap_interval_is_the_basic_one_and_decides_the_verdict() -> None:
    # Draws centred above the gap: the basic interval reflects them below it, 2 gap - q.
    draws = [0.55 + 0.001 * i for i in range(101)]  # q025 = 0.5525, q975 = 0.6475
    result = _nulls(0.9, 0.4, DRAWS, gap_draws=draws)
    low, high = result.verdict_figures()["gap_interval"]
    assert low == pytest.approx(2 * 0.5 - 0.6475)
    assert high == pytest.approx(2 * 0.5 - 0.5525)
    assert result.status == "problem"
    straddling = [0.1 + 0.001 * i for i in range(101)]  # gap 0.1: interval 0.0525 .. 0.1475
    assert _nulls(0.5, 0.4, DRAWS, gap_draws=straddling).status == "inconclusive"
    below = [0.05 + 0.0001 * i for i in range(101)]
    assert _nulls(0.56, 0.5, DRAWS, gap_draws=below).status == "fine"


def _planted(
    config: WorldConfig, n_pairs: int, seed: int = 0
) -> tuple[PlantedWorld, torch.Tensor, DecompositionNulls]:
    world = build_world(config)
    pos, neg = world.sample_contrastive(n_pairs, torch.Generator().manual_seed(seed))
    acts = world.sample_activations(200, torch.Generator().manual_seed(seed + 1))
    diffs = pos - neg
    v = diffs.mean(0)
    boot = vector_draws(v, diffs, n_boot=100, generator=seed + 2).bootstrap
    result = decomposition_nulls(
        world.sae, v, activations=acts, pos=pos, neg=neg, bootstrap=boot, generator=seed + 3
    )
    return world, v, result


def test_a_signed_mix_of_many_decoder_rows_is_a_problem_at_sae_v_s_own_sparsity() -> None:
    # 40 behaviour rows, half written negatively: SAE(v) keeps the positive half and the bias features.
    config = WorldConfig(
        d_model=512, d_sae=2048, n_behaviour_features=40, n_active=16, n_aligned_pairs=0, seed=1
    )
    world, v, result = _planted(config, 400)
    l0 = int((encode_in_sae_space(world.sae, v[None])[0] > 0).sum())
    figures = result.verdict_figures()
    assert result.sae_l0 == l0
    assert figures["k"] == l0 > 20
    assert result.cosines["sae"] < 0.3
    assert result.cosines["signed"] == pytest.approx(float(result.curve[l0 - 1]))
    assert result.cosines["signed"] > 0.75
    assert figures["gate_p_value"] == pytest.approx(1 / 40)
    assert figures["signal_p_value"] == pytest.approx(1 / 1000)
    assert figures["gap_interval"][0] > 0.5
    assert result.status == "problem"
    summary = result.to_dict()
    assert summary["accounts"]["signed"]["k"] == l0
    assert summary["verdict_k"] == l0
    assert summary["verdict_gate_family"] == "isotropic"
    assert summary["n_null"] == {"isotropic": 39, "covariance": 39, "shuffled": 39}
    assert len(summary["curve"]["vector"]) == 64
    assert summary["k_default"] >= 1  # the elbow, for information


@pytest.mark.parametrize(
    ("n_bias", "magnitude"),
    [(0, 8.0), (3, 200.0)],  # no bias features; bias features dwarfed by a long v
)
def test_a_positive_mix_of_a_few_rows_that_sae_v_reconstructs_is_fine(n_bias: int, magnitude: float) -> None:
    config = WorldConfig(
        d_model=128,
        d_sae=256,
        n_behaviour_features=4,
        negative_fraction=0.0,
        n_bias_features=n_bias,
        behaviour_magnitude=magnitude,
        n_aligned_pairs=0,
        seed=5,
    )
    _, _, result = _planted(config, 24)
    figures = result.verdict_figures()
    assert figures["beats_null"]
    assert figures["gap_interval"][1] <= 0.1
    assert result.status == "fine"


def test_bootstrap_copies_the_given_k_and_the_k_max_cap() -> None:
    world = build_world(WorldConfig(d_model=96, d_sae=192, n_aligned_pairs=0, seed=3))
    pos, neg = world.sample_contrastive(30, torch.Generator().manual_seed(4))
    v = (pos - neg).mean(0)
    copies = decomposition_nulls(
        world.sae, v, pos=pos, neg=neg, k_max=24, generator=6, bootstrap=v.repeat(3, 1)
    )
    figures = copies.verdict_figures()
    assert figures["gap_interval"] == pytest.approx([figures["gap"], figures["gap"]], abs=1e-5)
    fixed = decomposition_nulls(world.sae, v, k_max=24, k_sae=5, generator=6)
    assert fixed.k == 5
    assert fixed.sae_l0 is None
    assert fixed.cosines["signed"] == pytest.approx(float(fixed.curve[4]))
    assert fixed.signal_p_value is None  # no pairs: v is taken as given
    assert decomposition_nulls(world.sae, v, k_max=4, generator=6).k == 4  # SAE(v)'s l0 capped
    assert set(ACCOUNTS) == set(copies.cosines)


def test_bad_arguments_are_rejected() -> None:
    sae = _sae()
    with pytest.raises(ValueError, match="v must have shape"):
        decomposition_nulls(sae, torch.zeros(5))
    with pytest.raises(ValueError, match="alpha must be in"):
        decomposition_nulls(sae, torch.ones(16), alpha=1.5)
    with pytest.raises(ValueError, match="n_null must be a positive integer"):
        decomposition_nulls(sae, torch.ones(16), n_null=0)
    with pytest.raises(ValueError, match=r"n_null=10 draws cannot give a Monte Carlo p-value <= alpha=0.05"):
        decomposition_nulls(sae, torch.ones(16), n_null=10)
    pos = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="use n_flips >= 19"):
        decomposition_nulls(sae, torch.ones(16), pos=pos, neg=-pos, n_flips=10)
    with pytest.raises(ValueError, match="level must be in"):
        decomposition_nulls(sae, torch.ones(16), level=1.0)
    with pytest.raises(ValueError, match="k_sae must be a positive integer"):
        decomposition_nulls(sae, torch.ones(16), k_sae=0)
