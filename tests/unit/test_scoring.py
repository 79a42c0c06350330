"""Batched scoring: many steering vectors per forward, blocks before the steered one run once."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from sae_steer_checks.data.prompts import ab_prompt, tokenize
from sae_steer_checks.data.schema import ABItem, load_ab_items
from sae_steer_checks.lm.hooks import add_to_residual
from sae_steer_checks.lm.models import decoder_layers
from sae_steer_checks.steering.scoring import (
    ItemScoreFn,
    SteerPositions,
    chunk_size,
    group_mean,
    item_scores,
    make_score_fn,
    score_grid,
    score_items,
)
from sae_steer_checks.steering.tasks import BehaviourTask, ab_task, freeform_task
from tests.helpers.tiny_lm import tiny_model, word_tokenizer

LAYER = 1
PROMPTS = ["The film was", "Lunch today was", "It rained and the day was"]
POSITIVE = [" good", " very good"]  # a two-token continuation exercises the general path
NEGATIVE = [" bad", " not good at all"]


@pytest.fixture(scope="module")
def items() -> list[ABItem]:
    return load_ab_items("corrigibility")[:5]


@pytest.fixture(scope="module")
def tok(items: list[ABItem]) -> PreTrainedTokenizerFast:
    return word_tokenizer([i.question for i in items] + PROMPTS + POSITIVE + NEGATIVE)


@pytest.fixture(scope="module")
def tasks(tok: PreTrainedTokenizerFast, items: list[ABItem]) -> dict[str, BehaviourTask]:
    return {"ab": ab_task(tok, items, swap=True), "freeform": freeform_task(tok, PROMPTS, POSITIVE, NEGATIVE)}


@pytest.mark.parametrize("kind", ["gemma2", "gemma3", "llama", "gpt2", "neox"])
@pytest.mark.parametrize("task_kind", ["ab", "freeform"])
def test_batched_replay_matches_one_full_forward_per_vector(
    tok: PreTrainedTokenizerFast, tasks: dict[str, BehaviourTask], kind: str, task_kind: str
) -> None:
    model = tiny_model(kind, len(tok), seed=2)
    task = tasks[task_kind]
    gen = torch.Generator().manual_seed(0)
    vectors = torch.cat([torch.randn(4, 32, generator=gen), torch.zeros(2, 32)])
    grid = score_grid(model, task, LAYER, vectors, batch_size=3, vectors_per_batch=2)
    reference = torch.stack([score_items(model, task, LAYER, v) for v in vectors])
    torch.testing.assert_close(grid, reference, rtol=1e-4, atol=1e-5)
    assert torch.equal(grid[4], grid[5])  # identical added vectors are scored once
    # every skipped block got its own forward back
    assert all("forward" not in block.__dict__ for block in decoder_layers(model))
    full = score_grid(model, task, LAYER, vectors, batch_size=3, vectors_per_batch=2, reuse_prefix=False)
    torch.testing.assert_close(grid, full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["gemma2", "gpt2"])
def test_target_columns_only_head_gives_the_full_vocabulary_scores(
    tok: PreTrainedTokenizerFast, tasks: dict[str, BehaviourTask], kind: str
) -> None:
    # one-token continuations: the normaliser cancels, so only the target logits are computed
    model = tiny_model(
        kind, len(tok), seed=4, **({"final_logit_softcapping": 2.0} if kind == "gemma2" else {})
    )
    single = freeform_task(tok, PROMPTS, [" good", " very"], [" bad"])
    vectors = torch.randn(3, 32, generator=torch.Generator().manual_seed(2))
    for task in (tasks["ab"], single):
        narrow = score_grid(model, task, LAYER, vectors)
        full = score_grid(model, task, LAYER, vectors, full_vocab=True)
        torch.testing.assert_close(narrow, full, rtol=1e-5, atol=1e-5)
    assert "forward" not in model.get_output_embeddings().__dict__


def test_item_scores_average_the_copies(
    tok: PreTrainedTokenizerFast, tasks: dict[str, BehaviourTask]
) -> None:
    model = tiny_model("llama", len(tok), seed=3)
    task = tasks["ab"]
    vectors = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    prompts = score_grid(model, task, LAYER, vectors)
    merged = item_scores(task, prompts)
    assert merged.shape == (3, task.n_items)
    torch.testing.assert_close(merged, 0.5 * (prompts[:, 0::2] + prompts[:, 1::2]))
    score_fn = make_score_fn(model, task, LAYER, per_item=True, vectors_per_batch=2)
    assert isinstance(score_fn, ItemScoreFn)
    assert score_fn.item_groups is None
    torch.testing.assert_close(score_fn.score_batch(vectors), merged, rtol=1e-5, atol=1e-6)
    assert isinstance(make_score_fn(model, task, LAYER), ItemScoreFn)  # per item by default
    pooled = make_score_fn(model, task, LAYER, per_item=False)
    assert pooled(vectors[0]) == pytest.approx(float(merged[0].mean()), rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("kind", ["gemma2", "gemma3", "llama", "qwen2", "mistral", "gpt2", "neox"])
@pytest.mark.parametrize("task_kind", ["ab", "freeform"])
def test_answer_positions_over_a_cached_prefix_match_full_forwards(
    tok: PreTrainedTokenizerFast, tasks: dict[str, BehaviourTask], kind: str, task_kind: str
) -> None:
    # the unsteered prefix runs once per batch and every vector runs only the answer positions over its
    # keys and values: the scores of a full forward per vector that steers the same positions
    model = tiny_model(kind, len(tok), seed=2)
    task = tasks[task_kind]
    vectors = torch.cat(
        [3 * torch.randn(5, 32, generator=torch.Generator().manual_seed(0)), torch.zeros(1, 32)]
    )
    cached = score_grid(model, task, LAYER, vectors, batch_size=3, vectors_per_batch=2, positions="answer")
    full = torch.stack([score_items(model, task, LAYER, v, positions="answer") for v in vectors])
    torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-5)
    everywhere = score_grid(model, task, LAYER, vectors, positions="all")
    assert not torch.allclose(cached[:5], everywhere[:5], rtol=1e-4, atol=1e-5)  # a different convention
    torch.testing.assert_close(cached[5], everywhere[5])  # ... that agrees when nothing is added
    assert all(
        "forward" not in block.__dict__ and not block._forward_hooks for block in decoder_layers(model)
    )


def test_answer_positions_steer_only_from_the_last_prompt_token(
    tok: PreTrainedTokenizerFast, tasks: dict[str, BehaviourTask]
) -> None:
    # one prompt at a time (no padding): "answer" is the steering hook from the last prompt position on
    model = tiny_model("llama", len(tok), seed=5)
    task = tasks["ab"]
    v = 3 * torch.randn(32, generator=torch.Generator().manual_seed(3))
    for i, prefix in enumerate(task.prefixes[:3]):
        one = BehaviourTask(
            "ab", (prefix,), task.positive[i : i + 1], task.negative[i : i + 1], (0,), task.pad_id
        )
        with add_to_residual(model, LAYER, v, start_position=len(prefix) - 1):
            expected = score_items(model, one, LAYER, positions="all")
        got = score_grid(model, one, LAYER, torch.stack([v, -v]), positions="answer")[0]
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(got, score_items(model, one, LAYER, v, positions="all"), atol=1e-5)


def test_steer_positions_are_validated(tok: PreTrainedTokenizerFast, tasks: dict[str, BehaviourTask]) -> None:
    model = tiny_model("llama", len(tok), seed=3)
    with pytest.raises(ValueError, match="positions must be one of"):
        score_grid(model, tasks["ab"], LAYER, torch.zeros(2, 32), positions="prompt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positions must be one of"):
        make_score_fn(model, tasks["ab"], LAYER, positions="last")  # type: ignore[call-overload]


def test_bad_vectors_are_rejected(tok: PreTrainedTokenizerFast, tasks: dict[str, BehaviourTask]) -> None:
    model = tiny_model("llama", len(tok), seed=3)
    with pytest.raises(ValueError, match="vectors must be"):
        score_grid(model, tasks["ab"], LAYER, torch.zeros(2, 31))
    with pytest.raises(ValueError, match="batch_size"):
        score_grid(model, tasks["ab"], LAYER, torch.zeros(2, 32), vectors_per_batch=0)


def _logprobs(model: PreTrainedModel, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().log_softmax(-1)


def test_ab_scores_are_logit_differences(tok: PreTrainedTokenizerFast, items: list[ABItem]) -> None:
    model = tiny_model("gemma2", len(tok), seed=1)
    task = ab_task(tok, items)
    scores = score_items(model, task, LAYER, batch_size=4)
    for item, score in zip(items, scores, strict=True):
        lp = _logprobs(model, tokenize(tok, ab_prompt(tok, item.question)))[-1]
        m, o = tok.convert_tokens_to_ids([item.matching, item.non_matching])
        assert math.isclose(float(score), float(lp[m] - lp[o]), rel_tol=1e-4, abs_tol=1e-5)


@pytest.mark.parametrize("positions", ["answer", "all"])
def test_freeform_scores_are_target_log_odds(tok: PreTrainedTokenizerFast, positions: SteerPositions) -> None:
    model = tiny_model("gemma2", len(tok), seed=1)
    vector = torch.randn(32, generator=torch.Generator().manual_seed(0))
    task = freeform_task(tok, PROMPTS, POSITIVE, NEGATIVE)
    scores = score_items(model, task, LAYER, vector, batch_size=2, positions=positions)
    for prompt, score in zip(PROMPTS, scores, strict=True):
        sides = []
        for targets in (POSITIVE, NEGATIVE):
            values = []
            for target in targets:
                prefix, full = tokenize(tok, prompt), tokenize(tok, prompt + target)
                # "answer": from the opening's last token on (its output predicts the first target token)
                start = len(prefix) - 1 if positions == "answer" else 0
                with add_to_residual(model, LAYER, vector, start_position=start):
                    lp = _logprobs(model, full)
                values.append(sum(float(lp[j - 1, full[j]]) for j in range(len(prefix), len(full))))
            sides.append(math.log(sum(math.exp(v) for v in values) / len(values)))
        assert math.isclose(float(score), sides[0] - sides[1], rel_tol=1e-4, abs_tol=1e-5)


def test_group_mean_ignores_a_uniform_letter_shift() -> None:
    # three A-matching items and one B-matching: a shift toward "A" moves A items up, B items down
    groups = (0, 0, 0, 1)
    base = torch.tensor([1.0, 2.0, 3.0, 4.0])
    shifted = base + torch.tensor([1.0, 1.0, 1.0, -1.0])
    assert group_mean(shifted, groups) == pytest.approx(group_mean(base, groups))
    assert shifted.mean() != pytest.approx(base.mean())


def test_a_score_function_computes_each_batch_prefix_once_across_calls(
    tok: PreTrainedTokenizerFast, tasks: dict[str, BehaviourTask]
) -> None:
    # the retention sweep and the ablation's sweep call one score function: the second call reuses the
    # first's prefix caches and blocks 0..L, and scores exactly as a fresh function does
    model = tiny_model("gemma3", len(tok), seed=2)
    task = tasks["ab"]
    gen = torch.Generator().manual_seed(7)
    first, second = 3 * torch.randn(4, 32, generator=gen), 3 * torch.randn(3, 32, generator=gen)
    score_fn = make_score_fn(model, task, LAYER, batch_size=3, vectors_per_batch=2)
    assert isinstance(score_fn, ItemScoreFn)
    calls = []
    handle = model.register_forward_pre_hook(lambda _m, _a: calls.append(1))
    try:
        score_fn.score_batch(first)
        after_first = len(calls)
        again = score_fn.score_batch(second)
        after_second = len(calls) - after_first
    finally:
        handle.remove()
    fresh = make_score_fn(model, task, LAYER, batch_size=3, vectors_per_batch=2)
    torch.testing.assert_close(again, fresh.score_batch(second), rtol=1e-6, atol=1e-7)
    n_batches = -(-len(task) // 3)
    # per batch the first call runs the prefix, the answer position through blocks 0..L, then one forward
    # per chunk (4 vectors, 2 per chunk); the second call runs only its chunks (3 vectors, 2 per chunk)
    assert after_first == n_batches * (1 + 1 + 2)
    assert after_second == n_batches * 2


def test_chunk_size_keeps_rows_and_held_positions_within_their_bounds() -> None:
    assert chunk_size(16, 76) == 13  # 16,384 held positions / (16 rows x 76 cached tokens)
    assert chunk_size(15, 9) == 34  # 512 rows / 15
    assert chunk_size(1, 1) == 64  # never more than 64 vectors
    assert chunk_size(600, 1) == 1  # never fewer than one
    assert chunk_size(4, 0) == 64  # nothing cached: the rows decide
    for rows in (1, 3, 16, 40):
        for tokens in (0, 5, 130, 4000):
            c = chunk_size(rows, tokens, max_rows=256, max_tokens=4096)
            assert c == 1 or (rows * c <= 256 and rows * c * tokens <= 4096)


@pytest.mark.parametrize("kind", ["gemma3", "gpt2"])
def test_chunks_chosen_per_batch_score_as_full_forwards_and_leave_the_stored_prefix_unchanged(
    tok: PreTrainedTokenizerFast, tasks: dict[str, BehaviourTask], kind: str
) -> None:
    model = tiny_model(kind, len(tok), seed=3)
    task = tasks["ab"]
    vectors = 2 * torch.randn(20, 32, generator=torch.Generator().manual_seed(11))
    store: dict[tuple[int, int], Any] = {}
    grid = score_grid(model, task, LAYER, vectors, batch_size=4, prefixes=store)
    full = score_grid(model, task, LAYER, vectors, batch_size=4, reuse_prefix=False)
    torch.testing.assert_close(grid, full, rtol=1e-4, atol=1e-5)
    # the stored caches keep one row per prompt in every block, and score again exactly
    for (start, stop), rows in store.items():
        for layer in rows.cache.layers:
            assert layer.keys.shape[0] == stop - start
    again = score_grid(model, task, LAYER, vectors, batch_size=4, prefixes=store)
    assert torch.equal(grid, again)


def test_the_prefix_pass_computes_one_column_of_the_output_head(
    tok: PreTrainedTokenizerFast, tasks: dict[str, BehaviourTask]
) -> None:
    # the prefix is run for its keys and values only: a full-vocabulary head there is wasted work
    model = tiny_model("gemma3", len(tok), seed=2)
    widths: list[int] = []
    head = model.get_output_embeddings()
    handle = head.register_forward_hook(lambda _m, _a, out: widths.append(int(out.shape[-1])))
    try:
        score_grid(model, tasks["ab"], LAYER, torch.randn(3, 32), batch_size=4)
    finally:
        handle.remove()
    n_batches = -(-len(tasks["ab"]) // 4)
    assert widths[:1] == [1]  # the first batch's prefix pass
    assert widths.count(1) == n_batches
    assert "forward" not in head.__dict__
