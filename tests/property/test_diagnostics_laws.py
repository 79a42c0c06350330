"""Exact laws of the diagnostics on hand-set sae-lens SAEs (hypothesis)."""

from __future__ import annotations

import itertools
import math

import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from sae_steer_checks.diagnostics.bias import bias_check
from sae_steer_checks.diagnostics.decompose import gradient_pursuit, omp
from sae_steer_checks.diagnostics.pairs import spurious_check
from sae_steer_checks.sae.protocol import encode_in_sae_space
from tests.helpers.hand_saes import make_sae, orthonormal_rows
from tests.helpers.strategies import architectures, seeds


@given(seed=seeds, arch=architectures, t=st.floats(1e-4, 1.0))
def test_small_vector_keeps_the_support_of_the_zero_vector(seed: int, arch: str, t: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    d_in, d_sae, k = 12, 20, 6
    W = torch.randn(d_sae, d_in, generator=gen)
    W = W / W.norm(dim=1, keepdim=True)
    # Pre-activations of 0 sit at least `margin` away from every kink (0 or the threshold) and,
    # for TopK, the k-th and (k+1)-th largest are at least 2 * margin apart.
    sign = torch.where(torch.rand(d_sae, generator=gen) < 0.5, -1.0, 1.0)
    b_enc = 1.0 + sign * (0.5 + torch.rand(d_sae, generator=gen))
    sae = make_sae(W, b_enc, architecture=arch, threshold=1.0 if arch == "jumprelu" else 0.0, k=k)
    margin = float((b_enc - (1.0 if arch == "jumprelu" else 0.0)).abs().min())
    if arch == "topk":
        ranked = torch.sort(b_enc, descending=True).values
        margin = min(margin, float(ranked[k - 1] - ranked[k]) / 2)
        assume(margin > 1e-3)
    v = torch.randn(d_in, generator=gen)
    v = v / v.norm() * t * margin * 0.99  # |delta pre| <= ||v|| < margin since rows are unit
    f = encode_in_sae_space(sae, torch.stack([v, torch.zeros(d_in)]))
    assert torch.equal(f[0] > 0, f[1] > 0)
    assert bias_check(sae, v).own.same_support
    assert float((f[0] - f[1]).abs().max()) <= float(v.norm()) + 1e-5
    # encode(t v) -> encode(0): the gap shrinks at least linearly with t.
    half = encode_in_sae_space(sae, (0.5 * v)[None])[0]
    assert float((half - f[1]).abs().max()) <= 0.5 * float(v.norm()) + 1e-5


@given(seed=seeds, arch=architectures, c=st.floats(0.5, 50.0))
def test_negative_direction_gets_zero_and_signed_recovers_it(seed: int, arch: str, c: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    d_in, d_sae = 16, 10
    W = orthonormal_rows(d_sae, d_in, seed)
    b_enc = -0.4 * torch.rand(d_sae, generator=gen)
    i = int(torch.randint(d_sae, (1,), generator=gen))
    sae = make_sae(W, b_enc, architecture=arch, k=3, apply_b_dec_to_input=False)
    v = -c * W[i]
    f_v = bias_check(sae, v).own.acts_vector
    assert float(f_v[i]) == 0.0
    code = omp(sae.W_dec, v, 1)
    assert int(code.indices[0, 0]) == i
    assert math.isclose(float(code.coefficients[0, 0]), -c, rel_tol=1e-5)


@given(seed=seeds, arch=architectures, rho=st.floats(0.55, 0.98), c=st.floats(1.0, 30.0))
def test_planted_pair_turns_negative_projection_into_spurious_positive(
    seed: int, arch: str, rho: float, c: float
) -> None:
    d_in, d_sae = 12, 6
    B = orthonormal_rows(d_sae + 1, d_in, seed)
    W = B[:d_sae].clone()
    i, j = 1, 4
    W[j] = -rho * B[i] + math.sqrt(1 - rho**2) * B[d_sae]
    sae = make_sae(W, torch.zeros(d_sae), architecture=arch, k=2)
    v = -c * W[i]
    check = bias_check(sae, v)
    f_v, f_0 = check.own.acts_vector, check.own.acts_zero
    assert float(f_v[j]) > 0
    negative = torch.zeros(d_sae, dtype=torch.bool)
    negative[i] = True
    rate = torch.zeros(d_sae)
    rate[i] = 0.5
    result = spurious_check(W, sae.W_enc, v, f_v, f_0, rate, negative=negative, threshold=-0.5)
    assert [(s.feature, s.explained_by) for s in result.spurious] == [(j, i)]
    assert math.isclose(result.spurious[0].cosine, -rho, abs_tol=1e-5)


@given(seed=seeds, n=st.integers(40, 80), d=st.integers(192, 256), s=st.integers(1, 2))
def test_signed_recovery_and_monotone_error(seed: int, n: int, d: int, s: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    D = torch.randn(n, d, generator=gen, dtype=torch.float64)
    D = (D / D.norm(dim=1, keepdim=True)).float()
    # Mutual coherence below 1 / (2s - 1) guarantees that greedy selection finds the support.
    coherence = float((D @ D.T - torch.eye(n)).abs().max())
    assume(coherence * (2 * s - 1) < 1)
    support = torch.randperm(n, generator=gen)[:s]
    sign = torch.where(torch.rand(s, generator=gen) < 0.5, -1.0, 1.0)
    truth = torch.zeros(n)
    truth[support] = (1.0 + torch.rand(s, generator=gen)) * sign
    code = omp(D, truth @ D, s)
    assert sorted(code.indices[0].tolist()) == sorted(support.tolist())
    assert torch.allclose(code.dense()[0], truth, atol=1e-4)
    V = torch.randn(3, d, generator=gen)
    for method in (omp, gradient_pursuit):
        errors = [(method(D, V, k).reconstruct(D) - V).norm(dim=1) for k in range(1, 6)]
        for small, large in itertools.pairwise(errors):
            assert bool((large <= small * (1 + 1e-5) + 1e-6).all())
