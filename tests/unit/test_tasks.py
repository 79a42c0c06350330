"""steering.tasks: A/B and free-form tasks, and the behaviour_task a full check scores held-out data with."""

from __future__ import annotations

import pytest

from sae_steer_checks.data.schema import load_ab_items, load_freeform
from sae_steer_checks.steering.tasks import ab_task, behaviour_task, freeform_task
from tests.helpers.tiny_lm import word_tokenizer


def test_ab_items_give_the_swapped_ab_task() -> None:
    items = load_ab_items("corrigibility")[:6]
    tok = word_tokenizer(i.question for i in items)
    task = behaviour_task(tok, items)
    assert task == ab_task(tok, items, swap=True)
    assert (task.kind, len(task), task.n_items) == ("ab", 12, 6)


def test_a_freeform_set_gives_the_freeform_task() -> None:
    data = load_freeform("sentiment")
    texts = [i.prompt + i.positive + i.negative for i in data.items]
    tok = word_tokenizer([*texts, *data.positive_targets, *data.negative_targets])
    task = behaviour_task(tok, data, prompt_format="chat")  # the format is for A/B prompts only
    assert task == freeform_task(tok, data)
    assert task.kind == "freeform"


def test_items_matching_on_one_letter_are_balanced_by_their_swapped_copies() -> None:
    items = [i for i in load_ab_items("corrigibility") if i.matching == "A"][:2]
    tok = word_tokenizer(i.question for i in items)
    assert behaviour_task(tok, items).n_items == 2  # the swapped copies supply the other letter
    with pytest.raises(ValueError, match="items must be a non-empty sequence of ABItem"):
        behaviour_task(tok, [])


def test_ab_task_needs_both_letters() -> None:
    items = load_ab_items("corrigibility")[:6]
    tok = word_tokenizer(i.question for i in items)
    only_a = [i for i in items if i.matching == "A"]
    with pytest.raises(ValueError, match="both letters"):
        ab_task(tok, only_a)
    assert len(ab_task(tok, only_a, swap=True)) == 2 * len(only_a)
