"""steering.slopes: the multiplier sweep, the item-level slope and its SE, and the random-direction null."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from sae_steer_checks.data.schema import ABItem, load_ab_items, load_freeform
from sae_steer_checks.lm.models import decoder_layers
from sae_steer_checks.stats import steering_p_value, t_quantile
from sae_steer_checks.steering.scoring import (
    ItemScoreFn,
    group_mean,
    make_score_fn,
    score_items,
)
from sae_steer_checks.steering.slopes import random_like, relative_multipliers, steerability, sweep
from sae_steer_checks.steering.tasks import ab_task
from tests.helpers.tiny_lm import tiny_model, word_tokenizer

LAYER = 1
PROMPTS = ["The film was", "Lunch today was"]
POSITIVE = [" good", " very good"]  # a two-token continuation exercises the general path
NEGATIVE = [" bad"]


@pytest.fixture(scope="module")
def items() -> list[ABItem]:
    return load_ab_items("corrigibility")[:6]


@pytest.fixture(scope="module")
def tok(items: list[ABItem]) -> PreTrainedTokenizerFast:
    ff = load_freeform("sentiment")
    texts = [i.question for i in items] + [x.prompt for x in ff.items] + PROMPTS + POSITIVE
    return word_tokenizer(texts + list(ff.positive_targets + ff.negative_targets) + NEGATIVE)


@pytest.fixture(scope="module")
def model(tok: PreTrainedTokenizerFast) -> PreTrainedModel:
    return tiny_model("gemma2", len(tok), seed=1)


def _naive_slope(x: list[float], y: torch.Tensor) -> float:
    xs = torch.tensor(x, dtype=torch.float64)
    return float(((xs - xs.mean()) * (y - y.mean())).sum() / ((xs - xs.mean()) ** 2).sum())


def test_sweep_slope_is_the_group_balanced_mean_of_per_item_slopes(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, items: list[ABItem]
) -> None:
    task = ab_task(tok, items)  # no swap: each item sits in its letter's group
    vector = torch.randn(32, generator=torch.Generator().manual_seed(4))
    x = [-2.0, -1.0, 0.0, 1.5]
    result = sweep(model, task, LAYER, vector, x)
    per_item = [_naive_slope(x, result.item_scores[:, i]) for i in range(len(items))]
    groups = [0 if i.matching == "A" else 1 for i in items]
    by_group = [torch.tensor([s for s, g in zip(per_item, groups, strict=True) if g == k]) for k in (0, 1)]
    assert result.slope == pytest.approx(0.5 * float(by_group[0].mean()) + 0.5 * float(by_group[1].mean()))
    expected_se = 0.5 * math.sqrt(sum(float(s.var()) / len(s) for s in by_group))
    assert result.slope_se == pytest.approx(expected_se)
    assert result.estimate is not None
    assert result.estimate.df == len(items) - 2
    half = t_quantile(0.95, len(items) - 2) * expected_se
    assert result.estimate.ci_low == pytest.approx(result.slope - half)
    assert result.intercept == pytest.approx(sum(result.scores) / 4 - result.slope * sum(x) / 4, abs=1e-9)
    with pytest.raises(ValueError, match="two distinct"):
        sweep(model, task, LAYER, vector, [1.0, 1.0])


def test_swapped_copies_are_one_item(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, items: list[ABItem]
) -> None:
    task = ab_task(tok, items, swap=True)
    assert len(task) == 2 * len(items)
    assert task.n_items == len(items)
    assert task.item_groups is None  # an item with its swapped copy is balanced by itself
    vector = torch.randn(32, generator=torch.Generator().manual_seed(6))
    result = sweep(model, task, LAYER, vector, [-1.0, 0.0, 1.0])
    prompts = torch.stack([score_items(model, task, LAYER, m * vector) for m in (-1.0, 0.0, 1.0)])
    torch.testing.assert_close(result.item_scores, 0.5 * (prompts[:, 0::2] + prompts[:, 1::2]))
    assert result.estimate is not None
    assert (result.estimate.n_items, result.estimate.df) == (len(items), len(items) - 1)
    slopes = torch.tensor(
        [_naive_slope([-1.0, 0.0, 1.0], result.item_scores[:, i]) for i in range(len(items))]
    )
    assert result.slope_se == pytest.approx(float(slopes.std()) / math.sqrt(len(items)))
    score_fn = make_score_fn(model, task, LAYER, per_item=True)
    assert isinstance(score_fn, ItemScoreFn)
    torch.testing.assert_close(score_fn(vector), result.item_scores[2], rtol=1e-5, atol=1e-6)


def test_relative_multipliers_and_random_like() -> None:
    v = torch.randn(32, generator=torch.Generator().manual_seed(3))
    ms = relative_multipliers(float(v.norm()), 50.0, (-0.5, 0.0, 1.0))
    assert [float((m * v).norm()) for m in ms] == pytest.approx([25.0, 0.0, 50.0], rel=1e-5)
    assert ms[0] < 0
    r1 = random_like(v, generator=torch.Generator().manual_seed(9))
    r2 = random_like(v, generator=torch.Generator().manual_seed(9))
    assert torch.equal(r1, r2)
    assert float(r1.norm()) == pytest.approx(float(v.norm()), rel=1e-5)
    assert abs(float(torch.cosine_similarity(r1, v, dim=0))) < 0.9


def test_sweep_score_fn_and_null(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, items: list[ABItem]
) -> None:
    task = ab_task(tok, items)
    vector = torch.randn(32, generator=torch.Generator().manual_seed(4))
    before = [set(b._forward_hooks) for b in decoder_layers(model)]
    result = sweep(model, task, LAYER, vector, [-1.0, 0.0, 1.0])
    assert [set(b._forward_hooks) for b in decoder_layers(model)] == before
    score_fn = make_score_fn(model, task, LAYER, per_item=False)
    assert result.scores[1] == pytest.approx(group_mean(score_items(model, task, LAYER), task.groups))
    assert result.scores[2] == pytest.approx(score_fn(vector), rel=1e-6)
    assert result.scores[0] == pytest.approx(score_fn(-vector), rel=1e-6)
    assert all(0.0 < p < 1.0 for p in result.probs)
    steer = steerability(
        model,
        task,
        LAYER,
        vector,
        [-1.0, 0.0, 1.0],
        n_random=2,
        generator=torch.Generator().manual_seed(5),
    )
    assert steer.vector.slope == pytest.approx(result.slope, rel=1e-5)
    assert len(steer.null) == 2
    assert steer.null_kinds == ("isotropic", "isotropic")
    assert steer.null[0].slope != steer.null[1].slope
    assert steer.null_slope == pytest.approx((steer.null[0].slope + steer.null[1].slope) / 2)
    assert math.isfinite(steer.z)
    assert steer.null_sd == pytest.approx(abs(steer.null[0].slope - steer.null[1].slope) / math.sqrt(2))
    # two directions cannot give a Monte Carlo p-value at or below 0.05: the vector cannot be said to steer
    assert steering_p_value(steer.vector.slope, [n.slope for n in steer.null]) >= 1 / 3
    assert steer.steers is False
    assert steer.to_dict()["steers"] == steer.steers


def test_steerability_null_draws_from_the_activation_covariance(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, items: list[ABItem]
) -> None:
    task = ab_task(tok, items, swap=True)
    vector = torch.randn(32, generator=torch.Generator().manual_seed(7))
    acts = torch.randn(50, 32, generator=torch.Generator().manual_seed(8)) * torch.linspace(0.1, 3.0, 32)
    steer = steerability(model, task, LAYER, vector, [-1.0, 1.0], activations=acts, generator=0)
    assert steer.null_kinds == ("isotropic",) * 20 + ("covariance",) * 20
    assert 0.0 <= steer.percentile <= 100.0
    slopes = torch.tensor([abs(n.slope) for n in steer.null], dtype=torch.float64)
    assert steer.null_abs_q95 == pytest.approx(float(torch.quantile(slopes, 0.95)))
    exceed = int((slopes >= abs(steer.vector.slope)).sum())
    assert steer.p_value == pytest.approx((1 + exceed) / (1 + len(slopes)))  # the Monte Carlo gate's p
    assert steer.to_dict()["p_value"] == steer.p_value
