"""The packaged Gemma 3 270M: architecture, layer convention and speed-relevant facts."""

from __future__ import annotations

import pytest
import torch

from sae_steer_checks.lm.hooks import capture_residual, residual_activations
from sae_steer_checks.lm.models import LoadedModel

pytestmark = pytest.mark.realmodel


def test_packaged_model_shape(gemma3_270m: LoadedModel) -> None:
    assert type(gemma3_270m.model).__name__ == "Gemma3ForCausalLM"
    assert (gemma3_270m.n_layers, gemma3_270m.d_model) == (18, 640)
    assert gemma3_270m.tokenizer is not None
    assert gemma3_270m.tokenizer.bos_token_id == 2
    assert gemma3_270m.dtype == torch.float32


def test_layer_convention_on_the_real_model(gemma3_270m: LoadedModel) -> None:
    batch = gemma3_270m.tokenizer(["The capital of France is"], return_tensors="pt")
    with torch.no_grad(), capture_residual(gemma3_270m.model, [3, 10]) as captured:
        out = gemma3_270m.model(**batch, output_hidden_states=True)
    for layer in (3, 10):
        assert torch.equal(captured[layer][0], out.hidden_states[layer + 1])
        early = residual_activations(gemma3_270m.model, batch["input_ids"], batch["attention_mask"], layer)
        assert torch.equal(early, out.hidden_states[layer + 1])


def test_model_continues_text_sensibly(gemma3_270m: LoadedModel) -> None:
    tokenizer = gemma3_270m.tokenizer
    batch = tokenizer(["One, two, three, four,"], return_tensors="pt")
    with torch.no_grad():
        logits = gemma3_270m.model(**batch).logits[0, -1]
    assert tokenizer.decode(logits.argmax()).strip() == "five"
