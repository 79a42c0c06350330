"""Parity with the steering-vectors library (0.12.2): same model, data and read position.

steering-vectors declares ``transformers<5`` but runs on 5.x; it is installed without its
dependencies (``pip install --no-deps steering-vectors==0.12.2``) so it never downgrades transformers.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from sae_steer_checks.data.prompts import ab_pairs, freeform_pairs
from sae_steer_checks.data.schema import load_ab_items, load_freeform
from sae_steer_checks.steering.caa import extract_caa
from tests.helpers.tiny_lm import tiny_model, word_tokenizer

pytestmark = pytest.mark.skipif(
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
