"""diagnostics.leaning: negative-leaning features, the tested family, the FDR-controlled verdict, nulls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_steer_checks.diagnostics.leaning import flipped_vector_codes, leaning_check, leaning_from_acts
from sae_steer_checks.diagnostics.signflip import paired_t_pvalues
from sae_steer_checks.sae.protocol import encode_in_sae_space
from tests.helpers.hand_saes import make_sae, orthonormal_rows


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


def test_family_leaves_out_features_with_too_few_nonzero_items() -> None:
    gen = torch.Generator().manual_seed(24)
    n, d = 30, 60
    pos = torch.rand(n, d, generator=gen) + 0.5
    neg = torch.rand(n, d, generator=gen) + 0.5
    # features 0-9 fire in 4 items only (both sets): at best p = 2**-3, never below 0.05 / 50
    pos[4:, :10] = 0.0
    neg[4:, :10] = 0.0
    neg[:4, 0] += 3.0  # leans hard, but on 4 items
    result = leaning_from_acts(pos, neg, n_null_tests=0)
    assert result.tested is not None
    assert not bool(result.tested[:10].any())
    assert bool(result.tested[10:].all())
    summary = result.to_dict()
    assert summary["n_tested"] == 50
    assert summary["n_active"] == 60
    assert float(result.p_values[0]) == 2.0**-3  # reported, but outside the family: q = 1
    assert float(result.q_values[0]) == 1.0
    # a feature that cannot reach the minimum effect whatever its signs is left out too
    pos2, neg2 = pos.clone(), neg.clone()
    neg2[:, 20] = pos2[:, 20] + 1e-3 * (1 + torch.rand(n, generator=gen))  # |d| << 0.1 * typical
    small = leaning_from_acts(pos2, neg2, n_null_tests=0)
    assert not bool(small.tested[20])
    assert small.large_effect is not None
    assert not bool(small.large_effect[20])


def test_null_recomputes_eligibility_from_each_flipped_vector() -> None:
    # Six items, one testable feature (0): a label-flipped copy flags it exactly when its flipped
    # differences are all negative (p = 2**-5 <= 0.05, family of one), and SAE(flipped v) drops it.
    gen = torch.Generator().manual_seed(25)
    n, d = 6, 5
    pos = torch.rand(n, d, generator=gen) + 1.0
    neg = pos.clone()
    neg[:, 0] = pos[:, 0] - (1.0 + torch.rand(n, generator=gen))  # d > 0: leans positive
    neg[:3, 1:] += 0.5  # the others have 3 non-zero differences: outside the family
    vector_acts = torch.zeros(d)  # observed SAE(v) drops every feature
    seen: list[torch.Tensor] = []

    def codes(signs: torch.Tensor) -> torch.Tensor:
        seen.append(signs.clone())
        out = torch.zeros(signs.shape[0], d)
        out[::2, 0] = 1.0  # SAE(flipped v) keeps feature 0 in every other copy
        return out

    result = leaning_from_acts(
        pos, neg, vector_acts=vector_acts, n_null_tests=1000, null_vector_codes=codes, generator=3
    )
    assert result.to_dict()["n_tested"] == 1
    (signs,) = seen
    assert signs.shape == (1000, n)
    assert signs.dtype == torch.float64
    assert set(signs.unique().tolist()) == {-1.0, 1.0}
    all_negative = (signs < 0).all(1)  # flipped differences s_i * d_i all < 0
    expected = all_negative & (torch.arange(1000) % 2 == 1)
    assert 0 < int(expected.sum()) < int(all_negative.sum())
    assert result.flagged_null is not None
    assert result.flagged_null.mean * 1000 == pytest.approx(float(expected.sum()))
    # Without the codes every copy reuses the observed mask (all dropped): more copies count.
    fallback = leaning_from_acts(pos, neg, vector_acts=vector_acts, n_null_tests=1000, generator=3)
    assert fallback.flagged_null is not None
    assert fallback.flagged_null.mean * 1000 == pytest.approx(float(all_negative.sum()))
    assert int(all_negative.sum()) > 0
    # The observed feature leans positive: it is not flagged, whatever the copies do.
    assert result.flagged == ()


def test_flipped_vector_codes_encode_the_label_flipped_caa_vector() -> None:
    W = orthonormal_rows(4, 6, seed=5)
    sae = make_sae(W, torch.zeros(4), architecture="relu")
    gen = torch.Generator().manual_seed(26)
    pos, neg = torch.randn(8, 6, generator=gen), torch.randn(8, 6, generator=gen)
    item_ids = torch.arange(8) % 4  # items 0-3, each with a swapped copy
    diffs = torch.stack([(pos - neg)[item_ids == i].mean(0) for i in range(4)])
    codes = flipped_vector_codes(sae, diffs)
    signs = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0]], dtype=torch.float64)
    got = codes(signs)
    for row, s in zip(got, signs, strict=True):
        v = (s[:, None].float() * diffs).mean(0)
        torch.testing.assert_close(row, encode_in_sae_space(sae, v[None])[0])
    # leaning_check passes the same map: its null agrees with leaning_from_acts given those codes
    f_v = encode_in_sae_space(sae, diffs.mean(0)[None])[0]
    via_sae = leaning_check(sae, pos, neg, vector_acts=f_v, item_ids=item_ids, n_null_tests=20, generator=1)
    acts = leaning_from_acts(
        sae.encode(pos).detach(),
        sae.encode(neg).detach(),
        vector_acts=f_v,
        item_ids=item_ids,
        n_null_tests=20,
        null_vector_codes=codes,
        generator=1,
    )
    assert via_sae.to_dict()["flagged_null"] == acts.to_dict()["flagged_null"]


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
    assert result.status == "problem"


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


def test_no_candidate_is_fine_and_bad_options_are_rejected() -> None:
    same = torch.rand(20, 4, generator=torch.Generator().manual_seed(12))
    result = leaning_from_acts(same, same.clone())
    # no feature leans negative: nothing the SAE could drop
    assert result.candidates == ()
    assert result.status == "fine"
    assert result.to_dict()["n_significant"] == 0
    with pytest.raises(ValueError, match="test must be"):
        leaning_from_acts(same, same, test="wilcoxon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fdr_method must be"):
        leaning_from_acts(same, same, fdr_method="holm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_effect must be"):
        leaning_from_acts(same, same, min_effect=-1.0)
    with pytest.raises(ValueError, match="max_perm must be"):
        leaning_from_acts(same, same, max_perm=0)
    with pytest.raises(ValueError, match="null_vector_codes must return"):
        leaning_from_acts(
            same, same + 0.1, vector_acts=torch.zeros(4), null_vector_codes=lambda s: torch.zeros(len(s), 3)
        )


def test_flagged_count_has_a_holm_lower_bound_and_a_label_flip_null() -> None:
    gen = torch.Generator().manual_seed(4)
    n, d = 40, 30
    pos = torch.rand(n, d, generator=gen) + 1.0
    neg = torch.rand(n, d, generator=gen) + 1.0
    neg[:, :2] += 2.0  # features 0 and 1 lean hard toward the negative prompts
    vector_acts = torch.zeros(d)
    leaning = leaning_from_acts(pos, neg, vector_acts=vector_acts, n_null_tests=40, generator=0)
    out = leaning.to_dict()
    assert {0, 1} <= set(leaning.flagged)
    assert set(leaning.confirmed) <= set(leaning.flagged)
    assert {0, 1} <= set(leaning.confirmed)
    low, high = out["flagged_interval"]["low"], out["flagged_interval"]["high"]
    assert low <= len(leaning.flagged) <= high
    null = out["flagged_null"]
    assert null["n"] == 40
    # label flips flag (almost) nothing: a flipped copy's count is at most 1 in a few copies
    assert null["q95"] <= 1
    assert null["mean"] <= 0.2
    assert out["verdict"] == "problem"
    # without the null draws the bound is zero; on pure noise nothing is confirmed
    quiet = leaning_from_acts(
        pos[:, 2:], neg[:, 2:], vector_acts=vector_acts[2:], n_null_tests=0, generator=0
    )
    assert quiet.to_dict()["flagged_null"] is None
    assert quiet.confirmed == ()
    assert quiet.status != "problem"
    with pytest.raises(ValueError, match="n_null_tests"):
        leaning_from_acts(pos, neg, n_null_tests=-1)


def _noise_codes(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(n, d, generator=gen) + 0.5
    noise = torch.rand(n, d, generator=gen)
    flip = torch.rand(n, d, generator=gen) < 0.5
    return base + noise * flip, base + noise * ~flip  # symmetric differences, none leans


def test_verdict_is_never_fine_when_candidates_cannot_be_tested() -> None:
    # 12 items: no p-value is below 2**-11 = 4.9e-4, so with 200 active features (Holm's first
    # bound 2.5e-4) no feature can be tested, not even one leaning in every item.
    pos, neg = _noise_codes(12, 200, seed=27)
    neg[:, 0] += 2.0
    vector_acts = torch.ones(200)
    vector_acts[0] = 0.0
    wide = leaning_from_acts(pos, neg, vector_acts=vector_acts, generator=0)
    summary = wide.to_dict()
    assert 0 in wide.candidates
    assert summary["n_tested"] == 0
    assert summary["n_untested_candidates"] >= 1
    assert summary["n_significant"] == 0
    assert summary["verdict"] == "inconclusive"
    # Among 20 features the same lean is testable (2**-11 <= 0.05 / 20) and found.
    narrow = leaning_from_acts(pos[:, :20], neg[:, :20], vector_acts=vector_acts[:20], generator=0)
    assert narrow.to_dict()["n_tested"] == 20
    assert float(narrow.p_values[0]) == 2.0**-11
    assert narrow.confirmed == (0,)
    assert narrow.status == "problem"


def test_verdict_is_fine_only_without_candidates() -> None:
    pos, neg = _noise_codes(40, 30, seed=28)
    pos[:, 1] += 3.0  # a significant positive lean elsewhere does not make the answer "fine"
    vector_acts = torch.zeros(30)
    result = leaning_from_acts(pos, neg, vector_acts=vector_acts, generator=0)
    assert bool(result.significant[1])
    assert result.flagged == ()
    assert result.candidates  # noise leaves some negative leans past the minimum effect
    assert result.untested_candidates == ()
    # candidates that do not reach significance are not shown to be kept: no power, no "fine"
    assert result.status == "inconclusive"
    # SAE(v) keeps every negative-leaning feature: no candidate, and the answer is "fine"
    kept = leaning_from_acts(pos, neg, vector_acts=torch.ones(30), generator=0)
    assert kept.candidates == ()
    assert kept.status == "fine"
    # The same data with a candidate that no outcome could flag (2 non-zero items) is inconclusive.
    pos[:, 2] = neg[:, 2]
    neg[:2, 2] += 5.0
    untestable = leaning_from_acts(pos, neg, vector_acts=vector_acts, generator=0)
    assert untestable.untested_candidates == (2,)
    assert untestable.status == "inconclusive"
