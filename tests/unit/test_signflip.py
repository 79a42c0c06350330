"""diagnostics.signflip: per-feature sign-flip and paired-t p-values, the Tarone family, BH/BY."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sae_steer_checks.diagnostics import signflip
from sae_steer_checks.diagnostics.signflip import (
    benjamini_hochberg,
    paired_t_pvalues,
    sign_flip_pvalues,
    tarone_family,
)
from tests.helpers.reference_impl import bh_loop, ttest_loop


def test_pvalues_and_qvalues_match_loop_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    pos = torch.rand(30, 12, generator=gen)
    neg = torch.rand(30, 12, generator=gen)
    neg[:, 3] += 0.5
    pos[:, 5] = neg[:, 5]  # no difference at all
    neg[:, 7] = pos[:, 7] - 0.25  # constant difference
    p = paired_t_pvalues(pos - neg)
    ref = ttest_loop(pos.numpy(), neg.numpy())
    np.testing.assert_allclose(p.numpy(), ref, rtol=1e-6, atol=1e-12)
    q = benjamini_hochberg(p)
    np.testing.assert_allclose(q.numpy(), bh_loop(p.tolist()), rtol=1e-12)


def _brute_sign_flip(column: list[float]) -> float:
    """Exact two-sided sign-flip p-value by enumerating every flip of every row."""
    n = len(column)
    observed = abs(sum(column))
    hits = 0
    for code in range(2**n):
        total = sum(-x if (code >> i) & 1 else x for i, x in enumerate(column))
        hits += abs(total) >= observed - 1e-9
    return hits / 2**n


def test_sparse_columns_get_the_exact_sign_flip_pvalue() -> None:
    gen = torch.Generator().manual_seed(7)
    d = torch.zeros(10, 5, dtype=torch.float64)
    d[[0, 3, 5], 0] = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    d[:6, 1] = torch.rand(6, generator=gen, dtype=torch.float64) + 0.1  # all positive: small p
    d[[2, 8], 2] = torch.tensor([1.0, -1.0], dtype=torch.float64)  # cancels: p = 1
    d[:, 3] = torch.randn(10, generator=gen, dtype=torch.float64)  # 10 non-zero, still exact
    p, used = sign_flip_pvalues(d, exact_nnz=12)
    assert used == 0
    for j in range(4):
        assert float(p[j]) == pytest.approx(_brute_sign_flip(d[:, j].tolist()), abs=1e-12)
    assert float(p[4]) == 1.0  # a column of zeros
    assert float(p[1]) == pytest.approx(2 / 2**6)


def _brute_matrix(d: np.ndarray) -> np.ndarray:
    """Exact two-sided sign-flip p-value of every column of ``d [n, m]`` over all 2**n flips."""
    n = d.shape[0]
    signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    flipped = np.abs(signs @ d)
    tol = 1e-9 * n * np.abs(d).max(0)
    return (flipped >= np.abs(d.sum(0)) - tol).sum(0) / 2**n


@pytest.mark.parametrize("n_items", [13, 18])
def test_dense_columns_are_counted_exactly_as_hits_over_2_to_the_n(n_items: int) -> None:
    # 13 items: 2**13 flips fit in the first draws; 18: exact from the stage whose draws exceed 2**9.
    gen = torch.Generator().manual_seed(20 + n_items)
    d = torch.randn(n_items, 40, generator=gen, dtype=torch.float64)
    d[:, :20] += torch.linspace(0.2, 1.5, 20, dtype=torch.float64)  # small p-values among them
    d[:, 20] = torch.tensor([1.0, -1.0] * (n_items // 2) + [3.0] * (n_items % 2), dtype=torch.float64)
    p, _ = sign_flip_pvalues(d, exact_nnz=0)
    brute = torch.from_numpy(_brute_matrix(d.numpy()))
    # a hit count over 2**n flips, not (1 + hits) / (1 + B): every p-value that could be
    # significant is the exact one; others may stop after the first draws, at p > 0.05
    could = brute <= 0.05
    assert int(could.sum()) >= 12
    torch.testing.assert_close(p[could], brute[could], rtol=0, atol=0)
    assert bool(((p == brute) | ((p > 0.05) & (brute > 0.05))).all())
    if n_items == 13:
        torch.testing.assert_close(p, brute, rtol=0, atol=0)  # 2**7 partial sums fit the first draws
    assert float(p.min()) < 1 / 4001


def test_one_sign_columns_get_the_closed_form_without_draws() -> None:
    gen = torch.Generator().manual_seed(21)
    d = torch.zeros(100, 4, dtype=torch.float64)
    d[:, 0] = -(torch.rand(100, generator=gen, dtype=torch.float64) + 0.1)  # 100 non-zero, one sign
    d[:61, 1] = torch.rand(61, generator=gen, dtype=torch.float64) + 0.1  # 61 non-zero
    d[:3, 2] = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)  # 3 non-zero, exact anyway
    d[:, 3] = torch.randn(100, generator=gen, dtype=torch.float64)
    d[:, 3] = d[:, 3].abs()  # a column of one sign beside others, still the closed form
    p, used = sign_flip_pvalues(d)
    assert float(p[0]) == 2.0**-99
    assert float(p[1]) == 2.0**-60
    assert float(p[2]) == 2.0**-2
    assert float(p[3]) == 2.0**-99
    assert used == 0  # no column needed random flips


def test_refinement_reaches_the_resolution_of_the_smallest_holm_bound() -> None:
    gen = torch.Generator().manual_seed(8)
    n, m = 60, 400
    d = torch.randn(n, m, generator=gen, dtype=torch.float64)
    d[:, 0] += 1.5  # strong lean, but both signs: no closed form and too many non-zero for exact
    d[:, 1] += 0.45  # p-value around 1e-3
    assert bool((d[:, 0] < 0).any())
    p, used = sign_flip_pvalues(d, alpha=0.05)
    budget = math.ceil(20 * m / 0.05)  # every column is in the family: 2**-59 <= 0.05 / 400
    assert used == budget
    # no flip reached column 0: its p-value is the floor of ``budget`` flips, below Holm's first bound
    assert float(p[0]) == pytest.approx(1 / (budget + 1), rel=1e-12)
    assert float(p[0]) <= 0.05 / m
    # a capped run cannot get there
    capped, used_capped = sign_flip_pvalues(d, alpha=0.05, max_perm=20_000)
    assert used_capped == 20_000
    assert float(capped[0]) == pytest.approx(1 / 20_001, rel=1e-12)
    # column 1 stops once more than 9 flips are as extreme: its p-value sits near its first estimate
    assert 1e-4 < float(p[1]) < 1e-2
    assert float(p[1]) == pytest.approx(float(capped[1]), rel=0.5)
    # null columns stop early; their p-values stay spread over (0, 1]
    assert float(p[2:].median()) > 0.2


def test_copies_read_the_same_flips_as_the_observed_data() -> None:
    # A label-flipped copy's p-values are those of its own test: in one call with many copies
    # (binary search over sorted thresholds) each copy gets what a call with that copy alone gets.
    gen = torch.Generator().manual_seed(22)
    n, m, c = 60, 100, 24
    d = torch.randn(n, m, generator=gen, dtype=torch.float64) * (torch.rand(n, m, generator=gen) < 0.9)
    d[:, :5] += 1.0
    copies = torch.cat([torch.ones(1, n), 1 - 2 * torch.randint(0, 2, (c - 1, n), generator=gen)]).double()
    kw = {"stages": signflip.flip_schedule(1000, 20_000, 0.05), "exact_nnz": 0, "refine": None}
    clean = signflip.clean_differences(d)
    together, flips = signflip.flip_pvalues(
        clean,
        copies,
        min_flips=torch.zeros(c, dtype=torch.long),
        generator=torch.Generator().manual_seed(5),
        **kw,
    )
    for k in range(c):
        alone, alone_flips = signflip.flip_pvalues(
            clean,
            copies[k : k + 1],
            min_flips=torch.zeros(1, dtype=torch.long),
            generator=torch.Generator().manual_seed(5),
            **kw,
        )
        assert torch.equal(alone[0], together[k])
        assert torch.equal(alone_flips[0], flips[k])


def test_monte_carlo_pvalues_are_valid_under_the_null() -> None:
    gen = torch.Generator().manual_seed(23)
    n, m = 50, 4000
    d = torch.randn(n, m, generator=gen, dtype=torch.float64) * (torch.rand(n, m, generator=gen) < 0.95)
    p, _ = sign_flip_pvalues(d, max_perm=100_000, generator=gen)
    for t in (0.001, 0.01, 0.05, 0.2):
        # binomial SE of the share of 4000 p-values below t, 3.5 of them (columns are independent)
        assert float((p <= t).double().mean()) <= t + 3.5 * math.sqrt(t * (1 - t) / m)


def test_tarone_family_takes_the_smallest_k_with_at_most_k_testable() -> None:
    min_p = torch.tensor([2.0**-5, 2.0**-5, 2.0**-9, 2.0**-12, 1.0])
    # K = 1: 2 below 0.05 (2**-5 = 0.031); K = 2: 0.025 keeps only 2**-9 and 2**-12: 2 <= 2
    assert tarone_family(min_p, 0.05).tolist() == [False, False, True, True, False]
    # BY divides the bound by 1 + 1/2: 0.0167 still keeps both
    assert tarone_family(min_p, 0.05, "by").tolist() == [False, False, True, True, False]
    many = torch.full((200,), 2.0**-11)  # 200 hypotheses that can each reach 4.9e-4
    assert not bool(tarone_family(many, 0.05).any())  # 0.05 / 103 < 4.9e-4: none can pass
    assert bool(tarone_family(many[:100], 0.05).all())
    assert tarone_family(torch.zeros(0), 0.05).numel() == 0
