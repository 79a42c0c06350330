"""Unit tests of the batched signed decompositions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_steer_checks.diagnostics.decompose import gradient_pursuit, omp, summarize_reconstruction
from tests.helpers.hand_saes import random_unit_rows
from tests.helpers.reference_impl import omp_loop


def test_omp_matches_loop_reference_on_random_vectors() -> None:
    D = random_unit_rows(300, 40, seed=0) * torch.linspace(0.5, 1.5, 300)[:, None]
    V = torch.randn(5, 40, generator=torch.Generator().manual_seed(1))
    code = omp(D, V, 8)
    for b in range(5):
        support, coef = omp_loop(D.double().numpy(), V[b].double().numpy(), 8)
        assert code.indices[b].tolist() == support
        np.testing.assert_allclose(code.coefficients[b].numpy(), coef, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("method", ["omp", "gradient_pursuit"])
def test_exact_recovery_of_a_signed_combination(method: str) -> None:
    D = random_unit_rows(200, 64, seed=2)
    truth = torch.zeros(200)
    truth[[3, 50, 120]] = torch.tensor([2.0, -1.5, 0.7])
    v = truth @ D
    fn = omp if method == "omp" else gradient_pursuit
    code = fn(D, v, 10 if method == "omp" else 60)
    dense = code.dense()[0]
    rel = float((code.reconstruct(D)[0] - v).norm() / v.norm())
    assert rel < 1e-4
    if method == "omp":
        assert sorted(torch.nonzero(dense).flatten().tolist()) == [3, 50, 120]
        assert torch.allclose(dense, truth, atol=1e-4)


def test_zero_vector_gets_an_empty_code() -> None:
    D = random_unit_rows(20, 8, seed=3)
    for fn in (omp, gradient_pursuit):
        code = fn(D, torch.zeros(8), 4)
        assert (code.indices == -1).all()
        assert (code.coefficients == 0).all()


def test_batched_equals_one_at_a_time() -> None:
    D = random_unit_rows(150, 24, seed=4)
    V = torch.randn(6, 24, generator=torch.Generator().manual_seed(5))
    both = omp(D, V, 6, batch_size=4)
    for b in range(6):
        single = omp(D, V[b], 6)
        assert single.indices[0].tolist() == both.indices[b].tolist()
        assert torch.allclose(single.coefficients[0], both.coefficients[b], atol=1e-5)


def test_several_atoms_per_step_recover_a_planted_code() -> None:
    D = random_unit_rows(300, 96, seed=6)
    truth = torch.zeros(300)
    truth[[7, 40, 99, 150, 201, 288]] = torch.tensor([3.0, -2.5, 2.0, -1.5, 1.2, -1.0])
    code = omp(D, truth @ D, 9, atoms_per_step=3)
    assert torch.allclose(code.dense()[0], truth, atol=1e-4)


def test_summary_counts_and_zero_vector() -> None:
    s = summarize_reconstruction(
        torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]), torch.tensor([1.0, -2.0, 0.0])
    )
    assert s.l0 == 2
    assert s.n_negative == 1
    assert s.rel_error == pytest.approx(1.0)
    assert s.cosine == pytest.approx(2**-0.5)
    z = summarize_reconstruction(torch.zeros(2), torch.zeros(2), torch.zeros(3))
    assert z.cosine is None
    assert z.rel_error is None
    assert z.error_norm == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k must be a positive integer"),
        ({"k": 99}, "k must be at most"),
        ({"vectors": torch.zeros(5)}, "vectors must have width 8"),
        ({"vectors": torch.full((8,), float("inf"))}, "vectors must be finite"),
    ],
)
def test_bad_input(kwargs: dict, match: str) -> None:
    args = {"dictionary": random_unit_rows(20, 8, seed=0), "vectors": torch.ones(8), "k": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        omp(**args)


def test_omp_path_gives_the_cosine_of_every_shorter_fit() -> None:
    D = random_unit_rows(120, 24, seed=11)
    V = torch.randn(4, 24, generator=torch.Generator().manual_seed(12))
    full = omp(D, V, 10, return_path=True)
    assert full.residual_norms is not None
    assert full.residual_norms.shape == (4, 10)
    path = full.path_cosines(V)
    for k in (1, 4, 10):
        short = omp(D, V, k)
        recon = short.reconstruct(D).double()
        cos = (recon * V.double()).sum(1) / (recon.norm(dim=1) * V.double().norm(dim=1))
        np.testing.assert_allclose(path[:, k - 1].numpy(), cos.numpy(), atol=1e-5)
    # Nested supports: the fit never gets worse as k grows.
    assert bool((path[:, 1:] >= path[:, :-1] - 1e-6).all())


def test_omp_path_needs_one_atom_per_step() -> None:
    D = random_unit_rows(20, 8, seed=13)
    with pytest.raises(ValueError, match="return_path needs atoms_per_step=1"):
        omp(D, torch.ones(8), 4, atoms_per_step=2, return_path=True)
    with pytest.raises(ValueError, match="residual_norms is None"):
        omp(D, torch.ones(8), 4).path_cosines(torch.ones(8))
