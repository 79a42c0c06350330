"""The study's figures on Gemma 2 2B, layer 14, with Gemma Scope (16k, average L0 173).

The weight-only check (the decoder cosine of features 14004 and 3517) needs no GPU and runs wherever
the SAE weights are reachable; the rest needs the model on a CUDA GPU and the CAA corrigibility set.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sae_steer_checks.data.prompts import ab_pairs, tokenize
from sae_steer_checks.data.schema import ABItem
from sae_steer_checks.lm.hooks import residual_activations
from sae_steer_checks.lm.models import LoadedModel
from sae_steer_checks.steering.caa import CAAResult, extract_caa

LAYER = 14
NEGATIVE_FEATURE, SPURIOUS_FEATURE, BIAS_FEATURE = 14004, 3517, 4888


def test_decoder_cosine_of_the_anti_aligned_pair(gemma_scope_sae: Any) -> None:
    w = gemma_scope_sae.W_dec.detach().float()
    cos = torch.cosine_similarity(w[NEGATIVE_FEATURE], w[SPURIOUS_FEATURE], dim=0)
    assert float(cos) == pytest.approx(-0.82, abs=0.01)


@pytest.fixture(scope="module")
def study(
    gemma2_2b: LoadedModel, gemma_scope_sae: Any, corrigibility_items: list[ABItem]
) -> tuple[CAAResult, Any]:
    """Raw CAA over all items (as in the study) and the full check report."""
    from sae_steer_checks.diagnostics.run import run_checks

    model, tok = gemma2_2b.model, gemma2_2b.tokenizer
    caa = extract_caa(model, tok, corrigibility_items, LAYER, balance="none", batch_size=16)
    # ordinary activations: every token of the prompts except BOS (whose norm is an outlier)
    acts = []
    for pair in ab_pairs(corrigibility_items, tok):
        ids = torch.tensor([tokenize(tok, pair.positive)])
        acts.append(residual_activations(model, ids, None, LAYER)[0, 1:].cpu())
    activations = torch.cat(acts)
    result = run_checks(
        gemma_scope_sae,
        caa.vector,
        caa.positive,
        caa.negative,
        activations,
        device=gemma2_2b.device,
    )
    return caa, result


@pytest.mark.gpu
def test_vector_norm_below_first_percentile(study: tuple[CAAResult, Any]) -> None:
    _, result = study
    assert result.norm.percentile < 1.0, result.norm.to_dict()


@pytest.mark.gpu
def test_top_features_follow_the_encoder_bias(study: tuple[CAAResult, Any]) -> None:
    _, result = study
    top_v = [f for f, _ in result.bias.own.top_vector[:5]]
    top_0 = [f for f, _ in result.bias.own.top_zero[:5]]
    assert top_v[0] == BIAS_FEATURE
    assert len(set(top_v) & set(top_0)) >= 4, (top_v, top_0)


@pytest.mark.gpu
def test_most_active_features_lean_negative(study: tuple[CAAResult, Any]) -> None:
    _, result = study
    leaning = result.to_dict()["negative_leaning"]
    assert leaning["fraction"] > 0.5, leaning  # study: 51.2%
    assert bool(result.leaning.negative[NEGATIVE_FEATURE])
    assert float(result.bias.own.acts_vector[NEGATIVE_FEATURE]) == 0.0


@pytest.mark.gpu
def test_spurious_positive_explained_by_partner(study: tuple[CAAResult, Any]) -> None:
    _, result = study
    assert float(result.bias.own.acts_vector[SPURIOUS_FEATURE]) > 0.0
    explained = {(s.feature, s.explained_by) for s in result.spurious.spurious}
    assert (SPURIOUS_FEATURE, NEGATIVE_FEATURE) in explained, explained
