"""Retention: per-item slopes, the ratio test and the status they imply (the gate itself: test_stats_gate)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from sae_steer_checks.diagnostics.retention import NOT_STEERING, retention_check, score_vectors
from sae_steer_checks.stats import (
    item_slopes_summary,
    min_random_directions,
    random_directions,
    ratio_interval,
    ratio_test,
)
from sae_steer_checks.stats.draws import stream_seed
from tests.helpers.reference_impl import slope_loop

D = 16


pytestmark = pytest.mark.usefixtures("one_thread")


class ItemReadout:
    """Planted per-item behaviour: item i scores ``a_i . u + c_i`` with ``a_i = w + noise_i``."""

    def __init__(self, w: Tensor, n_items: int, noise: float, seed: int = 0, curve: float = 0.0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.a = w[None, :] + noise * torch.randn(n_items, D, generator=gen, dtype=torch.float64)
        self.c = torch.randn(n_items, generator=gen, dtype=torch.float64)
        self.curve = curve
        self.calls = 0

    def score_batch(self, us: Tensor) -> Tensor:
        self.calls += 1
        lin = us.double() @ self.a.T + self.c
        return lin + self.curve * lin**2

    def __call__(self, u: Tensor) -> Tensor:
        return self.score_batch(u[None])[0]


def _w() -> Tensor:
    w = torch.zeros(D, dtype=torch.float64)
    w[0] = 1.0
    return w


def _vectors(keep: float) -> dict[str, Tensor]:
    v = torch.zeros(D)
    v[0], v[1] = 2.0, 1.0
    kept = torch.zeros(D)
    kept[0], kept[2] = 2.0 * keep, 3.0
    return {"original": v, "sae": kept, "signed": v.clone()}


def test_per_item_slopes_and_ratio_match_a_naive_loop() -> None:
    score = ItemReadout(_w(), 40, noise=0.3, curve=0.05)
    ms = [-2.0, -1.0, 0.0, 1.0, 3.0]
    kept = retention_check(score, _vectors(0.5), ms)
    # one batched call: 3 vectors and the null's random directions x 5 multipliers (0 shared by all)
    assert score.calls == 1
    assert kept.n_items == 40
    per_item = {}
    for name, v in _vectors(0.5).items():
        rows = [score(m * v) for m in ms]
        loop = [slope_loop(ms, [float(r[i]) for r in rows]) for i in range(40)]
        per_item[name] = torch.tensor(loop, dtype=torch.float64)
        assert kept.slopes[name].slope == pytest.approx(float(per_item[name].mean()), rel=1e-9)
        estimate = kept.slopes[name].estimate
        assert estimate is not None
        assert estimate.se == pytest.approx(float(per_item[name].std()) / math.sqrt(40), rel=1e-9)
        assert estimate.df == 39
    # the ratio test draws its bootstrap from its own stream of the seed (None: 0)
    gen = torch.Generator().manual_seed(stream_seed(0, "retention.ratio.sae"))
    expected = ratio_test(per_item["sae"], per_item["original"], 0.8, level=0.9, generator=gen)
    got = kept.ratios["sae"]
    assert (got.ratio, got.ci_low, got.ci_high, got.p_value, got.p_value_above) == pytest.approx(
        (expected.ratio, expected.ci_low, expected.ci_high, expected.p_value, expected.p_value_above)
    )
    assert got.method == "bootstrap_t"
    assert kept.ratio("sae") == pytest.approx(expected.ratio)
    # Fieller stays available: its interval is the old one (at 90%: 5% on each side, as the tests)
    fieller = retention_check(score, _vectors(0.5), ms, method="fieller").ratios["sae"]
    old = ratio_interval(per_item["sae"], per_item["original"], level=0.9)
    assert (fieller.ci_low, fieller.ci_high) == pytest.approx((old.ci_low, old.ci_high))


def test_status_follows_the_one_sided_tests() -> None:
    lost = retention_check(ItemReadout(_w(), 60, noise=0.2), _vectors(0.25))
    assert lost.steers
    assert lost.statuses["sae"][0] == "problem"
    assert lost.ratios["sae"].p_value <= 0.05
    assert lost.ratios["sae"].ci_high < 0.8
    assert "one-sided 5% test rejects a ratio at or above it" in lost.statuses["sae"][1]
    assert lost.statuses["signed"][0] == "fine"  # the same vector: ratio 1, every contrast 0.2 b_i
    assert lost.ratios["signed"].p_value_above <= 0.05
    assert "one-sided 5% test rejects a ratio below it" in lost.statuses["signed"][1]
    assert (lost.status, lost.reason) == lost.statuses["sae"]
    # a noisy 0.86: neither one-sided test separates it from 0.8
    unsure = retention_check(ItemReadout(_w(), 30, noise=0.3, seed=3), _vectors(0.9), [-1.0, 1.0])
    assert unsure.steers
    ratio = unsure.ratios["sae"]
    assert ratio.p_value > 0.05
    assert ratio.p_value_above > 0.05
    assert ratio.ci_low < 0.8 <= ratio.ci_high
    assert unsure.status == "inconclusive"
    assert unsure.reason.startswith("neither one-sided 5% test separates the ratio")
    strict = retention_check(ItemReadout(_w(), 60, noise=0.2), _vectors(0.25), threshold=0.1)
    assert strict.status == "fine"
    # a stricter level needs more evidence: the same data, "problem" at 5% but not at 1%
    near = retention_check(ItemReadout(_w(), 12, noise=0.3, seed=2), _vectors(0.5))
    assert 0.01 < near.ratios["sae"].p_value <= 0.05
    assert near.status == "problem"
    careful = retention_check(
        ItemReadout(_w(), 12, noise=0.3, seed=2), _vectors(0.5), n_random=100, alpha=0.01
    )
    assert careful.steers
    assert careful.status == "inconclusive"
    assert "one-sided 1% test" in careful.reason


def test_a_vector_that_does_not_steer_is_inconclusive() -> None:
    # the behaviour reads a direction orthogonal to the vector: only item noise moves the score
    w = torch.zeros(D, dtype=torch.float64)
    w[5] = 1.0
    kept = retention_check(ItemReadout(w, 30, noise=0.2), _vectors(0.25))
    assert not kept.steers
    assert kept.statuses["sae"] == ("inconclusive", NOT_STEERING)
    report = kept.to_dict()
    assert report["status"] == "inconclusive"
    assert report["reason"] == NOT_STEERING
    # 40 isotropic directions by default, pooled into one Monte Carlo p-value
    assert report["null"]["n"] == 40
    assert report["null"]["kinds"] == ["isotropic"] * 40
    assert report["null"]["p_value"] > 0.05


def test_null_and_report_keys() -> None:
    acts = torch.randn(100, D, generator=torch.Generator().manual_seed(1)) * torch.linspace(0.1, 2.0, D)
    kept = retention_check(
        ItemReadout(_w(), 30, noise=0.2), _vectors(1.0), activations=acts, method="bootstrap", n_boot=500
    )
    assert kept.null is not None
    assert kept.null.kinds == ("isotropic",) * 20 + ("covariance",) * 20
    assert kept.null.percentile > 95.0
    assert kept.null.p_value == pytest.approx(1 / 41)  # above every random |slope|
    d = kept.to_dict()
    assert {"multipliers", "slopes", "stderr", "scores", "ratio_sae", "ratio_signed"} <= set(d)
    assert set(d["null"]) == {"n", "kinds", "slopes", "mean", "sd", "abs_q95", "percentile", "p_value"}
    assert set(d["ratio_intervals"]["sae"]) == {
        "ratio", "ci_low", "ci_high", "bounded", "method", "level", "p_value", "p_value_above", "alpha"
    }  # fmt: skip
    assert d["ratio_intervals"]["sae"]["method"] == "bootstrap"
    assert d["ratio_intervals"]["sae"]["alpha"] == 0.05
    assert d["slope_estimates"]["original"]["df"] == 29
    assert d["stderr"]["original"] == pytest.approx(d["slope_estimates"]["original"]["se"])
    assert d["threshold"] == 0.8
    assert d["n_items"] == 30
    scores = ItemReadout(_w(), 30, noise=0.2)(-_vectors(1.0)["original"])  # multiplier -1, same seed
    assert d["slope_estimates"]["original"]["score_se"][0] == pytest.approx(
        float(scores.std()) / math.sqrt(30)
    )
    assert d["statuses"]["sae"]["status"] == "fine"  # kept fully: the ratio (about 1) clears 0.8
    assert d["ratio_intervals"]["sae"]["p_value_above"] <= 0.05
    assert set(d) == {
        "multipliers", "slopes", "stderr", "scores", "slope_estimates", "null", "steers", "ratio_intervals",
        "statuses", "status", "reason", "threshold", "n_items", "ratio_sae", "ratio_signed",
    }  # fmt: skip


def test_the_gate_needs_enough_random_directions_for_alpha() -> None:
    score = ItemReadout(_w(), 20, noise=0.2)
    acts = torch.randn(50, D, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match=r"n_random=8 gives 16 random directions.*use n_random >= 10"):
        retention_check(score, _vectors(0.5), n_random=8, activations=acts)
    with pytest.raises(ValueError, match=r"n_random=18 gives 18 random directions.*use n_random >= 19"):
        retention_check(score, _vectors(0.5), n_random=18)
    # 19 is enough at 5% (p can reach 1/20); 99 at 1%
    assert retention_check(score, _vectors(0.5), n_random=19).steers
    with pytest.raises(ValueError, match="n_random >= 99"):
        retention_check(score, _vectors(0.5), n_random=40, alpha=0.01)
    with pytest.raises(ValueError, match="alpha"):
        retention_check(score, _vectors(0.5), alpha=0.0)
    assert min_random_directions(0.05) == 19
    assert min_random_directions(0.01) == 99


def test_streams_are_independent_and_reproducible() -> None:
    score = ItemReadout(_w(), 20, noise=0.2)
    v = _vectors(0.5)
    one, again = retention_check(score, v, generator=5), retention_check(score, v, generator=5)
    assert one.null is not None
    assert again.null is not None
    assert one.null.slopes == again.null.slopes
    assert one.ratios == again.ratios
    # the random directions are not the first draws of the seed itself (another null's)
    plain, _ = random_directions(v["original"], 40, generator=5)
    plain_slopes = fit_slope_of(score, plain)
    assert not torch.allclose(torch.tensor(one.null.slopes, dtype=torch.float64), plain_slopes)
    # "sae" and "signed" draw their bootstraps from different streams
    gen_sae = torch.Generator().manual_seed(stream_seed(5, "retention.ratio.sae"))
    gen_signed = torch.Generator().manual_seed(stream_seed(5, "retention.ratio.signed"))
    assert not torch.equal(torch.rand(5, generator=gen_sae), torch.rand(5, generator=gen_signed))
    # a generator object works too, and is consumed
    gen = torch.Generator().manual_seed(5)
    first = retention_check(score, v, generator=gen)
    second = retention_check(score, v, generator=gen)
    assert first.null is not None
    assert second.null is not None
    assert first.null.slopes != second.null.slopes


def fit_slope_of(score: ItemReadout, directions: Tensor) -> Tensor:
    """Mean per-item slope of each direction over multipliers -1, 0, 1 (a linear score: a . d)."""
    return (directions.double() @ score.a.T).mean(1)


def test_float_scores_keep_the_old_ratios_but_give_no_interval() -> None:
    readout = torch.tensor([1.0, 0.0])
    kept = retention_check(
        lambda u: float(readout @ u),
        {
            "original": torch.tensor([2.0, 1.0]),
            "sae": torch.tensor([0.5, 5.0]),
            "signed": torch.tensor([2.0, 0.0]),
        },
    )
    assert kept.ratio("sae") == pytest.approx(0.25)
    assert kept.ratio("signed") == pytest.approx(1.0)
    assert kept.n_items == 1
    assert kept.null is None
    assert kept.status == "inconclusive"
    d = kept.to_dict()
    assert d["ratio_sae"] == pytest.approx(0.25)
    assert d["slopes"]["original"] == pytest.approx(2.0)
    assert d["multipliers"] == [-1.0, 0.0, 1.0]
    assert d["stderr"]["original"] is None


def test_zero_original_slope_gives_undefined_ratio() -> None:
    kept = retention_check(lambda u: float(u.sum()), {"original": torch.zeros(2), "sae": torch.ones(2)})
    assert kept.ratio("sae") is None
    per_item = retention_check(
        ItemReadout(_w(), 10, noise=0.1), {"original": torch.zeros(D), "sae": torch.ones(D)}
    )
    assert not per_item.steers
    assert per_item.status == "inconclusive"


def test_bad_multipliers_and_scores() -> None:
    with pytest.raises(ValueError, match="two distinct values"):
        retention_check(lambda u: 0.0, {"original": torch.ones(2)}, [1.0, 1.0])
    with pytest.raises(ValueError, match="non-finite score"):
        retention_check(lambda u: float("nan"), {"original": torch.ones(2)}, [0.0, 1.0])
    with pytest.raises(ValueError, match="must include 'original'"):
        retention_check(lambda u: 0.0, {"sae": torch.ones(2)})
    with pytest.raises(ValueError, match="threshold"):
        retention_check(lambda u: 0.0, {"original": torch.ones(2)}, threshold=1.5)
    with pytest.raises(ValueError, match="one score or one per item"):
        score_vectors(lambda u: torch.zeros(2, 2), torch.ones(3, 2))


def test_item_level_se_is_what_the_slope_reports() -> None:
    # the old fit took its SE from the residuals of the few (multiplier, mean score) points: zero for a
    # linear score however noisy the items; the item-level SE is not
    score = ItemReadout(_w(), 25, noise=0.5)
    kept = retention_check(score, _vectors(0.5), [-1.0, 0.0, 1.0, 2.0])
    slopes = kept.slopes["original"].item_slopes
    assert slopes is not None
    assert kept.slopes["original"].stderr == pytest.approx(item_slopes_summary(slopes).se)
    assert kept.slopes["original"].stderr is not None
    assert kept.slopes["original"].stderr > 0.05


def test_the_retention_module_is_not_shadowed_by_a_function() -> None:
    import sae_steer_checks.diagnostics as diagnostics
    import sae_steer_checks.diagnostics.retention as module

    assert module.retention_check is retention_check
    assert diagnostics.retention_check is retention_check
