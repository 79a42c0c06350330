"""Shared-prefix reads: the packed, cached and plain paths agree with one unpadded forward per prompt."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import PreTrainedTokenizerFast

from sae_steer_checks.data.prompts import tokenize
from sae_steer_checks.data.schema import ContrastivePair
from sae_steer_checks.lm import readout
from sae_steer_checks.lm.readout import read_pairs, tokenize_pairs
from tests.helpers.tiny_lm import tiny_model, tiny_tokenizer

LAYER = 1
# prefixes of different lengths, one-token endings and endings of unequal length
PAIRS = [
    ContrastivePair("the cat sat on the mat. A", "the cat sat on the mat. B"),
    ContrastivePair("no. A", "no. B"),
    ContrastivePair("it was very good", "it was bad"),
    ContrastivePair("we go", "we went home"),
    ContrastivePair("a long question, then a short answer: A", "a long question, then a short answer: B"),
]


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return tiny_tokenizer()


def _model(kind: str, attention: str) -> nn.Module:
    model = tiny_model(kind)
    model.set_attn_implementation(attention)
    return model


def _reference(model: nn.Module, tok: PreTrainedTokenizerFast, text: str) -> torch.Tensor:
    ids = torch.tensor([tokenize(tok, text)])
    with torch.no_grad():
        return model(ids, output_hidden_states=True).hidden_states[LAYER + 1][0, -1]


# Gemma 2 has no sdpa attention (its scores are soft-capped)
CASES = [
    (kind, attention)
    for kind in ("gemma2", "gemma3", "llama", "mistral", "qwen2", "gpt2")
    for attention in ("sdpa", "eager")
    if (kind, attention) != ("gemma2", "sdpa")
]


@pytest.mark.parametrize(("kind", "attention"), CASES)
def test_every_path_matches_unpadded_forward(
    kind: str, attention: str, tok: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(kind, attention)
    ref_pos = torch.stack([_reference(model, tok, p.positive) for p in PAIRS])
    ref_neg = torch.stack([_reference(model, tok, p.negative) for p in PAIRS])
    reads = {}
    for side in ("left", "right"):
        tok.padding_side = side
        try:
            reads[f"shared-{side}"] = read_pairs(model, tok, PAIRS, LAYER, batch_size=3)
            reads[f"plain-{side}"] = read_pairs(model, tok, PAIRS, LAYER, batch_size=2, share_prefix=False)
            with monkeypatch.context() as m:
                m.setattr(readout, "_can_pack", lambda *_: False)
                reads[f"cached-{side}"] = read_pairs(model, tok, PAIRS, LAYER, batch_size=4)
        finally:
            tok.padding_side = "right"
    for name, (pos, neg) in reads.items():
        assert pos.dtype == neg.dtype == torch.float32, name
        assert torch.allclose(pos, ref_pos, rtol=1e-5, atol=1e-5), name
        assert torch.allclose(neg, ref_neg, rtol=1e-5, atol=1e-5), name


def test_packing_only_where_one_mask_serves_every_layer(tok: PreTrainedTokenizerFast) -> None:
    tokenized = tokenize_pairs(tok, PAIRS)
    assert readout._can_pack(_model("llama", "sdpa"), tokenized)
    assert readout._can_pack(_model("gemma3", "eager"), tokenized)
    assert not readout._can_pack(_model("gpt2", "sdpa"), tokenized)  # family not known to take 4D masks
    model = _model("gemma2", "eager")
    width = max(sum(map(len, t)) for t in tokenized)
    model.config.sliding_window = width - 1
    assert not readout._can_pack(model, tokenized)
    model.config.sliding_window = width
    assert readout._can_pack(model, tokenized)


def test_packed_forward_runs_once_per_batch(tok: PreTrainedTokenizerFast) -> None:
    model = _model("llama", "sdpa")
    calls: list[tuple[int, ...]] = []
    block = model.model.layers[0]
    handle = block.register_forward_hook(lambda _m, args, _o: calls.append(tuple(args[0].shape[:2])))
    try:
        read_pairs(model, tok, PAIRS, LAYER, batch_size=2)
    finally:
        handle.remove()
    assert [c[0] for c in calls] == [2, 2, 1]  # one row per pair, no separate ending step
