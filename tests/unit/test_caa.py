"""CAA extraction on tiny random-weight models: read positions, shared prefixes, balancing."""

from __future__ import annotations

import pytest
import torch
from _tiny_lm import tiny_model, word_tokenizer
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from sae_steer_checks.data.prompts import ab_pairs, freeform_pairs, tokenize
from sae_steer_checks.data.schema import ABItem, ContrastivePair, load_ab_items, load_freeform
from sae_steer_checks.lm.models import decoder_layers
from sae_steer_checks.lm.readout import read_pairs
from sae_steer_checks.steering.caa import extract_caa, letter_confound

LAYER = 1


@pytest.fixture(scope="module")
def items() -> list[ABItem]:
    return load_ab_items("corrigibility")[:10]


@pytest.fixture(scope="module")
def tok(items: list[ABItem]) -> PreTrainedTokenizerFast:
    ff = load_freeform("sentiment")
    texts = [i.question for i in items] + [x.prompt + x.positive + x.negative for x in ff.items]
    return word_tokenizer(texts)


@pytest.fixture(scope="module", params=["gemma2", "llama"])
def model(request: pytest.FixtureRequest, tok: PreTrainedTokenizerFast) -> PreTrainedModel:
    return tiny_model(request.param, len(tok))


def _reference(model: PreTrainedModel, tok: PreTrainedTokenizerFast, text: str) -> torch.Tensor:
    """The slow, obviously right read: one unpadded full forward, hidden_states[L + 1][-1]."""
    ids = torch.tensor([tokenize(tok, text)])
    with torch.no_grad():
        return model(ids, output_hidden_states=True).hidden_states[LAYER + 1][0, -1]


@pytest.mark.parametrize("share_prefix", [True, False])
def test_reads_match_unpadded_full_forward(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, items: list[ABItem], share_prefix: bool
) -> None:
    ff = load_freeform("sentiment")
    pairs = ab_pairs(items[:4], tok) + freeform_pairs(ff)[:3]
    pairs.append(ContrastivePair("It was very good", "It was bad"))  # endings of unequal length
    pos, neg = read_pairs(model, tok, pairs, LAYER, batch_size=3, share_prefix=share_prefix)
    ref_pos = torch.stack([_reference(model, tok, p.positive) for p in pairs])
    ref_neg = torch.stack([_reference(model, tok, p.negative) for p in pairs])
    torch.testing.assert_close(pos, ref_pos, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(neg, ref_neg, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
def test_tokenizer_padding_side_and_batch_size_do_not_matter(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, items: list[ABItem], side: str
) -> None:
    pairs = ab_pairs(items, tok)
    tok.padding_side = side
    try:
        one = read_pairs(model, tok, pairs, LAYER, batch_size=1)
        many = read_pairs(model, tok, pairs, LAYER, batch_size=4)
    finally:
        tok.padding_side = "right"
    torch.testing.assert_close(one, many, rtol=1e-5, atol=1e-5)


def test_forward_stops_after_layer_and_leaves_no_hooks(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, items: list[ABItem]
) -> None:
    blocks = decoder_layers(model)
    # transformers installs its own lasting output-capturing hooks; only ours must go
    before = [set(b._forward_hooks) for b in blocks]
    calls = {"later": 0, "head": 0}

    def later(*_: object) -> None:
        calls["later"] += 1

    def head(*_: object) -> None:
        calls["head"] += 1

    handles = [blocks[LAYER + 1].register_forward_hook(later)]
    handles.append(model.get_output_embeddings().register_forward_hook(head))
    try:
        extract_caa(model, tok, items[:3], LAYER)
    finally:
        for h in handles:
            h.remove()
    assert calls == {"later": 0, "head": 0}
    assert [set(b._forward_hooks) for b in blocks] == before


def test_balance_modes(model: PreTrainedModel, tok: PreTrainedTokenizerFast, items: list[ABItem]) -> None:
    raw = extract_caa(model, tok, items, LAYER, balance="none")
    diffs = raw.positive - raw.negative
    torch.testing.assert_close(raw.vector, diffs.mean(dim=0))
    is_a = torch.tensor([letter == "A" for letter in raw.positive_letters])
    weighted = extract_caa(model, tok, items, LAYER, balance="weights")
    expected = 0.5 * diffs[is_a].mean(dim=0) + 0.5 * diffs[~is_a].mean(dim=0)
    torch.testing.assert_close(weighted.vector, expected, rtol=1e-5, atol=1e-6)
    swapped = extract_caa(model, tok, items, LAYER)  # default: choices swapped
    assert swapped.balance == "swap"
    assert swapped.positive.shape[0] == 2 * len(items)
    assert swapped.confound is not None
    assert swapped.confound.n_a_matching == swapped.confound.n_b_matching == len(items)
    act_norm = float(swapped.positive.norm(dim=1).mean())
    assert swapped.confound.imbalance_norm < 1e-6 * act_norm
    assert raw.confound is not None
    assert raw.confound.imbalance_norm > 0


def test_freeform_extraction_is_plain_mean(model: PreTrainedModel, tok: PreTrainedTokenizerFast) -> None:
    ds = load_freeform("sentiment")
    result = extract_caa(model, tok, ds, LAYER)
    assert result.balance == "none"
    assert result.confound is None
    torch.testing.assert_close(result.vector, (result.positive - result.negative).mean(dim=0))
    with pytest.raises(ValueError, match="balance='swap' needs ABItem"):
        extract_caa(model, tok, ds, LAYER, balance="swap")


def test_letter_confound_recovers_planted_letter_direction() -> None:
    gen = torch.Generator().manual_seed(0)
    d, n_a, n_b = 16, 30, 10
    letter = torch.randn(d, generator=gen) * 5
    behaviour = torch.randn(d, generator=gen)
    base = torch.randn(n_a + n_b, d, generator=gen)
    letters = ["A"] * n_a + ["B"] * n_b
    sign = torch.tensor([1.0] * n_a + [-1.0] * n_b)[:, None]
    # read at A adds +letter/2, read at B adds -letter/2; the positive side carries the behaviour
    pos = base + behaviour + sign * letter / 2
    neg = base - sign * letter / 2
    conf = letter_confound(pos, neg, letters)
    read_a = torch.cat([pos[:n_a], neg[n_a:]]).mean(dim=0)
    read_b = torch.cat([neg[:n_a], pos[n_a:]]).mean(dim=0)
    torch.testing.assert_close(conf.letter_direction, read_a - read_b)
    assert torch.cosine_similarity(conf.letter_direction, letter, dim=0) > 0.9
    torch.testing.assert_close(conf.balanced_vector, behaviour, rtol=1e-5, atol=1e-5)
    expected_raw = behaviour + letter * (n_a - n_b) / (n_a + n_b)
    torch.testing.assert_close(conf.raw_vector, expected_raw, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.tensor(conf.imbalance_norm), (letter * 0.5).norm(), rtol=1e-5, atol=1e-5)
    assert conf.cosine_raw > conf.cosine_balanced
    with pytest.raises(ValueError, match="both 'A' and 'B'"):
        letter_confound(pos, neg, ["A"] * (n_a + n_b))
