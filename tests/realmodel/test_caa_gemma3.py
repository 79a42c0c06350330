"""CAA extraction and behaviour on the packaged Gemma 3 270M (float32, CPU)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from sae_steer_checks.data.prompts import ab_pairs, freeform_pairs, tokenize
from sae_steer_checks.data.schema import load_ab_items, load_freeform, split_items
from sae_steer_checks.lm.models import LoadedModel
from sae_steer_checks.lm.readout import read_pairs
from sae_steer_checks.steering.caa import extract_caa
from sae_steer_checks.steering.slopes import relative_multipliers, steerability
from sae_steer_checks.steering.tasks import freeform_task

pytestmark = pytest.mark.realmodel

#: Layer picked by the steerability sweep on the bundled sentiment set (see the README).
SENTIMENT_LAYER = 10


def test_reads_match_hidden_states(gemma3_270m: LoadedModel) -> None:
    model, tok = gemma3_270m.model, gemma3_270m.tokenizer
    pairs = ab_pairs(load_ab_items("corrigibility")[:2], tok) + freeform_pairs(
        load_freeform("sentiment").items[:2]
    )
    layer = 9
    pos, neg = read_pairs(model, tok, pairs, layer, batch_size=4)
    ref = []
    for pair in pairs:
        for text in (pair.positive, pair.negative):
            with torch.no_grad():
                out = model(torch.tensor([tokenize(tok, text)]), output_hidden_states=True)
            ref.append(out.hidden_states[layer + 1][0, -1].float())
    ref_t = torch.stack(ref)
    scale = float(ref_t.norm(dim=1).mean())
    torch.testing.assert_close(
        torch.stack([pos, neg], 1).reshape(-1, pos.shape[1]), ref_t, rtol=1e-4, atol=1e-5 * scale
    )


def test_sentiment_vector_steers_far_above_random(gemma3_270m: LoadedModel) -> None:
    model, tok = gemma3_270m.model, gemma3_270m.tokenizer
    ds = load_freeform("sentiment")
    train, test = split_items(list(ds.items), 0.25, seed=0)
    caa = extract_caa(model, tok, freeform_pairs(train), SENTIMENT_LAYER)
    act_norm = float(torch.cat([caa.positive, caa.negative]).norm(dim=1).mean())
    multipliers = relative_multipliers(caa.norm, act_norm, (-0.25, 0.0, 0.25))
    task = freeform_task(tok, test, ds.positive_targets, ds.negative_targets)
    # single random directions at a quarter of the activation norm move sentiment by chance too, so
    # the null pools four of them and its error includes their spread
    result = steerability(
        model,
        task,
        SENTIMENT_LAYER,
        caa.vector,
        multipliers,
        n_random=4,
        generator=torch.Generator().manual_seed(0),
    )
    assert result.vector.slope > 0
    assert result.vector.scores[2] > result.vector.scores[1] > result.vector.scores[0]
    assert result.z > 4.0, result.to_dict()


def test_letter_confound_on_uneven_split(gemma3_270m: LoadedModel) -> None:
    model, tok = gemma3_270m.model, gemma3_270m.tokenizer
    items = load_ab_items("corrigibility")
    uneven = [i for i in items if i.matching == "A"][:12] + [i for i in items if i.matching == "B"][:4]
    raw = extract_caa(model, tok, uneven, 9, balance="none")
    swapped = extract_caa(model, tok, uneven, 9)  # balanced by swapping choices
    assert raw.confound is not None
    assert swapped.confound is not None
    # the raw figures describe raw CAA on the items as given, whatever the balancing
    # (read in other batches, so equal up to float32 batch-composition noise)
    scale = float(raw.vector.norm())
    torch.testing.assert_close(swapped.confound.raw_vector, raw.vector, rtol=0, atol=1e-4 * scale)
    # with matching answers 3:1 on "A", raw CAA carries the letter direction; the balanced vector less so
    assert swapped.confound.imbalance_share > 0.3
    assert abs(swapped.confound.cosine_balanced) < swapped.confound.cosine_raw


@pytest.mark.skipif(
    importlib.util.find_spec("steering_vectors") is None,
    reason="steering_vectors is not importable: `pip install --no-deps steering-vectors==0.12.2`",
)
def test_parity_with_steering_vectors(gemma3_270m: LoadedModel) -> None:
    from steering_vectors import train_steering_vector

    model, tok = gemma3_270m.model, gemma3_270m.tokenizer
    pairs = ab_pairs(load_ab_items("corrigibility")[:6], tok)
    theirs = train_steering_vector(
        model, tok, [(p.positive, p.negative) for p in pairs], layers=[9], read_token_index=-1
    ).layer_activations[9]
    ours = extract_caa(model, tok, pairs, 9, balance="none")
    scale = float(ours.positive.norm(dim=1).mean())
    torch.testing.assert_close(ours.vector, theirs.float(), rtol=1e-4, atol=1e-5 * scale)
