"""A vector learned over decoder rows recovers a planted sparse signed readout, negatives included."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sae_steer_checks.steering.learned import fit_sparse_steering
from sae_steer_checks.synthetic import PlantedWorld, WorldConfig, build_world
from tests.helpers.strategies import seeds


@st.composite
def worlds(draw: st.DrawFn) -> WorldConfig:
    # sparse enough to be identifiable: at most d_model / 12 readout rows, as a 32-feature vector is
    # in Gemma Scope's 2304-wide residual stream with room to spare
    d_model = draw(st.integers(48, 128))
    n_behaviour = draw(st.integers(2, 8))
    fraction = draw(st.sampled_from([0.25, 0.5, 0.75, 1.0]))
    return WorldConfig(
        d_model=d_model,
        d_sae=draw(st.integers(2 * d_model, 3 * d_model)),
        n_behaviour_features=n_behaviour,
        negative_fraction=fraction,
        n_aligned_pairs=min(2, round(fraction * n_behaviour)),
        min_unplanted_cosine=-0.55,
        # 0: the behaviour features' orthonormal rows, partners at cosine -0.82 as distractors;
        # else ordinary rows, which overlap the others
        readout_features=draw(st.sampled_from([0, 2, d_model // 12])),
        seed=draw(seeds),
    )


def _recovered(world: PlantedWorld, init: str, seed: int) -> tuple[int, int, bool, float]:
    """(true features found, true features, all their signs right, cosine with the readout)."""
    readout, code = world.truth.readout, world.truth.readout_code
    truth = code.nonzero().flatten()
    learned = fit_sparse_steering(
        lambda u: readout @ u, world.W_dec, norm=float(readout.norm()), k=truth.numel(), steps=50,
        init=init, seed=seed,
    )  # fmt: skip
    found = truth[learned.coefficients[truth] != 0]
    signs = bool((learned.coefficients[found].sign() == code[found].sign()).all())
    cosine = float(learned.vector @ readout / (learned.vector.norm() * readout.norm()))
    return found.numel(), truth.numel(), signs, cosine


@given(worlds(), st.sampled_from(["gradient", "random"]), seeds)
def test_learned_vector_recovers_the_planted_support_and_its_signs(
    cfg: WorldConfig, init: str, seed: int
) -> None:
    world = build_world(cfg)
    found, n_true, signs, cosine = _recovered(world, init, seed)
    assert found >= 0.8 * n_true
    assert signs
    assert cosine > 0.9


@pytest.mark.parametrize("readout_features", [0, 6])
def test_negative_coefficients_are_recovered_where_sae_codes_cannot_go(readout_features: int) -> None:
    world = build_world(WorldConfig(seed=3, readout_features=readout_features))
    code = world.truth.readout_code
    learned = fit_sparse_steering(
        lambda u: world.truth.readout @ u, world.W_dec, norm=1.0, k=int((code != 0).sum()), steps=50
    )
    negative = (code < 0).nonzero().flatten()
    assert negative.numel() >= 3
    assert bool((learned.coefficients[negative] < 0).all())
    assert learned.n_negative == negative.numel()
    # the readout is the best direction of that support: the fit reaches it
    assert float(torch.nn.functional.cosine_similarity(learned.vector, world.truth.readout, dim=0)) > 0.999


def test_default_world_is_unchanged_by_the_readout_option() -> None:
    plain, other = build_world(WorldConfig(seed=5)), build_world(WorldConfig(seed=5, readout_features=4))
    assert torch.equal(plain.W_dec, other.W_dec)
    assert torch.equal(plain.truth.lean, other.truth.lean)
    assert torch.equal(plain.truth.readout, plain.truth.steering_vector)
    torch.testing.assert_close(plain.truth.readout_code @ plain.W_dec, plain.truth.readout)
    torch.testing.assert_close(other.truth.readout_code @ other.W_dec, other.truth.readout)
    used = other.truth.readout_code.nonzero().flatten().tolist()
    assert len(used) == 4
    assert set(used) <= set(other.truth.ordinary_features)
    with pytest.raises(ValueError, match="readout_features"):
        WorldConfig(readout_features=-1)
