"""Unit tests of negative-leaning features and the paired test with FDR control."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_steer_checks.diagnostics.leaning import (
    benjamini_hochberg,
    leaning_check,
    leaning_from_acts,
    paired_t_pvalues,
    sign_flip_pvalues,
)
from tests.helpers.hand_saes import make_sae, orthonormal_rows
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


def test_fractions_count_active_and_significant_features() -> None:
    gen = torch.Generator().manual_seed(1)
    n = 200
    base = torch.rand(n, 6, generator=gen)
    pos, neg = base.clone(), base.clone()
    neg[:, 0] += 1.0  # strongly negative-leaning
    pos[:, 1] += 1.0  # strongly positive-leaning
    noise = 0.01 * torch.rand(n, 6, generator=gen)
    neg[:, 2] += noise[:, 2]  # slightly more on negatives but indistinguishable from noise
    pos[:, 2] += noise[:, 3]
    pos[:, 4] = 0.0  # feature 4 and 5 never fire
    neg[:, 4] = 0.0
    pos[:, 5] = neg[:, 5] = 0.0
    result = leaning_from_acts(pos, neg, alpha=0.05, vector_acts=torch.tensor([0.0, 1.0, 0.0, 0, 0, 0]))
    summary = result.to_dict()
    assert summary["n_active"] == 4
    assert bool(result.significant[0])
    assert bool(result.significant[1])
    assert not bool(result.significant[4])
    assert summary["significant_fraction"] == pytest.approx(
        summary["n_significant_negative"] / summary["n_significant"]
    )
    assert summary["dropped_by_encoder"][0] == 0
    assert 1 not in summary["dropped_by_encoder"]


def test_single_pair_has_nothing_significant() -> None:
    result = leaning_from_acts(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]))
    assert result.to_dict()["n_significant"] == 0
    assert result.to_dict()["fraction"] == 0.5


def test_leaning_check_encodes_with_the_sae() -> None:
    W = orthonormal_rows(3, 5, seed=3)
    sae = make_sae(W, torch.zeros(3), architecture="relu")
    gen = torch.Generator().manual_seed(4)
    ctx = torch.rand(50, 1, generator=gen)
    pos = ctx * W[0] + 2.0 * W[1]
    neg = ctx * W[0] + 2.0 * W[2]
    result = leaning_check(sae, pos, neg)
    assert result.mean_pos[1] == pytest.approx(2.0, abs=1e-5)
    assert result.mean_neg[2] == pytest.approx(2.0, abs=1e-5)
    assert result.negative.tolist() == [False, False, True]


def test_mismatched_pairs_are_rejected() -> None:
    sae = make_sae(orthonormal_rows(3, 5, seed=3), architecture="relu")
    with pytest.raises(ValueError, match="same number of paired rows"):
        leaning_check(sae, torch.zeros(4, 5), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="neg must have shape"):
        leaning_check(sae, torch.zeros(4, 5), torch.zeros(4, 6))
    with pytest.raises(ValueError, match="alpha must be a number in"):
        leaning_from_acts(torch.zeros(2, 2), torch.zeros(2, 2), alpha=1.5)


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


def test_refinement_resolves_pvalues_below_the_first_round_floor() -> None:
    gen = torch.Generator().manual_seed(8)
    d = torch.randn(60, 400, generator=gen, dtype=torch.float64)
    d[:, 0] += 3.0  # overwhelming lean: no flip reaches it
    p, used = sign_flip_pvalues(d, n_perm=500, max_perm=8000, alpha=0.05, exact_nnz=0)
    assert used == 8000
    assert float(p[0]) == pytest.approx(1 / 8001)
    # A column refined only because of its first round keeps a p-value near its first-round one.
    assert float(p[1:].min()) >= 1 / 8001
    assert float(p[1:].median()) > 0.2


def test_sign_flip_default_reports_interval_null_and_min_effect() -> None:
    gen = torch.Generator().manual_seed(9)
    n = 60
    base = torch.rand(n, 8, generator=gen) + 0.5
    pos, neg = base + 0.3 * torch.rand(n, 8, generator=gen), base + 0.3 * torch.rand(n, 8, generator=gen)
    neg[:, 0] += 2.0  # strong negative lean
    neg[:, 1] += 1e-4  # a crosstalk-level lean: below the minimum effect
    result = leaning_from_acts(pos, neg, vector_acts=torch.ones(8).index_fill_(0, torch.tensor([0]), 0.0))
    summary = result.to_dict()
    assert summary["test"] == "sign_flip"
    assert summary["fdr_method"] == "bh"
    assert summary["n_items"] == n
    low, high = summary["fraction_interval"]["low"], summary["fraction_interval"]["high"]
    assert low <= summary["fraction"] <= high
    null = summary["fraction_null"]
    assert 0.0 <= null["percentile"] <= 100.0
    assert null["q05"] <= null["mean"] <= null["q95"]
    assert not bool(result.large_effect[1])
    assert bool(result.large_effect[0])
    assert summary["min_effect"] == 0.1
    assert result.flagged == (0,)
    assert result.verdict() == "problem"


def test_choice_swapped_copies_count_as_one_item() -> None:
    gen = torch.Generator().manual_seed(10)
    pos, neg = torch.rand(30, 6, generator=gen), torch.rand(30, 6, generator=gen)
    neg[:, 2] += 0.1
    once = leaning_from_acts(pos, neg, generator=1)
    twice = leaning_from_acts(
        torch.cat([pos, pos]), torch.cat([neg, neg]), item_ids=torch.arange(60) % 30, generator=1
    )
    assert twice.n_items == 30
    assert twice.n_pairs == 60
    assert torch.equal(once.p_values, twice.p_values)
    assert once.to_dict()["fraction_null"] == twice.to_dict()["fraction_null"]
    # Without item ids the copies would pass for independent items and shrink every p-value.
    naive = leaning_from_acts(torch.cat([pos, pos]), torch.cat([neg, neg]), generator=1)
    assert float(naive.p_values[2]) < float(once.p_values[2])


def test_by_is_more_conservative_than_bh_and_t_stays_available() -> None:
    gen = torch.Generator().manual_seed(11)
    pos, neg = torch.rand(40, 50, generator=gen), torch.rand(40, 50, generator=gen)
    neg[:, :10] += torch.linspace(0.05, 0.5, 10)
    bh = leaning_from_acts(pos, neg, fdr_method="bh")
    by = leaning_from_acts(pos, neg, fdr_method="by")
    assert bool((by.q_values >= bh.q_values - 1e-15).all())
    assert int(by.significant.sum()) <= int(bh.significant.sum())
    t = leaning_from_acts(pos, neg, test="t")
    np.testing.assert_allclose(t.p_values.numpy(), paired_t_pvalues(pos - neg).numpy(), rtol=1e-6)
    assert t.to_dict()["test"] == "t"
    assert t.to_dict()["n_perm"] == 0


def test_no_lean_is_inconclusive_and_bad_options_are_rejected() -> None:
    same = torch.rand(20, 4, generator=torch.Generator().manual_seed(12))
    result = leaning_from_acts(same, same.clone())
    assert result.verdict() == "inconclusive"
    assert result.to_dict()["n_significant"] == 0
    with pytest.raises(ValueError, match="test must be"):
        leaning_from_acts(same, same, test="wilcoxon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fdr_method must be"):
        leaning_from_acts(same, same, fdr_method="holm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_effect must be"):
        leaning_from_acts(same, same, min_effect=-1.0)


def test_flagged_count_has_a_holm_lower_bound_and_a_label_flip_null() -> None:
    gen = torch.Generator().manual_seed(4)
    n, d = 40, 30
    pos = torch.rand(n, d, generator=gen) + 1.0
    neg = torch.rand(n, d, generator=gen) + 1.0
    neg[:, 0] += 2.0  # feature 0 leans hard toward the negative prompts
    vector_acts = torch.zeros(d)
    leaning = leaning_from_acts(pos, neg, vector_acts=vector_acts, n_null_tests=40, generator=0)
    out = leaning.to_dict()
    assert 0 in leaning.flagged
    assert set(leaning.confirmed) <= set(leaning.flagged)
    assert 0 in leaning.confirmed
    low, high = out["flagged_interval"]["low"], out["flagged_interval"]["high"]
    assert low <= len(leaning.flagged) <= high
    null = out["flagged_null"]
    assert null["n"] == 40
    assert null["q95"] <= 1  # label flips flag (almost) nothing
    assert out["verdict"] == "problem"
    # without the null draws the bound is zero; on pure noise nothing is confirmed
    quiet = leaning_from_acts(
        pos[:, 1:], neg[:, 1:], vector_acts=vector_acts[1:], n_null_tests=0, generator=0
    )
    assert quiet.to_dict()["flagged_null"] is None
    assert quiet.confirmed == ()
    assert quiet.verdict() != "problem"
    with pytest.raises(ValueError, match="n_null_tests"):
        leaning_from_acts(pos, neg, n_null_tests=-1)
