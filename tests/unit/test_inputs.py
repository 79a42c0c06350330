from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sae_steer_checks._provenance import file_sha256
from sae_steer_checks._validate import InputError
from sae_steer_checks.cli.inputs import (
    load_dataset,
    planted_inputs,
    read_text_activations,
    resolved_prompt_format,
    unit_description,
)
from sae_steer_checks.data.schema import bundled_path


def test_builtin_sets_load_with_their_hash() -> None:
    ab = load_dataset("builtin:corrigibility", max_pairs=10)
    assert len(ab.ab_items) == 10
    assert ab.freeform is None
    prov = ab.provenance()
    assert prov["dataset_sha256"] == file_sha256(bundled_path("corrigibility"))
    assert prov["dataset_kind"] == "ab"
    free = load_dataset("builtin:sentiment", max_pairs=4)
    assert len(free.freeform.items) == 4
    assert free.provenance()["dataset_kind"] == "freeform"


def test_split_holds_out_a_quarter_deterministically() -> None:
    ab = load_dataset("builtin:corrigibility", max_pairs=20)
    train, test = ab.split(seed=1)
    assert (len(train), len(test)) == (15, 5)
    assert ab.split(seed=1) == (train, test)
    _, test_free = load_dataset("builtin:sentiment", max_pairs=8).split(seed=0)
    assert len(test_free.items) == 2


def test_dataset_errors_name_the_item(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"question": "Q?\n (A) a\n (B) b", "answer_matching_behavior": "(C)",
                                 "answer_not_matching_behavior": "(B)"}]))  # fmt: skip
    with pytest.raises(InputError, match=r"^--dataset .*item 0.*'\(A\)' or '\(B\)'"):
        load_dataset(str(path))
    path.write_text("not json")
    with pytest.raises(InputError, match="not valid JSON") as info:
        load_dataset(str(path))
    assert isinstance(info.value.__cause__, ValueError)  # the library's error is kept as the cause
    with pytest.raises(InputError, match=r"^--dataset builtin:nope: no bundled set 'nope'"):
        load_dataset("builtin:nope")
    with pytest.raises(InputError, match=r"^--dataset .*missing\.json: file not found"):
        load_dataset(str(tmp_path / "missing.json"))


def test_planted_inputs_are_reproducible() -> None:
    a, b = (
        planted_inputs(seed=2, n_pairs=16, n_activations=32),
        planted_inputs(seed=2, n_pairs=16, n_activations=32),
    )
    assert torch.equal(a.vector, b.vector)
    assert torch.equal(a.activations, b.activations)
    assert torch.allclose(a.vector, (a.pos - a.neg).mean(0))
    assert a.provenance["seed"] == 2
    assert a.score_fn is not None
    assert a.score_fn(2 * a.vector) == pytest.approx(2 * a.score_fn(a.vector), rel=1e-5)


def test_unit_description_says_whether_swapped_copies_share_an_id() -> None:
    from sae_steer_checks.steering.caa import CAAResult

    pos, neg = torch.ones(4, 3), torch.zeros(4, 3)
    swapped = CAAResult(torch.ones(3), pos, neg, layer=0, balance="swap", item_ids=(0, 0, 1, 1))
    assert unit_description(swapped) == "A/B item (an item and its choice-swapped copy share an id)"
    plain = CAAResult(torch.ones(3), pos, neg, layer=0, balance="none")
    assert unit_description(plain) == "each pair is an item"


def test_chat_format_without_a_template_names_the_option() -> None:
    from types import SimpleNamespace

    from tests.helpers.tiny_lm import word_tokenizer

    loaded = SimpleNamespace(tokenizer=word_tokenizer(["a question"]))
    ab = load_dataset("builtin:corrigibility", max_pairs=2)
    assert resolved_prompt_format(loaded, "auto", ab) == "plain"
    with pytest.raises(InputError, match=r"^--prompt-format chat: .*chat template"):
        resolved_prompt_format(loaded, "chat", ab)
    assert resolved_prompt_format(loaded, "chat", load_dataset("builtin:sentiment", max_pairs=2)) is None


def test_text_activations_errors_name_the_text_option(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from tests.helpers.tiny_lm import tiny_model, tiny_tokenizer

    loaded = SimpleNamespace(model=tiny_model("llama", n_layers=2), tokenizer=tiny_tokenizer(), name="tiny")
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(InputError, match=rf"^--text {missing}: corpus must be one of") as info:
        read_text_activations(loaded, 1, [missing])
    assert isinstance(info.value.__cause__, ValueError)
    mine = tmp_path / "mine.txt"
    mine.write_text("\n\n".join(f"document {i} " + "words and more words " * 30 for i in range(6)))
    text = read_text_activations(loaded, 1, [str(mine)], n_windows=2)
    assert text.heldout_only is False  # the user's own text is read whole
    assert text.activations.shape == (2 * 127, 32)
