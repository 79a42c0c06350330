"""The planted world keeps each of its promises."""

from __future__ import annotations

import itertools

import pytest
import torch
from sae_lens import JumpReLUSAE, StandardSAE, TopKSAE

from sae_steer_checks.synthetic import WorldConfig, build_world

ARCHITECTURES = ["jumprelu", "relu", "topk"]


@pytest.fixture(scope="module", params=ARCHITECTURES)
def world(request: pytest.FixtureRequest):
    return build_world(WorldConfig(architecture=request.param, n_dead_pairs=2))


def test_sae_is_a_real_sae_lens_object(world) -> None:
    expected = {"jumprelu": JumpReLUSAE, "relu": StandardSAE, "topk": TopKSAE}
    assert type(world.sae) is expected[world.config.architecture]
    # Gemma Scope's JumpReLU convention: b_dec is not subtracted before encoding.
    assert world.sae.cfg.apply_b_dec_to_input is (world.config.architecture != "jumprelu")


def test_decoder_rows_are_unit_norm(world) -> None:
    norms = world.W_dec.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-6, rtol=0)


def test_planted_pairs_have_the_exact_cosine(world) -> None:
    W = world.W_dec.double()
    for feature, partner, cosine in world.truth.pairs + world.truth.dead_pairs:
        assert abs(cosine - world.config.pair_cosine) < 1e-6
        assert abs(float(W[feature] @ W[partner]) - world.config.pair_cosine) < 1e-6


def test_no_unplanted_pair_below_the_floor(world) -> None:
    W = world.W_dec.double()
    gram = W @ W.T
    planted = {frozenset(p[:2]) for p in world.truth.pairs + world.truth.dead_pairs}
    below = (torch.triu(gram, diagonal=1) < world.config.min_unplanted_cosine).nonzero().tolist()
    assert {frozenset(pair) for pair in below} == planted


def test_pairs_join_negative_leaning_features_to_rare_partners(world) -> None:
    truth = world.truth
    assert len(truth.pairs) == world.config.n_aligned_pairs
    for feature, partner, _ in truth.pairs:
        assert feature in truth.negative_features
        assert partner in truth.rare_features


def test_bias_features_fire_on_zero_and_nothing_else_does(world) -> None:
    acts = world.sae.encode(torch.zeros(1, world.config.d_model))[0]
    assert acts.nonzero().flatten().tolist() == list(world.truth.bias_features)
    bias_values = acts[list(world.truth.bias_features)]
    expected = torch.full_like(bias_values, world.config.bias_value)
    torch.testing.assert_close(bias_values, expected, atol=1e-3, rtol=0)


def test_bias_and_dead_features_are_silent_on_ordinary_activations(world) -> None:
    acts = world.sae.encode(world.sample_activations(2000))
    silent = list(world.truth.bias_features) + list(world.truth.dead_features)
    assert not acts[:, silent].any()


def test_activation_norms_are_dominated_by_the_default_component(world) -> None:
    norms = world.sample_activations(500).norm(dim=1)
    assert norms.min() > world.config.default_norm
    assert torch.allclose(world.truth.default_component.norm(), torch.tensor(world.config.default_norm))


def test_steering_vector_norm_is_far_below_activation_norms(world) -> None:
    pos, neg = world.sample_contrastive(300)
    v = (pos - neg).mean(0)
    assert v.norm() < 0.2 * world.sample_activations(500).norm(dim=1).min()
    cos = torch.nn.functional.cosine_similarity(v, world.truth.steering_vector, dim=0)
    assert cos > 0.99


def test_leaning_features_lean_as_planted(world) -> None:
    pos, neg = world.sample_contrastive(400)
    diff = world.sae.encode(pos).mean(0) - world.sae.encode(neg).mean(0)
    truth = world.truth
    assert (diff[list(truth.positive_features)] > 1.0).all()
    assert (diff[list(truth.negative_features)] < -1.0).all()


def test_planted_leaning_fraction() -> None:
    for n_behaviour, fraction in itertools.product([4, 10], [0.0, 0.3, 0.5, 1.0]):
        world = build_world(
            WorldConfig(n_behaviour_features=n_behaviour, negative_fraction=fraction, n_aligned_pairs=0)
        )
        truth = world.truth
        assert len(truth.negative_features) == round(fraction * n_behaviour)
        assert len(truth.negative_features) + len(truth.positive_features) == n_behaviour
        assert (truth.lean[list(truth.negative_features)] < 0).all()
        assert (truth.lean[list(truth.positive_features)] > 0).all()
        assert int((truth.lean != 0).sum()) == n_behaviour


def test_behaviour_score_is_the_exact_linear_readout(world) -> None:
    gen = torch.Generator().manual_seed(3)
    u, w = torch.randn(2, world.config.d_model, generator=gen, dtype=torch.float64)
    assert world.behaviour_score(u + 2 * w) == pytest.approx(
        world.behaviour_score(u) + 2 * world.behaviour_score(w), rel=1e-9, abs=1e-9
    )
    assert world.behaviour_score(world.truth.steering_vector) > 0
    with pytest.raises(ValueError, match=r"u must be a tensor of shape \[256\]"):
        world.behaviour_score(torch.zeros(3))


def test_same_config_gives_bit_identical_tensors() -> None:
    a, b = build_world(WorldConfig(seed=7)), build_world(WorldConfig(seed=7))
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(a.sae, name), getattr(b.sae, name))
    assert torch.equal(a.sample_activations(16), b.sample_activations(16))
    for x, y in zip(a.sample_contrastive(8), b.sample_contrastive(8), strict=True):
        assert torch.equal(x, y)
    assert a.truth.pairs == b.truth.pairs
    c = build_world(WorldConfig(seed=8))
    assert not torch.equal(a.sae.W_dec, c.sae.W_dec)


def test_explicit_generator_controls_sampling() -> None:
    world = build_world(WorldConfig(d_model=64, d_sae=128))
    x1 = world.sample_activations(4, torch.Generator().manual_seed(1))
    x2 = world.sample_activations(4, torch.Generator().manual_seed(1))
    x3 = world.sample_activations(4, torch.Generator().manual_seed(2))
    assert torch.equal(x1, x2)
    assert not torch.equal(x1, x3)


def test_dtype_and_device_are_arguments() -> None:
    world = build_world(WorldConfig(d_model=64, d_sae=128), dtype=torch.bfloat16)
    assert world.sae.W_dec.dtype == torch.bfloat16
    assert world.sample_activations(3).dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"pair_cosine": -1.5}, "pair_cosine"),
        ({"pair_cosine": 1.2}, "pair_cosine"),
        ({"negative_fraction": 1.5}, "negative_fraction"),
        ({"negative_fraction": -0.1}, "negative_fraction"),
        ({"d_sae": 10}, "d_sae"),
        ({"architecture": "gated"}, "architecture"),
        ({"n_aligned_pairs": 9}, "n_aligned_pairs"),
        ({"bias_value": 500.0}, "bias_value"),
        ({"noise": float("nan")}, "noise"),
        ({"n_active": -1}, "n_active"),
        ({"pair_cosine": -0.2}, "pair_cosine"),
        ({"d_model": 16}, "n_behaviour_features"),
        ({"architecture": "topk", "topk_k": 600}, "topk_k"),
    ],
)
def test_bad_configs_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"WorldConfig\.{field} must be"):
        WorldConfig(**overrides)


def test_impossible_geometry_names_d_model() -> None:
    with pytest.raises(ValueError, match="d_model=12 is too small"):
        build_world(
            WorldConfig(
                d_model=12,
                d_sae=200,
                n_bias_features=1,
                n_behaviour_features=2,
                n_aligned_pairs=1,
                bias_value=50.0,
                min_unplanted_cosine=-0.1,
                pair_cosine=-0.82,
            )
        )
