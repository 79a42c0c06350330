"""The bundled SAE: loads with sae-lens and meets its quality bars on held-out Gemma 3 270M text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from sae_lens import JumpReLUSAE

from sae_steer_checks.data.corpus import split_corpus
from sae_steer_checks.lm.models import LoadedModel
from sae_steer_checks.train import collect_activations, evaluate_sae

pytestmark = pytest.mark.realmodel


def test_bundled_sae_is_small_and_in_sae_lens_format(bundled_sae_dir: Path) -> None:
    files = {path.name: path.stat().st_size for path in bundled_sae_dir.iterdir()}
    assert {"cfg.json", "sae_weights.safetensors"} <= set(files)
    assert sum(files.values()) <= 16 * 2**20


def test_bundled_sae_follows_gemma_scope_convention(
    bundled_sae: Any, bundled_sae_metadata: dict[str, Any], gemma3_270m_bf16: LoadedModel
) -> None:
    assert isinstance(bundled_sae, JumpReLUSAE)
    assert bundled_sae.cfg.apply_b_dec_to_input is False
    assert bundled_sae.cfg.d_in == gemma3_270m_bf16.d_model
    norms = bundled_sae.W_dec.norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms), rtol=0, atol=1e-4)
    layer = bundled_sae_metadata["layer"]
    assert 0 <= layer < gemma3_270m_bf16.n_layers
    assert bundled_sae_metadata["hook_name"] == f"blocks.{layer}.hook_resid_post"
    assert bundled_sae_metadata["width"] == bundled_sae.cfg.d_sae
    for key in ("corpus", "n_train_tokens", "seed", "explained_variance", "mean_l0", "recipe"):
        assert key in bundled_sae_metadata, key


@pytest.fixture(scope="module")
def heldout_activations(gemma3_270m_bf16: LoadedModel, bundled_sae_metadata: dict[str, Any]) -> torch.Tensor:
    recipe = bundled_sae_metadata["recipe"]
    split = split_corpus(
        gemma3_270m_bf16.tokenizer,
        recipe["corpora"],
        window=recipe["window"],
        heldout_fraction=recipe["heldout_fraction"],
        seed=recipe["seed"],
    )
    assert split.n_heldout_tokens == bundled_sae_metadata["n_heldout_tokens"]
    assert split.n_train_tokens == bundled_sae_metadata["n_train_tokens"]
    inner = gemma3_270m_bf16.model.model  # the decoder without the 262k-token head
    return collect_activations(inner, split.heldout, bundled_sae_metadata["layer"])


def test_bundled_sae_meets_quality_bars_on_heldout_text(
    bundled_sae: Any, bundled_sae_metadata: dict[str, Any], heldout_activations: torch.Tensor
) -> None:
    quality = evaluate_sae(bundled_sae, heldout_activations)
    assert quality.explained_variance >= 0.80
    assert quality.dead_fraction <= 0.20
    assert 20 <= quality.mean_l0 <= 150
    # the figures recorded in cfg.json are the ones this text gives
    assert quality.explained_variance == pytest.approx(bundled_sae_metadata["explained_variance"], abs=0.01)
    assert quality.mean_l0 == pytest.approx(bundled_sae_metadata["mean_l0"], rel=0.02)
    assert quality.dead_fraction == pytest.approx(bundled_sae_metadata["dead_fraction"], abs=0.01)


def test_activation_norms_are_in_the_thousands(heldout_activations: torch.Tensor) -> None:
    # the reason the trainer normalises its input: raw residual norms at this depth are large
    median = heldout_activations.norm(dim=-1).median().item()
    assert 1_000 < median < 50_000
