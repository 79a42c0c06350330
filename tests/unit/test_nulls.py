"""Unit tests of the decomposition nulls: null vectors, the default k and the verdict."""

from __future__ import annotations

import math

import pytest
import torch

from sae_steer_checks.diagnostics.nulls import (
    DecompositionNulls,
    decomposition_nulls,
    default_k,
    null_vectors,
)
from sae_steer_checks.synthetic import WorldConfig, build_world
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
    assert sorted(null_vectors(sae, 1.0, n_null=2)) == ["isotropic"]
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


def _nulls(signed: float, sae: float, draws: list[float]) -> DecompositionNulls:
    t = torch.tensor(draws, dtype=torch.float64)
    return DecompositionNulls(
        norm=1.0,
        k_default=3,
        cosines={"sae": sae, "sae_minus_zero": sae, "signed": signed},
        null_cosines={"isotropic": {"sae": t * 0, "sae_minus_zero": t * 0, "signed": t}},
        curve=torch.zeros(5, dtype=torch.float64),
        null_curves={"isotropic": torch.zeros(len(draws), 5, dtype=torch.float64)},
    )


def test_verdict_needs_the_signed_fit_to_beat_its_null_and_a_gap_beyond_its_spread() -> None:
    draws = [0.5 + 0.001 * i for i in range(32)]
    assert _nulls(0.9, 0.2, draws).verdict() == "problem"
    assert _nulls(0.9, 0.85, draws).verdict() == "fine"  # gap 0.05 below min_gap 0.1
    assert _nulls(0.52, 0.1, draws).verdict() == "inconclusive"  # inside the null
    figures = _nulls(0.9, 0.2, draws).verdict_figures()
    assert figures["p_values"]["isotropic"] == pytest.approx(1 / 33)
    assert figures["gap"] == pytest.approx(0.7)
    # A wide null spread raises the gap a problem needs.
    wide = [0.1 + 0.025 * i for i in range(32)]
    assert _nulls(0.95, 0.4, wide).verdict_figures()["needed_gap"] > 0.1


def test_planted_world_signed_fit_beats_its_nulls_where_sae_v_does_not() -> None:
    world = build_world(WorldConfig(d_model=96, d_sae=192, n_aligned_pairs=0, seed=3))
    pos, neg = world.sample_contrastive(30, torch.Generator().manual_seed(4))
    acts = world.sample_activations(80, torch.Generator().manual_seed(5))
    v = (pos - neg).mean(0)
    result = decomposition_nulls(world.sae, v, activations=acts, pos=pos, neg=neg, k_max=24, generator=6)
    summary = result.to_dict()
    assert summary["families"] == ["isotropic", "covariance", "shuffled"]
    assert summary["n_null"] == {"isotropic": 32, "covariance": 32, "shuffled": 32}
    assert len(summary["curve"]["vector"]) == 24
    assert len(summary["curve"]["null"]["shuffled"]["q95"]) == 24
    # v is 8 orthonormal behaviour rows plus noise: the signed fit finds them within about 8 atoms.
    assert 6 <= result.k_default <= 16
    assert result.cosines["signed"] > 0.95
    assert summary["verdict_beats_null"]
    assert result.verdict() == "problem"
    assert summary["accounts"]["signed"]["k"] == result.k_default
    # The bias-free account drops the bias features SAE(0) already fires.
    assert result.cosines["sae_minus_zero"] >= result.cosines["sae"] - 1e-6
    assert summary["verdict_gap_interval"] is None  # no bootstrap draws given
    # Bootstrap draws decomposed in the same run give the gap's interval; copies of v give v's gap.
    copies = decomposition_nulls(
        world.sae, v, activations=acts, pos=pos, neg=neg, k_max=24, generator=6, bootstrap=v.repeat(3, 1)
    ).verdict_figures()
    assert copies["gap_interval"] == pytest.approx([copies["gap"], copies["gap"]], abs=1e-5)
    draws = torch.stack([(pos[i] - neg[i]).mean(0) for i in torch.randint(0, 30, (40, 30))])
    boot = decomposition_nulls(
        world.sae, v, activations=acts, pos=pos, neg=neg, k_max=24, generator=6, bootstrap=draws
    )
    low, high = boot.verdict_figures()["gap_interval"]
    assert low < high
    assert boot.verdict() in ("problem", "inconclusive")
    assert (boot.verdict() == "problem") == (low > boot.verdict_figures()["needed_gap"])


def test_bad_arguments_are_rejected() -> None:
    sae = _sae()
    with pytest.raises(ValueError, match="v must have shape"):
        decomposition_nulls(sae, torch.zeros(5))
    with pytest.raises(ValueError, match="alpha must be in"):
        decomposition_nulls(sae, torch.ones(16), alpha=1.5)
    with pytest.raises(ValueError, match="n_null must be a positive integer"):
        decomposition_nulls(sae, torch.ones(16), n_null=0)
