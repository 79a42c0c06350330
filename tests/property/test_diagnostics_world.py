"""Recovery of the planted answers and agreement with the loop reference (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_steer_checks.check import CheckConfig, run_checks
from sae_steer_checks.leaning import leaning_from_acts
from sae_steer_checks.pairs import find_aligned_pairs
from sae_steer_checks.synthetic import WorldConfig, build_world
from tests.reference_impl import bh_loop, pairs_loop, percentile_loop, ttest_loop

seeds = st.integers(0, 2**31 - 1)


@st.composite
def worlds(draw: st.DrawFn) -> WorldConfig:
    n_behaviour = draw(st.integers(4, 8))
    fraction = draw(st.sampled_from([0.25, 0.5, 0.75]))
    return WorldConfig(
        d_model=draw(st.integers(64, 96)),
        d_sae=draw(st.integers(160, 256)),
        architecture=draw(st.sampled_from(["jumprelu", "relu", "topk"])),
        n_behaviour_features=n_behaviour,
        negative_fraction=fraction,
        n_aligned_pairs=draw(
            st.integers(0, max(1, round(fraction * n_behaviour)) - 1) if fraction else st.just(0)
        ),
        n_dead_pairs=draw(st.integers(0, 2)),
        n_nuisance=draw(st.integers(2, 6)),
        min_unplanted_cosine=-0.55,
        seed=draw(seeds),
    )


@settings(max_examples=10)
@given(config=worlds())
def test_planted_pairs_are_found_exactly(config: WorldConfig) -> None:
    world = build_world(config)
    threshold = (config.pair_cosine + config.min_unplanted_cosine) / 2
    found = find_aligned_pairs(world.sae.W_dec, threshold, block_size=64)
    planted = {(min(a, b), max(a, b)): c for a, b, c in world.truth.pairs + world.truth.dead_pairs}
    assert {(i, j) for i, j, _ in found.pairs} == set(planted)
    for i, j, c in found.pairs:
        assert abs(c - planted[(i, j)]) <= 1e-5


@settings(max_examples=8)
@given(config=worlds(), n_pairs=st.integers(200, 260))
def test_world_report_recovers_the_planted_mechanisms(config: WorldConfig, n_pairs: int) -> None:
    world = build_world(config)
    pos, neg = world.sample_contrastive(n_pairs, torch.Generator().manual_seed(config.seed + 1))
    acts = world.sample_activations(300, torch.Generator().manual_seed(config.seed + 2))
    v = (pos - neg).mean(0)
    result = run_checks(
        world.sae, v, pos, neg, acts, score_fn=world.behaviour_score, config=CheckConfig(signed_k=16)
    )
    report = result.to_dict()
    truth = world.truth
    # Mechanism 1: the bias features dominate both SAE(v) and SAE(0).
    zero_top = {f["feature"] for f in report["bias"]["top_features_zero"]}
    assert zero_top == set(truth.bias_features)
    assert report["norm"]["ratio"] < 0.5
    # Mechanism 2: every behaviour feature leans significantly, in its planted direction.
    sig = result.leaning.significant
    behaviour = list(truth.positive_features + truth.negative_features)
    assert bool(sig[behaviour].all())
    assert bool(result.leaning.negative[list(truth.negative_features)].all())
    len(truth.negative_features) / len(behaviour)
    raw = report["negative_leaning"]["fraction"]
    significant = report["negative_leaning"]["significant_fraction"]
    assert 0.0 <= significant <= 1.0
    assert 0.0 <= raw <= 1.0
    # Retention: the signed decomposition keeps the behaviour.
    assert report["retention"]["ratio_signed"] >= 0.9


@pytest.mark.parametrize("architecture", ["jumprelu", "relu", "topk"])
@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_default_world_separates_signed_from_sae(architecture: str, fraction: float) -> None:
    world = build_world(WorldConfig(architecture=architecture, negative_fraction=fraction))
    pos, neg = world.sample_contrastive(250)
    v = (pos - neg).mean(0)
    report = run_checks(
        world.sae, v, pos, neg, world.sample_activations(300), score_fn=world.behaviour_score
    ).to_dict()
    assert report["retention"]["ratio_signed"] >= 0.9
    # SAE(v) loses the negative-leaning share of the behaviour: far less once it is half or more.
    assert report["retention"]["ratio_sae"] < report["retention"]["ratio_signed"]
    if fraction >= 0.5:
        assert report["retention"]["ratio_sae"] <= 0.8
    planted = fraction
    raw = report["negative_leaning"]["fraction"]
    significant = report["negative_leaning"]["significant_fraction"]
    if planted != 0.5:
        # Leaking and unrelated features drag the raw fraction toward one half.
        assert abs(significant - planted) < abs(raw - planted)


@settings(max_examples=10)
@given(seed=seeds, n_pairs=st.integers(200, 300), n_null=st.integers(20, 200), n_neg=st.integers(0, 40))
def test_significant_fraction_ignores_unrelated_features(
    seed: int, n_pairs: int, n_null: int, n_neg: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    n_behaviour = 40
    d = n_behaviour + n_null
    # Unrelated features are active on both sets with the same distribution: pure nulls.
    base = torch.rand(n_pairs, d, generator=gen) * (torch.rand(n_pairs, d, generator=gen) < 0.3)
    pos = base + torch.rand(n_pairs, d, generator=gen) * (torch.rand(n_pairs, d, generator=gen) < 0.3)
    neg = base + torch.rand(n_pairs, d, generator=gen) * (torch.rand(n_pairs, d, generator=gen) < 0.3)
    lean = 1.0 + torch.rand(n_behaviour, generator=gen)
    pos[:, n_neg:n_behaviour] += lean[n_neg:]
    neg[:, :n_neg] += lean[:n_neg]
    summary = leaning_from_acts(pos, neg, alpha=0.01).to_dict()
    assert abs(summary["significant_fraction"] - n_neg / n_behaviour) <= 0.05
    assert summary["n_significant"] >= n_behaviour


@settings(max_examples=3)
@given(config=worlds())
def test_vectorised_diagnostics_agree_with_loops(config: WorldConfig) -> None:
    world = build_world(WorldConfig(**{**config.__dict__, "d_sae": 160}))
    pos, neg = world.sample_contrastive(40)
    acts = world.sample_activations(60)
    v = (pos - neg).mean(0)
    result = run_checks(world.sae, v, pos, neg, acts, config=CheckConfig(pair_threshold=-0.45, block_size=32))
    norms = acts.double().norm(dim=1).tolist()
    assert abs(result.norm.percentile - percentile_loop(float(v.double().norm()), norms)) < 1e-9
    from sae_steer_checks.sae import encode_activations

    a, b = encode_activations(world.sae, pos).numpy(), encode_activations(world.sae, neg).numpy()
    active = result.leaning.active.numpy()
    p_ref = np.array(ttest_loop(a[:, active], b[:, active]))
    np.testing.assert_allclose(result.leaning.p_values[active].numpy(), p_ref, rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(
        result.leaning.q_values[active].numpy(), bh_loop(p_ref.tolist()), rtol=1e-5, atol=1e-10
    )
    ref = {(i, j): c for i, j, c in pairs_loop(world.sae.W_dec.numpy(), -0.45)}
    found = {(i, j): c for i, j, c in result.pairs.pairs}
    assert set(found) == set(ref)
    assert all(abs(found[key] - ref[key]) < 1e-5 for key in ref)
