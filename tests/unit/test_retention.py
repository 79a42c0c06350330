"""Retention: per-item slopes, the random-direction null, ratio intervals and the status they imply."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from sae_steer_checks.diagnostics.retention import NOT_STEERING, retention, score_vectors
from sae_steer_checks.stats import item_slopes_summary, random_directions, ratio_interval
from tests.helpers.reference_impl import slope_loop

D = 16


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
    kept = retention(score, _vectors(0.5), ms)
    # multiplier 0 is shared by every vector: 3 vectors x 5 multipliers in one call, then the null
    assert score.calls == 2
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
    expected = ratio_interval(per_item["sae"], per_item["original"])
    got = kept.ratios["sae"]
    assert (got.ratio, got.ci_low, got.ci_high) == pytest.approx(
        (expected.ratio, expected.ci_low, expected.ci_high)
    )
    assert kept.ratio("sae") == pytest.approx(expected.ratio)


def test_status_follows_the_ratio_interval() -> None:
    lost = retention(ItemReadout(_w(), 60, noise=0.2), _vectors(0.25))
    assert lost.steers
    assert lost.statuses["sae"][0] == "problem"
    assert lost.ratios["sae"].ci_high < 0.8
    assert lost.statuses["signed"][0] == "fine"  # the same vector: ratio 1 with a zero-width interval
    assert (lost.status, lost.reason) == lost.statuses["sae"]
    # a noisy 0.9: the interval reaches both sides of the threshold
    unsure = retention(ItemReadout(_w(), 30, noise=0.3, seed=3), _vectors(0.9), [-1.0, 1.0])
    assert unsure.steers
    ratio = unsure.ratios["sae"]
    assert ratio.ci_low < 0.8 <= ratio.ci_high
    assert unsure.status == "inconclusive"
    strict = retention(ItemReadout(_w(), 60, noise=0.2), _vectors(0.25), threshold=0.1)
    assert strict.status == "fine"


def test_a_vector_that_does_not_steer_is_inconclusive() -> None:
    # the behaviour reads a direction orthogonal to the vector: only item noise moves the score
    w = torch.zeros(D, dtype=torch.float64)
    w[5] = 1.0
    kept = retention(ItemReadout(w, 30, noise=0.2), _vectors(0.25))
    assert not kept.steers
    assert kept.statuses["sae"] == ("inconclusive", NOT_STEERING)
    report = kept.to_dict()
    assert report["status"] == "inconclusive"
    assert report["reason"] == NOT_STEERING
    assert report["null"]["n"] == 8
    assert report["null"]["kinds"] == ["isotropic"] * 8


def test_null_and_report_keys() -> None:
    acts = torch.randn(100, D, generator=torch.Generator().manual_seed(1)) * torch.linspace(0.1, 2.0, D)
    kept = retention(
        ItemReadout(_w(), 30, noise=0.2), _vectors(1.0), activations=acts, method="bootstrap", n_boot=500
    )
    assert kept.null is not None
    assert kept.null.kinds == ("isotropic",) * 8 + ("covariance",) * 8
    assert kept.null.percentile > 95.0
    d = kept.to_dict()
    assert {"multipliers", "slopes", "stderr", "scores", "ratio_sae", "ratio_signed"} <= set(d)
    assert d["ratio_intervals"]["sae"]["method"] == "bootstrap"
    assert d["slope_estimates"]["original"]["df"] == 29
    assert d["stderr"]["original"] == pytest.approx(d["slope_estimates"]["original"]["se"])
    assert d["threshold"] == 0.8
    assert d["n_items"] == 30
    scores = ItemReadout(_w(), 30, noise=0.2)(-_vectors(1.0)["original"])  # multiplier -1, same seed
    assert d["slope_estimates"]["original"]["score_se"][0] == pytest.approx(
        float(scores.std()) / math.sqrt(30)
    )
    assert (
        d["statuses"]["sae"]["status"] == "fine"
    )  # kept fully: the interval (about [0.86, 1.10]) clears 0.8


def test_random_directions_have_the_norm_and_the_covariance_shape() -> None:
    v = torch.randn(D, generator=torch.Generator().manual_seed(2))
    acts = torch.randn(4000, D, generator=torch.Generator().manual_seed(3)) * torch.linspace(0.01, 3.0, D)
    dirs, _ = random_directions(v, 200, activations=acts, generator=4)
    assert dirs.shape == (400, D)
    torch.testing.assert_close(dirs.norm(dim=1), v.norm().expand(400), rtol=1e-5, atol=1e-5)
    iso, cov = dirs[:200].pow(2).mean(0), dirs[200:].pow(2).mean(0)
    # the covariance draws put their energy where the activations vary most
    assert float(cov[-1] / cov[0]) > 100 > float(iso[-1] / iso[0])
    again, _ = random_directions(v, 200, activations=acts, generator=4)
    assert torch.equal(dirs, again)
    with pytest.raises(ValueError, match="activations must be"):
        random_directions(v, 2, activations=acts[:, :3])


def test_float_scores_keep_the_old_ratios_but_give_no_interval() -> None:
    readout = torch.tensor([1.0, 0.0])
    kept = retention(
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
    kept = retention(lambda u: float(u.sum()), {"original": torch.zeros(2), "sae": torch.ones(2)})
    assert kept.ratio("sae") is None
    per_item = retention(ItemReadout(_w(), 10, noise=0.1), {"original": torch.zeros(D), "sae": torch.ones(D)})
    assert not per_item.steers
    assert per_item.status == "inconclusive"


def test_bad_multipliers_and_scores() -> None:
    with pytest.raises(ValueError, match="two distinct values"):
        retention(lambda u: 0.0, {"original": torch.ones(2)}, [1.0, 1.0])
    with pytest.raises(ValueError, match="non-finite score"):
        retention(lambda u: float("nan"), {"original": torch.ones(2)}, [0.0, 1.0])
    with pytest.raises(ValueError, match="must include 'original'"):
        retention(lambda u: 0.0, {"sae": torch.ones(2)})
    with pytest.raises(ValueError, match="threshold"):
        retention(lambda u: 0.0, {"original": torch.ones(2)}, threshold=1.5)
    with pytest.raises(ValueError, match="one score or one per item"):
        score_vectors(lambda u: torch.zeros(2, 2), torch.ones(3, 2))


def test_item_level_se_is_what_the_slope_reports() -> None:
    # the old fit took its SE from the residuals of the few (multiplier, mean score) points: zero for a
    # linear score however noisy the items; the item-level SE is not
    score = ItemReadout(_w(), 25, noise=0.5)
    kept = retention(score, _vectors(0.5), [-1.0, 0.0, 1.0, 2.0])
    slopes = kept.slopes["original"].item_slopes
    assert slopes is not None
    assert kept.slopes["original"].stderr == pytest.approx(item_slopes_summary(slopes).se)
    assert kept.slopes["original"].stderr is not None
    assert kept.slopes["original"].stderr > 0.05
