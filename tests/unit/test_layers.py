"""The per-layer steerability sweep on a tiny model."""

from __future__ import annotations

import pytest
import torch

from sae_steer_checks.data.prompts import freeform_pairs
from sae_steer_checks.data.schema import load_freeform
from sae_steer_checks.steering.caa import extract_caa
from sae_steer_checks.steering.layers import layer_sweep
from sae_steer_checks.steering.slopes import relative_multipliers, steerability
from sae_steer_checks.steering.tasks import freeform_task
from tests.helpers.tiny_lm import tiny_model, word_tokenizer


def test_layer_sweep_reports_each_layer_in_fraction_units() -> None:
    ds = load_freeform("sentiment")
    texts = [x.prompt + x.positive + x.negative for x in ds.items]
    tok = word_tokenizer(texts + list(ds.positive_targets + ds.negative_targets))
    model = tiny_model("llama", len(tok), seed=3)
    train, test = freeform_pairs(ds.items[:8]), ds.items[8:12]
    task = freeform_task(tok, test, ds.positive_targets, ds.negative_targets)
    fractions = (-0.5, 0.0, 0.5)
    result = layer_sweep(
        model, tok, train, task, [0, 2], fractions=fractions, generator=torch.Generator().manual_seed(0)
    )
    assert [r.layer for r in result.results] == [0, 2]
    assert result.best_layer == max(result.results, key=lambda r: r.slope).layer
    # layer 2 by hand: slope per multiplier times activation norm over vector norm
    caa = extract_caa(model, tok, train, 2)
    act = float(torch.cat([caa.positive, caa.negative]).norm(dim=1).mean())
    ms = relative_multipliers(caa.norm, act, fractions)
    steer = steerability(model, task, 2, caa.vector, ms, generator=torch.Generator().manual_seed(1))
    assert result.results[1].slope == pytest.approx(steer.vector.slope * act / caa.norm, rel=1e-4)
    assert result.to_dict()["best_layer"] == result.best_layer
    with pytest.raises(ValueError, match="layer must be in"):
        layer_sweep(model, tok, train, task, [5])
