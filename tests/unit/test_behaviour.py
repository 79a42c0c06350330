"""Behaviour scores, the multiplier sweep, the slope with its standard error and the random null."""

from __future__ import annotations

import math

import pytest
import torch
from _tiny_lm import tiny_model, word_tokenizer
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from sae_steer_checks.data.prompts import ab_prompt, tokenize
from sae_steer_checks.data.schema import ABItem, load_ab_items, load_freeform
from sae_steer_checks.lm.hooks import add_to_residual
from sae_steer_checks.lm.models import decoder_layers
from sae_steer_checks.steering.behaviour import (
    ab_task,
    fit_slope,
    freeform_task,
    group_mean,
    make_score_fn,
    random_like,
    relative_multipliers,
    score_items,
    steerability,
    sweep,
)

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


def _logprobs(model: PreTrainedModel, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().log_softmax(-1)


def test_ab_scores_are_logit_differences(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, items: list[ABItem]
) -> None:
    task = ab_task(tok, items)
    scores = score_items(model, task, LAYER, batch_size=4)
    for item, score in zip(items, scores, strict=True):
        lp = _logprobs(model, tokenize(tok, ab_prompt(tok, item.question)))[-1]
        m, o = tok.convert_tokens_to_ids([item.matching, item.non_matching])
        assert math.isclose(float(score), float(lp[m] - lp[o]), rel_tol=1e-4, abs_tol=1e-5)


def test_freeform_scores_are_target_log_odds(model: PreTrainedModel, tok: PreTrainedTokenizerFast) -> None:
    vector = torch.randn(32, generator=torch.Generator().manual_seed(0))
    task = freeform_task(tok, PROMPTS, POSITIVE, NEGATIVE)
    scores = score_items(model, task, LAYER, vector, batch_size=2)
    for prompt, score in zip(PROMPTS, scores, strict=True):
        sides = []
        for targets in (POSITIVE, NEGATIVE):
            values = []
            for target in targets:
                prefix, full = tokenize(tok, prompt), tokenize(tok, prompt + target)
                with add_to_residual(model, LAYER, vector):
                    lp = _logprobs(model, full)
                values.append(sum(float(lp[j - 1, full[j]]) for j in range(len(prefix), len(full))))
            sides.append(math.log(sum(math.exp(v) for v in values) / len(values)))
        assert math.isclose(float(score), sides[0] - sides[1], rel_tol=1e-4, abs_tol=1e-5)


def test_ab_task_needs_both_letters(tok: PreTrainedTokenizerFast, items: list[ABItem]) -> None:
    only_a = [i for i in items if i.matching == "A"]
    with pytest.raises(ValueError, match="both letters"):
        ab_task(tok, only_a)
    assert len(ab_task(tok, only_a, swap=True)) == 2 * len(only_a)


def test_group_mean_ignores_a_uniform_letter_shift() -> None:
    # three A-matching items and one B-matching: a shift toward "A" moves A items up, B items down
    groups = (0, 0, 0, 1)
    base = torch.tensor([1.0, 2.0, 3.0, 4.0])
    shifted = base + torch.tensor([1.0, 1.0, 1.0, -1.0])
    assert group_mean(shifted, groups) == pytest.approx(group_mean(base, groups))
    assert shifted.mean() != pytest.approx(base.mean())


def test_fit_slope_against_naive_least_squares() -> None:
    gen = torch.Generator().manual_seed(2)
    x = [-2.0, -1.0, 0.0, 1.5]
    y = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    groups = (0, 0, 0, 1, 1, 1)
    slope, se, intercept = fit_slope(x, y, groups)
    per_item = []
    for i in range(6):
        xs, ys = torch.tensor(x, dtype=torch.float64), y[:, i]
        per_item.append(float(((xs - xs.mean()) * (ys - ys.mean())).sum() / ((xs - xs.mean()) ** 2).sum()))
    s = torch.tensor(per_item)
    assert slope == pytest.approx(0.5 * float(s[:3].mean()) + 0.5 * float(s[3:].mean()))
    expected_se = 0.5 * math.sqrt(float(s[:3].var()) / 3 + float(s[3:].var()) / 3)
    assert se == pytest.approx(expected_se)
    exact, zero_se, icpt = fit_slope(x, 3.0 * torch.tensor(x)[:, None].repeat(1, 6) + 1.0, groups)
    assert (exact, zero_se, icpt) == pytest.approx((3.0, 0.0, 1.0))
    assert intercept == pytest.approx(float(y.mean(dim=1).mean()) - slope * sum(x) / 4, abs=1e-9)
    with pytest.raises(ValueError, match="two distinct"):
        fit_slope([1.0, 1.0], y[:2], groups)


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
    score_fn = make_score_fn(model, task, LAYER)
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
    assert steer.vector.slope == pytest.approx(result.slope)
    assert len(steer.null) == 2
    assert steer.null[0].slope != steer.null[1].slope
    assert steer.null_slope == pytest.approx((steer.null[0].slope + steer.null[1].slope) / 2)
    assert math.isfinite(steer.z)
