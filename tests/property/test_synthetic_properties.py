"""Hypothesis properties of the planted world over many configs."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from sae_steer_checks.synthetic import WorldConfig, build_world
from tests.helpers.strategies import architectures, seeds


@st.composite
def configs(draw: st.DrawFn) -> WorldConfig:
    d_model = draw(st.integers(48, 96))
    n_behaviour = draw(st.integers(2, 8))
    fraction = draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]))
    n_negative = round(fraction * n_behaviour)
    return WorldConfig(
        d_model=d_model,
        d_sae=draw(st.integers(2 * d_model, 3 * d_model)),
        architecture=draw(architectures),
        n_behaviour_features=n_behaviour,
        negative_fraction=fraction,
        n_aligned_pairs=draw(st.integers(0, n_negative)),
        n_dead_pairs=draw(st.integers(0, 2)),
        pair_cosine=draw(st.floats(-0.95, -0.6)),
        min_unplanted_cosine=-0.55,
        n_bias_features=draw(st.integers(1, 3)),
        default_norm=draw(st.floats(150.0, 400.0)),
        seed=draw(seeds),
    )


@given(configs())
def test_planted_geometry_holds_for_any_config(cfg: WorldConfig) -> None:
    world = build_world(cfg)
    W = world.W_dec.double()
    torch.testing.assert_close(W.norm(dim=1), torch.ones(cfg.d_sae, dtype=torch.float64), atol=1e-6, rtol=0)
    for a, b, cos in world.truth.pairs + world.truth.dead_pairs:
        assert abs(float(W[a] @ W[b]) - cfg.pair_cosine) < 1e-6
        assert abs(cos - cfg.pair_cosine) < 1e-6
    # bias rows are orthogonal to every other row, so SAE(0) fires exactly the bias features
    bias = list(world.truth.bias_features)
    others = [i for i in range(cfg.d_sae) if i not in set(bias)]
    assert float((W[bias] @ W[others].T).abs().max()) < 1e-6  # float32 weights
    zero_acts = world.sae.encode(torch.zeros(1, cfg.d_model))[0]
    assert zero_acts.nonzero().flatten().tolist() == bias


@given(configs(), seeds)
def test_negative_leaning_features_vanish_from_sae_of_the_vector(cfg: WorldConfig, seed: int) -> None:
    world = build_world(cfg)
    pos, neg = world.sample_contrastive(64, torch.Generator().manual_seed(seed))
    v = (pos - neg).mean(0)
    acts = world.sae.encode(v[None])[0]
    negative = list(world.truth.negative_features)
    assert not acts[negative].any()
    assert v.norm() < world.sample_activations(64).norm(dim=1).min()


@given(configs(), st.floats(0.1, 10.0))
def test_scaling_the_world_scales_the_samples(cfg: WorldConfig, scale: float) -> None:
    # identical roles and geometry for the same seed, whatever the magnitudes
    a = build_world(cfg)
    b = build_world(WorldConfig(**{**cfg.__dict__, "feature_magnitude": cfg.feature_magnitude * scale}))
    assert a.truth.pairs == b.truth.pairs
    assert torch.equal(a.sae.W_dec, b.sae.W_dec)
    assert a.truth.negative_features == b.truth.negative_features
