"""Unit tests of the quantitative spurious-positive check (share of the pre-activation change)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from sae_steer_checks.diagnostics.resample import SaeDraws
from sae_steer_checks.diagnostics.space import EncodedSample, encode_sample, sae_space
from sae_steer_checks.diagnostics.spurious import SpuriousCheck, largest_shares, spurious_check
from sae_steer_checks.stats.resampling import basic_interval
from tests.helpers.hand_saes import make_sae, orthonormal_rows


def _setup(rho: float = 0.82) -> tuple[torch.Tensor, torch.Tensor]:
    B = orthonormal_rows(4, 8, seed=5)
    W = torch.stack([B[0], -rho * B[0] + math.sqrt(1 - rho**2) * B[1], B[2], B[3]])
    return W, B


def _run(v: torch.Tensor, W: torch.Tensor, **kwargs: Any) -> SpuriousCheck:
    f_v = torch.relu(v @ W.T)
    rate = torch.tensor([0.5, 0.0, 0.0, 0.0])
    negative = torch.tensor([True, False, False, False])
    return spurious_check(W, W.T, v, f_v, torch.zeros(4), rate, negative=negative, threshold=-0.5, **kwargs)


def test_share_is_the_anchor_directions_part_of_the_pre_activation_change() -> None:
    W, B = _setup()
    v = -3.0 * W[0] + 0.5 * B[1]
    result = _run(v, W)
    (s,) = result.spurious
    # pre_1 = v . d_1 = 0.82 * 3 + 0.5 * sqrt(1 - 0.82^2); the anchor's part is 0.82 * 3.
    pre = 0.82 * 3.0 + 0.5 * math.sqrt(1 - 0.82**2)
    assert s.share == pytest.approx(0.82 * 3.0 / pre, abs=1e-5)
    assert (s.feature, s.explained_by) == (1, 0)
    assert result.to_dict()["spurious"][0]["share"] == pytest.approx(s.share)
    assert result.to_dict()["min_share"] == 0.5


def test_a_partner_pushed_mostly_by_its_own_direction_is_not_spurious() -> None:
    W, B = _setup()
    v = -0.5 * W[0] + 4.0 * B[1]  # the partner fires mostly because v points along its own part
    result = _run(v, W)
    assert result.spurious == ()
    (weak,) = result.below_share
    assert weak.feature == 1
    assert weak.share < 0.5
    assert result.unexplained == (1,)
    # A lower bar lets it through.
    assert [s.feature for s in _run(v, W, min_share=0.05).spurious] == [1]


def test_min_share_must_be_a_share() -> None:
    W, _ = _setup()
    with pytest.raises(ValueError, match="min_share must be in"):
        _run(-W[0], W, min_share=-0.1)
    with pytest.raises(ValueError, match="min_share must be in"):
        _run(-W[0], W, min_share=1.5)


def test_largest_shares_is_the_checks_key_figure_vector_by_vector() -> None:
    from sae_steer_checks.synthetic import WorldConfig, build_world

    world = build_world(WorldConfig(seed=3))
    W_dec, W_enc = world.sae.W_dec.detach(), world.sae.W_enc.detach()
    gen = torch.Generator().manual_seed(0)
    rate = torch.rand(W_dec.shape[0], generator=gen) * 0.02  # every feature rare...
    negative = torch.rand(W_dec.shape[0], generator=gen) < 0.9  # ...and most may anchor
    # vectors that point against anchors (CAA-like draws) and plain noise
    pos, neg = world.sample_contrastive(16, gen)
    vectors = torch.cat([pos - neg, torch.randn(8, W_dec.shape[1], generator=gen)])
    codes = world.sae.encode(vectors).detach()
    zero = world.sae.encode(torch.zeros(1, W_dec.shape[1])).detach()[0]
    batched = largest_shares(W_dec, W_enc, vectors, codes, rate, negative=negative)
    one_by_one = [
        spurious_check(W_dec, W_enc, v, f, zero, rate, negative=negative).max_share
        for v, f in zip(vectors, codes, strict=True)
    ]
    assert batched.tolist() == pytest.approx(one_by_one, abs=1e-5)
    assert max(one_by_one) > 0.5  # the comparison covers anchored partners, not only zeros


def _draws(boot: torch.Tensor, W: torch.Tensor, weights: torch.Tensor | None = None) -> SaeDraws:
    """The same vectors as bootstrap draws and as shuffled ones, with ReLU codes of the tied encoder."""
    codes = torch.relu(boot @ W.T)
    w = torch.full((boot.shape[0], 3), 1 / 3, dtype=torch.float64) if weights is None else weights
    return SaeDraws(bootstrap=boot, bootstrap_codes=codes, shuffled=boot, shuffled_codes=codes, weights=w)


def _ordinary(W: torch.Tensor, rows: torch.Tensor) -> EncodedSample:
    """Ordinary activations encoded by a ReLU SAE whose decoder is ``W`` (tied encoder, no biases)."""
    sae = make_sae(W, torch.zeros(W.shape[0]), architecture="relu")
    return encode_sample(sae_space(sae, rows), rows)


def test_pairs_verdict_reads_its_interval_against_the_reference() -> None:
    W, B = _setup()
    v = -3.0 * W[0] + 0.5 * B[1]
    assert _run(v, W).status == "inconclusive"  # spurious, but no reference
    boot = torch.stack([-3.0 * W[0] + s * B[1] for s in (0.3, 0.5, 0.7)])
    # ordinary activations whose codes fire nothing: their share is 0
    drawn = _run(v, W, draws=_draws(boot, W), ordinary=_ordinary(W, torch.zeros(10, 8)))
    assert drawn.share_interval[0] > 0.5
    assert drawn.status == "problem"
    assert drawn.to_dict()["share_bound"] == 0.5
    assert "largest share exceeds 50%" in drawn.reason
    # where ordinary activations get the same share, the pair is part of normal encoding
    alike = _run(v, W, draws=_draws(boot, W), ordinary=_ordinary(W, v.expand(10, 8).clone()))
    assert alike.share_reference.q95 == pytest.approx(alike.max_share)
    assert alike.status == "fine"
    assert "ordinary activations" in alike.reason  # they show as much
    assert "below 50%" not in alike.reason


def test_share_stays_a_share_when_the_rest_pulls_the_other_way() -> None:
    """The anchor's part over the total absolute push: at most 1 even when the rest is negative."""
    W, B = _setup()
    v = -3.0 * W[0] - 0.5 * B[1]  # the partner's own part pulls down, the anchor's part pushes up
    (s,) = _run(v, W).spurious
    part, rest = 0.82 * 3.0, -0.5 * math.sqrt(1 - 0.82**2)
    assert s.share == pytest.approx(part / (abs(part) + abs(rest)), abs=1e-5)
    assert 0.5 < s.share < 1.0
    assert (part / (part + rest)) > 1.0  # the old ratio left [0, 1] here


def test_a_vanishing_change_gives_no_share() -> None:
    W, _ = _setup()
    codes = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    rate = torch.tensor([0.5, 0.0, 0.0, 0.0])
    tiny = torch.zeros(1, W.shape[1])
    assert largest_shares(W, W.T, tiny, codes, rate).tolist() == [0.0]


def test_anchors_are_re_estimated_on_each_bootstrap_draw() -> None:
    W, B = _setup()
    v = -3.0 * W[0] + 0.5 * B[1]
    boot = torch.stack([-3.0 * W[0] + s * B[1] for s in (0.3, 0.5, 0.7)])
    rate = torch.tensor([0.5, 0.0, 0.0, 0.0])
    # draw b resamples only item b; feature 0 leans negative in items 1 and 2, not in item 0
    weights = torch.eye(3, dtype=torch.float64)
    code_diffs = torch.zeros(3, 4, dtype=torch.float64)
    code_diffs[:, 0] = torch.tensor([1.0, -1.0, -1.0])
    fixed = _run(v, W, draws=_draws(boot, W, weights))
    drawn = _run(v, W, draws=_draws(boot, W, weights), code_diffs=code_diffs)
    assert drawn.share_interval != fixed.share_interval
    mask = torch.tensor([True, False, False, False]).repeat(3, 1)
    mask[0, 0] = False  # on the first draw the anchor no longer leans negative: that draw's share is 0
    codes = torch.relu(boot @ W.T)
    assert largest_shares(W, W.T, boot, codes, rate, negative=mask).tolist()[0] == 0.0
    negative = torch.tensor([True, False, False, False])
    assert min(largest_shares(W, W.T, boot, codes, rate, negative=negative).tolist()) > 0.5
    assert fixed.share_interval == basic_interval(
        fixed.max_share, largest_shares(W, W.T, boot, codes, rate, negative=negative), lower=0.0, upper=1.0
    )
    assert drawn.share_interval == basic_interval(
        drawn.max_share, largest_shares(W, W.T, boot, codes, rate, negative=mask), lower=0.0, upper=1.0
    )
