"""Invariances of the diagnostics under rescaling, feature permutation and sign flips (hypothesis)."""

from __future__ import annotations

import math

import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from sae_steer_checks.diagnostics.bias import bias_check
from sae_steer_checks.diagnostics.decompose import gradient_pursuit, omp
from sae_steer_checks.diagnostics.leaning import leaning_check
from sae_steer_checks.diagnostics.norms import norm_check
from sae_steer_checks.diagnostics.pairs import find_aligned_pairs
from tests.helpers.hand_saes import make_sae
from tests.helpers.strategies import architectures, seeds


@given(seed=seeds, c=st.floats(1e-3, 1e3), n=st.integers(1, 50))
def test_common_rescaling_keeps_norm_ratio(seed: int, c: float, n: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    acts = torch.randn(n, 8, generator=gen) * 10
    v = torch.randn(8, generator=gen)
    a, b = norm_check(v, acts), norm_check(c * v, c * acts)
    assert math.isclose(a.ratio, b.ratio, rel_tol=1e-5)
    assert abs(a.percentile - b.percentile) <= 100.0 / n + 1e-9 or a.percentile == b.percentile


def _random_sae(seed: int, d_in: int, d_sae: int, arch: str) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(d_sae, d_in, generator=gen)
    W = W / W.norm(dim=1, keepdim=True)
    b_enc = torch.randn(d_sae, generator=gen)
    return W, b_enc, make_sae(W, b_enc, architecture=arch, threshold=0.3, k=5), gen


@given(seed=seeds, arch=architectures)
def test_permuting_features_permutes_every_output(seed: int, arch: str) -> None:
    W, b_enc, sae, gen = _random_sae(seed, 10, 24, arch)
    perm = torch.randperm(24, generator=gen)
    sae_p = make_sae(W[perm], b_enc[perm], architecture=arch, threshold=0.3, k=5)
    v = torch.randn(10, generator=gen)
    pos, neg = torch.randn(40, 10, generator=gen) * 2, torch.randn(40, 10, generator=gen) * 2
    a, b = bias_check(sae, v), bias_check(sae_p, v)
    assert torch.allclose(b.own.acts_vector, a.own.acts_vector[perm], atol=1e-5)
    assert torch.allclose(b.other.acts_zero, a.other.acts_zero[perm], atol=1e-5)
    la, lb = leaning_check(sae, pos, neg), leaning_check(sae_p, pos, neg)
    assert torch.allclose(lb.mean_neg, la.mean_neg[perm], atol=1e-5)
    assert torch.equal(lb.significant, la.significant[perm])
    assert torch.allclose(lb.p_values, la.p_values[perm], rtol=1e-6, atol=1e-12)
    assert lb.to_dict()["significant_fraction"] == la.to_dict()["significant_fraction"]
    pa = {(i, j) for i, j, _ in find_aligned_pairs(W, -0.3).pairs}
    pb = {tuple(sorted((int(perm[i]), int(perm[j])))) for i, j, _ in find_aligned_pairs(W[perm], -0.3).pairs}
    assert pa == pb
    # Signed decompositions select the same rows under their new ids, with the same coefficients.
    for method in (omp, gradient_pursuit):
        ca, cb = method(W, v, 4), method(W[perm], v, 4)
        assert perm[cb.indices[0]].tolist() == ca.indices[0].tolist()
        assert torch.allclose(cb.coefficients, ca.coefficients, atol=1e-5)


@given(seed=seeds, flip=st.integers(0, 29), threshold=st.floats(-0.6, -0.2))
def test_flipping_one_row_toggles_exactly_its_pairs(seed: int, flip: int, threshold: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(30, 6, generator=gen)
    W = W / W.norm(dim=1, keepdim=True)
    cos = W @ W.T
    # Keep clear of |cos| == |threshold| where float rounding could decide membership.
    assume(float((cos.abs() - abs(threshold)).abs().min()) >= 1e-4)
    Wf = W.clone()
    Wf[flip] = -Wf[flip]
    before = {(i, j) for i, j, _ in find_aligned_pairs(W, threshold, block_size=7).pairs}
    after = {(i, j) for i, j, _ in find_aligned_pairs(Wf, threshold, block_size=7).pairs}
    changed = before ^ after
    assert all(flip in p for p in changed)
    expected = {
        (min(flip, j), max(flip, j))
        for j in range(30)
        if j != flip and (float(cos[flip, j]) < threshold) != (-float(cos[flip, j]) < threshold)
    }
    assert changed == expected
