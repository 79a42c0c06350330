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
)
from tests.hand_saes import make_sae, orthonormal_rows
from tests.reference_impl import bh_loop, ttest_loop


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
