"""steering.caa: CAA extraction on tiny random-weight models, and its parity with steering-vectors.

Read positions, shared prefixes, balancing and the letter confound; the same vector as the
steering-vectors library gives for the same model, data and read position.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from sae_steer_checks.data.prompts import ab_pairs, freeform_pairs, tokenize
from sae_steer_checks.data.schema import ABItem, ContrastivePair, load_ab_items, load_freeform
from sae_steer_checks.lm.models import decoder_layers
from sae_steer_checks.lm.readout import read_pairs
from sae_steer_checks.stats import item_slopes_summary
from sae_steer_checks.steering.caa import CAAResult, extract_caa, extract_caa_layers, letter_confound
from tests.helpers.tiny_lm import tiny_model, word_tokenizer

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
    assert swapped.item_ids == tuple(i for i in range(len(items)) for _ in range(2))
    assert swapped.confound is not None
    assert raw.confound is not None
    # the raw figures describe raw CAA on the items as given, whatever the balancing
    n_a = sum(i.matching == "A" for i in items)
    assert (swapped.confound.n_a_matching, swapped.confound.n_b_matching) == (n_a, len(items) - n_a)
    torch.testing.assert_close(swapped.confound.raw_vector, raw.vector, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(swapped.confound.balanced_vector, swapped.vector, rtol=1e-5, atol=1e-5)
    assert raw.confound.imbalance_norm > 0
    assert swapped.confound.imbalance_share > 1e-3
    # the swapped set is exactly balanced: its mean is the mean of the two letter groups
    to_dict = swapped.confound.to_dict()
    assert to_dict["raw_norm"] != pytest.approx(to_dict["balanced_norm"], rel=1e-4)
    assert swapped.to_dict()["n_items"] == len(items)


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
    torch.testing.assert_close(conf.letter_direction, letter, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conf.balanced_vector, behaviour, rtol=1e-5, atol=1e-5)
    expected_raw = behaviour + letter * (n_a - n_b) / (n_a + n_b)
    torch.testing.assert_close(conf.raw_vector, expected_raw, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.tensor(conf.imbalance_norm), (letter * 0.5).norm(), rtol=1e-5, atol=1e-5)
    assert conf.cosine_raw > conf.cosine_balanced
    with pytest.raises(ValueError, match="both 'A' and 'B'"):
        letter_confound(pos, neg, ["A"] * (n_a + n_b))


def _planted_pairs(
    n_a: int, n_b: int, letter_scale: float, *, d: int = 256, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor, torch.Tensor]:
    """Pairs whose difference is ``behaviour +- letter + noise`` (A-matching +, B-matching -)."""
    gen = torch.Generator().manual_seed(seed)
    letter = torch.randn(d, generator=gen) * letter_scale
    behaviour = torch.randn(d, generator=gen)
    n = n_a + n_b
    base = torch.randn(n, d, generator=gen)
    noise = 0.5 * torch.randn(n, d, generator=gen)
    sign = torch.tensor([1.0] * n_a + [-1.0] * n_b)[:, None]
    pos = base + behaviour + noise + sign * letter / 2
    neg = base - sign * letter / 2
    return pos, neg, ["A"] * n_a + ["B"] * n_b, letter, behaviour


def test_no_letter_effect_with_uneven_split_gives_no_letter_direction() -> None:
    # 3:1 split and no letter effect: the old estimate (mean read at A - mean read at B) was
    # behaviour / 2 here, so its cosine with the raw vector was ~1
    pos, neg, letters, _, behaviour = _planted_pairs(60, 20, 0.0)
    conf = letter_confound(pos, neg, letters)
    assert abs(conf.cosine_raw) < 0.2
    assert abs(conf.cosine_balanced) < 0.2
    assert float(torch.cosine_similarity(conf.balanced_vector, behaviour, dim=0)) > 0.95


@pytest.mark.parametrize(("n_a", "n_b"), [(60, 20), (40, 40), (10, 70)])
def test_planted_letter_direction_is_recovered_at_any_split(n_a: int, n_b: int) -> None:
    pos, neg, letters, letter, behaviour = _planted_pairs(n_a, n_b, 2.0, seed=n_a)
    conf = letter_confound(pos, neg, letters)
    assert float(torch.cosine_similarity(conf.letter_direction, letter, dim=0)) > 0.98
    assert float(torch.cosine_similarity(conf.balanced_vector, behaviour, dim=0)) > 0.95
    assert (conf.n_a_matching, conf.n_b_matching) == (n_a, n_b)


def test_swapped_set_reports_the_raw_split_of_the_items_as_given() -> None:
    # items 3:1 on A, each followed by its swapped copy; computed on the whole swapped set the raw
    # vector equals the balanced one and the imbalance vanishes, hiding the split raw CAA carries
    gen = torch.Generator().manual_seed(5)
    n_a, n_b, d = 30, 10, 64
    letter, behaviour = 3.0 * torch.randn(d, generator=gen), torch.randn(d, generator=gen)
    sign = torch.tensor([1.0] * n_a + [-1.0] * n_b)[:, None]
    given = behaviour + sign * letter + 0.5 * torch.randn(n_a + n_b, d, generator=gen)
    copy = behaviour - sign * letter + 0.5 * torch.randn(n_a + n_b, d, generator=gen)
    diffs = torch.stack([given, copy], 1).reshape(-1, d)
    letters = [x for s in sign.flatten().tolist() for x in (("A", "B") if s > 0 else ("B", "A"))]
    original = [i % 2 == 0 for i in range(2 * (n_a + n_b))]
    hidden = letter_confound(diffs, torch.zeros_like(diffs), letters)
    assert hidden.imbalance_share < 0.05
    shown = letter_confound(diffs, torch.zeros_like(diffs), letters, original=original)
    assert (shown.n_a_matching, shown.n_b_matching) == (n_a, n_b)
    torch.testing.assert_close(shown.raw_vector, given.mean(0))
    expected = float((letter * (n_a - n_b) / (n_a + n_b)).norm()) / float(shown.raw_vector.norm())
    assert shown.imbalance_share == pytest.approx(expected, rel=0.1)
    assert shown.cosine_raw > 0.3 > abs(shown.cosine_balanced)


def test_item_differences_make_the_item_the_unit() -> None:
    # each item's swapped copy repeats its difference exactly: 2n rows carry only n units
    gen = torch.Generator().manual_seed(3)
    n, d = 12, 8
    diffs = torch.randn(n, d, generator=gen)
    pos = diffs.repeat_interleave(2, 0)
    caa = CAAResult(
        vector=pos.mean(0),
        positive=pos,
        negative=torch.zeros_like(pos),
        layer=0,
        balance="swap",
        item_ids=tuple(i for i in range(n) for _ in range(2)),
    )
    assert caa.n_items == n
    per_item = caa.item_differences()
    torch.testing.assert_close(per_item, diffs)
    item_se = item_slopes_summary(per_item[:, 0]).se
    copy_se = item_slopes_summary(pos[:, 0]).se  # what a copy-level SE would say
    assert item_slopes_summary(per_item[:, 0]).df == n - 1
    assert item_se == pytest.approx(copy_se * ((2 * n - 1) / (n - 1)) ** 0.5, rel=1e-6)
    with pytest.raises(ValueError, match="item_ids"):
        CAAResult(vector=pos.mean(0), positive=pos, negative=pos, layer=0, balance="swap", item_ids=(0, 1))


# --- parity with the steering-vectors library (0.12.2): same model, data and read position ------------
# steering-vectors declares ``transformers<5`` but runs on 5.x: it is installed without its dependencies
# (``pip install --no-deps steering-vectors==0.12.2``) so it never downgrades transformers.


@pytest.mark.skipif(
    importlib.util.find_spec("steering_vectors") is None or importlib.util.find_spec("sklearn") is None,
    reason="steering_vectors (and its import-time dependency scikit-learn) is not importable: "
    "install it with `pip install --no-deps steering-vectors==0.12.2`",
)
@pytest.mark.parametrize("kind", ["gemma2", "llama"])
def test_vectors_match_train_steering_vector(kind: str) -> None:
    from steering_vectors import train_steering_vector

    items = load_ab_items("survival_instinct")[:4]
    ds = load_freeform("sentiment")
    tok = word_tokenizer([i.question for i in items] + [x.prompt + x.positive + x.negative for x in ds.items])
    model = tiny_model(kind, len(tok), seed=7)
    layer = 1
    for pairs in (ab_pairs(items, tok), freeform_pairs(ds.items[:4])):
        theirs = train_steering_vector(
            model,
            tok,
            [(p.positive, p.negative) for p in pairs],
            layers=[layer],
            read_token_index=-1,
            batch_size=1,
        ).layer_activations[layer]
        ours = extract_caa(model, tok, pairs, layer, balance="none", batch_size=4)
        scale = float(ours.positive.norm(dim=1).mean())
        torch.testing.assert_close(ours.vector, theirs.float(), rtol=1e-5, atol=1e-6 * scale)
        assert float(theirs.norm()) > 1e-3 * scale  # a real difference, not two zero vectors


def test_extract_caa_layers_equals_one_layer_at_a_time(
    model: PreTrainedModel, tok: PreTrainedTokenizerFast, items: list[ABItem]
) -> None:
    both = extract_caa_layers(model, tok, items[:6], [2, 1], batch_size=4)
    assert sorted(both) == [1, 2]
    for layer in (1, 2):
        alone = extract_caa(model, tok, items[:6], layer, batch_size=4, share_prefix=False)
        torch.testing.assert_close(both[layer].positive, alone.positive, rtol=0, atol=0)
        torch.testing.assert_close(both[layer].negative, alone.negative, rtol=0, atol=0)
        torch.testing.assert_close(both[layer].vector, alone.vector, rtol=0, atol=0)
        assert (both[layer].layer, both[layer].balance, both[layer].item_ids) == (
            layer, alone.balance, alone.item_ids
        )  # fmt: skip
        assert both[layer].to_dict() == alone.to_dict()
