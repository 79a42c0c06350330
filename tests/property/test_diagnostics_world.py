"""Recovery of the planted answers on the planted world (hypothesis).

Bias and behaviour decoder rows are orthonormal and orthogonal to every other row (a partner
excepted), so only planted features lean and the behaviour readout sees nothing but the behaviour
rows and the partners. That makes the significant fraction and both retention ratios predictable
from the ground truth alone.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sae_steer_checks.diagnostics.bias import bias_check
from sae_steer_checks.diagnostics.leaning import leaning_check, leaning_from_acts
from sae_steer_checks.diagnostics.pairs import find_aligned_pairs
from sae_steer_checks.diagnostics.run import CheckConfig, run_checks
from sae_steer_checks.sae.protocol import encode_activations
from sae_steer_checks.synthetic import PlantedWorld, WorldConfig, build_world
from tests.helpers.planted import CHEAP
from tests.helpers.reference_impl import (
    bh_loop,
    encode_loop,
    gradient_pursuit_loop,
    isclose,
    jaccard_loop,
    leaning_fractions_loop,
    mass_in_zero_loop,
    omp_loop,
    pairs_loop,
    percentile_loop,
    slope_loop,
    spurious_loop,
    top_loop,
    ttest_loop,
)
from tests.helpers.strategies import architectures, scaled_examples, seeds


@st.composite
def worlds(draw: st.DrawFn) -> WorldConfig:
    n_behaviour = draw(st.integers(4, 8))
    fraction = draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]))
    d_sae = draw(st.integers(160, 256))
    return WorldConfig(
        d_model=draw(st.integers(64, 96)),
        d_sae=d_sae,
        # a k above every prompt's L0 (see crowded_worlds); SAE(v) fires far fewer features
        topk_k=d_sae * 3 // 4,
        architecture=draw(architectures),
        n_behaviour_features=n_behaviour,
        negative_fraction=fraction,
        n_aligned_pairs=draw(st.integers(0, round(fraction * n_behaviour))),
        n_dead_pairs=draw(st.integers(0, 2)),
        n_nuisance=draw(st.integers(2, 16)),
        n_active=draw(st.integers(4, 16)),
        min_unplanted_cosine=-0.55,
        seed=draw(seeds),
    )


@st.composite
def crowded_worlds(draw: st.DrawFn) -> WorldConfig:
    """Many behaviour features and many unrelated features active on both prompt sets."""
    d_sae = draw(st.integers(200, 256))
    return WorldConfig(
        d_model=96,
        d_sae=d_sae,
        architecture=draw(architectures),
        # the fraction moves by 1 / n_significant per false discovery: >= 20 features resolve 0.05
        n_behaviour_features=draw(st.integers(20, 40)),
        negative_fraction=draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])),
        n_aligned_pairs=0,
        n_dead_pairs=draw(st.integers(0, 2)),
        n_nuisance=draw(st.integers(8, 16)),
        n_active=draw(st.integers(8, 16)),
        # TopK with k above every prompt's L0 (about 130 here): a binding k makes the behaviour
        # features crowd unrelated ones out of the top k, so those lean too (see the module notes).
        topk_k=d_sae * 3 // 4,
        min_unplanted_cosine=-0.55,
        seed=draw(seeds),
    )


def _contrast(world: PlantedWorld, n_pairs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    seed = world.config.seed
    pos, neg = world.sample_contrastive(n_pairs, torch.Generator().manual_seed(seed + 1))
    acts = world.sample_activations(200, torch.Generator().manual_seed(seed + 2))
    return pos, neg, acts


@scaled_examples(0.4)
@given(config=worlds())
def test_planted_pairs_are_found_exactly(config: WorldConfig) -> None:
    world = build_world(config)
    threshold = (config.pair_cosine + config.min_unplanted_cosine) / 2
    found = find_aligned_pairs(world.sae.W_dec, threshold, block_size=64)
    planted = {(min(a, b), max(a, b)): c for a, b, c in world.truth.pairs + world.truth.dead_pairs}
    assert {(i, j) for i, j, _ in found.pairs} == set(planted)
    for i, j, c in found.pairs:
        assert abs(c - planted[(i, j)]) <= 1e-5


@given(config=crowded_worlds(), n_pairs=st.integers(200, 260))
def test_significant_fraction_recovers_the_planted_one_among_many_unrelated_features(
    config: WorldConfig, n_pairs: int
) -> None:
    world = build_world(config)
    truth = world.truth
    pos, neg = world.sample_contrastive(n_pairs, torch.Generator().manual_seed(config.seed + 1))
    # Each false discovery moves the fraction by up to 1 / n_significant, and the paired t-test is
    # a little liberal on these sparse activations: at the default FDR of 0.05 single draws miss
    # by up to 0.09, and at 0.01 two null p-values below 1e-3 among ~180 occur about once in 70
    # draws. The behaviour features have p < 1e-40, so a stricter FDR costs them nothing.
    leaning = leaning_check(world.sae, pos, neg, alpha=0.001, n_null_tests=0)
    summary = leaning.to_dict()
    behaviour = torch.zeros(config.d_sae, dtype=torch.bool)
    behaviour[list(truth.positive_features + truth.negative_features)] = True
    # Many behaviour-unrelated features are active on both sets...
    both = (leaning.mean_pos > 0) & (leaning.mean_neg > 0) & ~behaviour
    assert int(both.sum()) >= config.d_sae // 2
    # ...yet every behaviour feature is found in its planted direction,
    assert bool(leaning.significant[behaviour].all())
    assert bool(leaning.negative[list(truth.negative_features)].all())
    assert not bool(leaning.negative[list(truth.positive_features)].any())
    # and the significant fraction is the planted one.
    planted = len(truth.negative_features) / config.n_behaviour_features
    assert abs(summary["significant_fraction"] - planted) <= 0.05


def _retention_bounds(world: PlantedWorld, v: torch.Tensor) -> tuple[float, float, float, float]:
    """(upper bound on ratio_sae, JumpReLU's exact ratio, unpaired and paired negative shares).

    The readout is sum_i lean_i d_i over orthonormal behaviour rows, so the original slope is
    sum_i lean_i (v . d_i) and a decoded code f scores sum_i lean_i f_i plus, for each partner p
    of a negative feature a, lean_a cos(a, p) f_p. Non-negative codes with non-positive offsets
    have f_i <= max(v . d_i, 0); JumpReLU keeps v . d_i exactly above its threshold.
    """
    truth, cfg = world.truth, world.config
    W = world.sae.W_dec.detach().double()
    readout = truth.readout.double()
    proj = W @ v.double()
    lean = truth.lean.double()
    base = float(readout @ v.double())
    upper = sum(float(lean[i] * proj[i].clamp_min(0)) for i in truth.positive_features)
    exact = sum(float(lean[i] * proj[i]) for i in truth.positive_features if proj[i] > cfg.threshold)
    for _, partner, _ in truth.pairs:
        weight = float(readout @ W[partner])
        upper += weight * max(float(proj[partner]), 0.0)
        exact += weight * float(proj[partner]) if float(proj[partner]) > cfg.threshold else 0.0
    paired = {a for a, _, _ in truth.pairs}
    share = {i: float(lean[i] * proj[i]) / base for i in truth.negative_features}
    unpaired_share = sum(s for i, s in share.items() if i not in paired)
    paired_share = sum(s for i, s in share.items() if i in paired)
    return upper / base, exact / base, unpaired_share, paired_share


@scaled_examples(0.4)
@given(config=worlds(), n_pairs=st.integers(200, 260))
def test_world_report_recovers_the_planted_mechanisms(config: WorldConfig, n_pairs: int) -> None:
    world = build_world(config)
    pos, neg, acts = _contrast(world, n_pairs)
    v = (pos - neg).mean(0)
    # the nulls and intervals are not asserted here: the cheap config's draws suffice
    check = replace(CHEAP, signed_k=16)
    result = run_checks(world.sae, v, pos, neg, acts, score_fn=world.behaviour_score, config=check)
    report = result.to_dict()
    truth = world.truth
    # Mechanism 1: SAE(0) fires exactly the bias features and v is short.
    zero_top = {f["feature"] for f in report["bias"]["top_features_zero"]}
    assert zero_top == set(truth.bias_features)
    assert report["norm"]["ratio"] < 0.5
    # Mechanism 2: every behaviour feature leans significantly, in its planted direction; the
    # significant fraction misses the planted one only through the other significant features
    # (false discoveries, and partners that their anchor silences on the negative prompts).
    leaning = result.leaning
    behaviour = list(truth.positive_features + truth.negative_features)
    assert bool(leaning.significant[behaviour].all())
    assert bool(leaning.negative[list(truth.negative_features)].all())
    assert not bool(leaning.negative[list(truth.positive_features)].any())
    n_sig = report["negative_leaning"]["n_significant"]
    planted = len(truth.negative_features) / len(behaviour)
    extra = n_sig - len(behaviour)
    assert abs(report["negative_leaning"]["significant_fraction"] - planted) <= extra / n_sig + 1e-12
    for partner in truth.rare_features:
        if bool(leaning.significant[partner]):
            assert not bool(leaning.negative[partner])
    # Mechanism 2 in SAE(v): negative-leaning features get 0, so they are all listed as dropped.
    dropped = set(report["negative_leaning"]["dropped_by_encoder"])
    assert dropped >= set(truth.negative_features)
    assert not dropped & set(truth.positive_features)
    # Retention: the signed decomposition spans every behaviour row, so it keeps the whole slope.
    ratio_sae, ratio_signed = report["retention"]["ratio_sae"], report["retention"]["ratio_signed"]
    assert ratio_signed >= 0.9
    assert abs(ratio_signed - 1.0) <= 1e-4
    # SAE(v) keeps at most the positive share plus what the partners give back ...
    upper, exact, unpaired, _ = _retention_bounds(world, v)
    assert ratio_sae <= upper + 1e-4
    if config.architecture == "jumprelu":
        assert abs(ratio_sae - exact) <= 1e-4
    # ... so it loses every unpaired negative share, and of a paired one keeps about cos^2 = 0.67
    # (plus v's small component along the partner's own direction).
    assert ratio_sae <= 1.0 - unpaired + 1e-4
    # Leans differ by up to 1.25 / 0.75, so half the features leaning negative carry at least
    # 0.75^2 / (0.75^2 + 1.25^2) = 0.27 of the slope: without partners SAE(v) keeps far less.
    if not world.truth.pairs and config.negative_fraction >= 0.5:
        assert ratio_signed - ratio_sae >= 0.2


@pytest.mark.parametrize("architecture", ["jumprelu", "relu", "topk"])
@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_default_world_separates_signed_from_sae(architecture: str, fraction: float) -> None:
    world = build_world(WorldConfig(architecture=architecture, negative_fraction=fraction))
    pos, neg = world.sample_contrastive(250)
    v = (pos - neg).mean(0)
    acts = world.sample_activations(300)
    report = run_checks(world.sae, v, pos, neg, acts, score_fn=world.behaviour_score, config=CHEAP).to_dict()
    ratio_sae, ratio_signed = report["retention"]["ratio_sae"], report["retention"]["ratio_signed"]
    assert ratio_signed >= 0.9
    # Two negative-leaning features have partners that give back cos^2 = 0.67 of their share, so
    # JumpReLU keeps 0.93 / 0.70 / 0.43 at fractions 0.25 / 0.5 / 0.75; ReLU and TopK also shrink
    # every coefficient by the threshold (about half of a lean of 8) and keep 0.45 / 0.34 / 0.20.
    if architecture != "jumprelu":
        assert ratio_sae <= 0.5
    if fraction >= 0.5:
        assert ratio_sae <= 0.8
        assert ratio_signed - ratio_sae >= 0.2
    planted = fraction
    raw = report["negative_leaning"]["fraction"]
    significant = report["negative_leaning"]["significant_fraction"]
    # Unrelated features split about evenly and drag the raw fraction toward one half.
    if planted != 0.5:
        assert abs(significant - planted) < abs(raw - planted)


@scaled_examples(0.4)
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
    summary = leaning_from_acts(pos, neg, alpha=0.01, n_null_tests=0).to_dict()
    assert abs(summary["significant_fraction"] - n_neg / n_behaviour) <= 0.05
    assert summary["n_significant"] >= n_behaviour
    assert math.isfinite(summary["fraction"])


@scaled_examples(0.16)
@given(config=worlds(), method=st.sampled_from(["omp", "gradient_pursuit"]))
def test_vectorised_diagnostics_agree_with_loops(config: WorldConfig, method: str) -> None:
    world = build_world(WorldConfig(**{**config.__dict__, "d_sae": 160, "topk_k": 120}))
    pos, neg = world.sample_contrastive(40)
    acts = world.sample_activations(60)
    v = (pos - neg).mean(0)
    ms = (-2.0, -0.5, 0.0, 1.0, 3.0)
    # the paired t-test has a closed-form loop reference; min_share 0 keeps every explained partner
    cfg = CheckConfig(
        pair_threshold=-0.45, signed_k=12, signed_method=method, top_k=6,
        multipliers=ms, leaning_test="t", min_share=0.0, n_null=19, k_max=12, n_boot=50,
    )  # fmt: skip
    result = run_checks(
        world.sae, v, pos, neg, acts, score_fn=world.behaviour_score, config=cfg, block_size=32
    )
    sae = world.sae
    W_enc, b_enc = sae.W_enc.double().numpy(), sae.b_enc.double().numpy()
    b_dec, W_dec = sae.b_dec.double().numpy(), sae.W_dec.double().numpy()
    thr = sae.threshold.double().numpy() if config.architecture == "jumprelu" else None
    sub = config.architecture != "jumprelu"

    def enc(x: torch.Tensor, subtract: bool = sub) -> list[float]:
        return encode_loop(
            x.double().numpy(), W_enc, b_enc, b_dec, architecture=config.architecture,
            subtract_b_dec=subtract, threshold=thr, k=config.topk_k,
        )  # fmt: skip

    # Norm check.
    norms = acts.double().norm(dim=1).tolist()
    assert abs(result.norm.percentile - percentile_loop(float(v.double().norm()), norms)) < 1e-9
    # Encoder-bias check under both conventions: codes, top features, overlap, shared mass.
    for comparison in (result.bias.own, result.bias.other):
        f_v, f_0 = enc(v, comparison.subtract_b_dec), enc(torch.zeros_like(v), comparison.subtract_b_dec)
        np.testing.assert_allclose(comparison.acts_vector.numpy(), f_v, atol=2e-3)
        np.testing.assert_allclose(comparison.acts_zero.numpy(), f_0, atol=2e-3)
        top_v, top_0 = top_loop(f_v, 6), top_loop(f_0, 6)
        # bias features tie at bias_value, so ids are compared as sets and values in order
        for got, want in ((comparison.top_vector, top_v), (comparison.top_zero, top_0)):
            assert {i for i, _ in got} == {i for i, _ in want}
            np.testing.assert_allclose([x for _, x in got], [x for _, x in want], atol=2e-3)
        assert comparison.overlap == jaccard_loop([i for i, _ in top_v], [i for i, _ in top_0])
        assert isclose(comparison.mass_in_zero, mass_in_zero_loop(f_v, f_0), 1e-4)
    # The delta view on three activations against the loop encoder.
    delta = [[a - b for a, b in zip(enc(x + v), enc(x), strict=True)] for x in acts[:3]]
    part = bias_check(sae, v, acts[:3], top_k=6).delta_mean
    assert part is not None
    np.testing.assert_allclose(part.numpy(), np.mean(delta, axis=0), atol=2e-3)
    # Leaning: p, q, raw and significant fractions, dropped features.
    a, b = encode_activations(sae, pos).numpy(), encode_activations(sae, neg).numpy()
    np.testing.assert_allclose(a[:2], [enc(x) for x in pos[:2]], atol=2e-3)
    # the t-test runs over the features that could reach the minimum effect (the tested family)
    assert result.leaning.tested is not None
    tested = result.leaning.tested.numpy()
    assert not (tested & ~result.leaning.active.numpy()).any()
    p_ref = np.array(ttest_loop(a[:, tested], b[:, tested]))
    np.testing.assert_allclose(result.leaning.p_values[tested].numpy(), p_ref, rtol=1e-5, atol=1e-10)
    q_ref = np.ones(a.shape[1])
    q_ref[tested] = bh_loop(p_ref.tolist())
    np.testing.assert_allclose(result.leaning.q_values.numpy(), q_ref, rtol=1e-5, atol=1e-10)
    raw, significant, n_active, n_sig = leaning_fractions_loop(a, b, q_ref.tolist(), cfg.alpha)
    summary = result.leaning.to_dict()
    assert (summary["n_active"], summary["n_significant"]) == (n_active, n_sig)
    assert isclose(summary["fraction"], raw, 1e-12)
    assert isclose(summary["significant_fraction"], significant, 1e-12)
    f_v = result.bias.own.acts_vector.numpy()
    lean = a.mean(0) - b.mean(0)
    dropped = [
        j for j in range(a.shape[1]) if tested[j] and q_ref[j] <= cfg.alpha and lean[j] < 0 and f_v[j] <= 0
    ]
    assert sorted(result.leaning.dropped_by_encoder) == dropped
    # Aligned pairs and spurious projections.
    ref = {(i, j): c for i, j, c in pairs_loop(W_dec, -0.45)}
    found = {(i, j): c for i, j, c in result.pairs.pairs}
    assert set(found) == set(ref)
    assert all(abs(found[key] - ref[key]) < 1e-5 for key in ref)
    U = W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True)
    spurious, bias_only, unexplained = spurious_loop(
        U, v.double().numpy(), v.double().numpy() @ W_enc, f_v, result.bias.own.acts_zero.numpy(),
        result.leaning.firing_rate.numpy(), result.leaning.negative.numpy(), -0.45, cfg.rare_rate,
    )  # fmt: skip
    # the named anchor is the one with the largest share (the loop names the most anti-aligned one)
    assert [s.feature for s in result.spurious.spurious] == [f for f, _ in spurious]
    assert list(result.spurious.bias_explained) == bias_only
    assert list(result.spurious.unexplained) == unexplained
    # Signed decompositions and their summaries.
    loops = {"omp": omp_loop, "gradient_pursuit": gradient_pursuit_loop}
    for name, loop in loops.items():
        support, coef = loop(W_dec, v.double().numpy(), 12)
        code = result.codes[name]
        used = code.indices[0] >= 0
        assert code.indices[0][used].tolist() == support
        np.testing.assert_allclose(code.coefficients[0][used].numpy(), coef, rtol=1e-3, atol=1e-3)
    support, coef = loops[method](W_dec, v.double().numpy(), 12)
    recon = coef @ W_dec[support]
    vd = v.double().numpy()
    signed = result.decompositions["signed"]
    assert isclose(signed.rel_error, float(np.linalg.norm(vd - recon) / np.linalg.norm(vd)), 1e-4)
    assert isclose(signed.cosine, float(vd @ recon / np.linalg.norm(vd) / np.linalg.norm(recon)), 1e-4)
    assert (signed.l0, signed.n_negative) == (len(support), int((coef < 0).sum()))
    # Retention: slopes by polyfit over the loop-decoded reconstructions.
    sae_recon = torch.tensor(np.asarray(enc(v)) @ W_dec, dtype=torch.float32)
    for name, vec in (("original", v), ("sae", sae_recon), ("signed", torch.tensor(recon).float())):
        slope = slope_loop(list(ms), [world.behaviour_score(m * vec) for m in ms])
        assert isclose(result.retention.slopes[name].slope, slope, 1e-3)  # type: ignore[union-attr]
