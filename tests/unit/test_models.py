"""Decoder-block addressing and model loading on tiny random-weight models (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from sae_steer_checks.lm.models import (
    LoadedModel,
    UnsupportedArchitectureError,
    decoder_layers,
    default_device,
    load_model,
    model_d_model,
    validate_layer,
)
from tests.helpers.tiny_lm import TINY_KINDS, tiny_model


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_decoder_layers_finds_every_block(kind: str) -> None:
    model = tiny_model(kind, n_layers=3)
    layers = decoder_layers(model)
    assert isinstance(layers, nn.ModuleList)
    assert len(layers) == 3
    assert model_d_model(model) == 32
    # the inner decoder (without the LM head) is addressed the same way
    inner = model.base_model
    assert decoder_layers(inner) is layers


def test_unsupported_architecture_names_the_class() -> None:
    with pytest.raises(UnsupportedArchitectureError, match="Sequential"):
        decoder_layers(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.parametrize("layer", [-1, 3, 10])
def test_check_layer_refuses_out_of_range(layer: int) -> None:
    model = tiny_model("llama", n_layers=3)
    with pytest.raises(ValueError, match=r"layer must be in 0\.\.2"):
        validate_layer(model, layer)


def test_check_layer_refuses_non_int() -> None:
    model = tiny_model("llama", n_layers=3)
    with pytest.raises(TypeError, match="layer must be an int"):
        validate_layer(model, 1.0)  # type: ignore[arg-type]
    assert validate_layer(model, 2) == 2


def test_loaded_model_validates() -> None:
    with pytest.raises(ValueError, match="n_layers"):
        LoadedModel(model=nn.Linear(2, 2), tokenizer=None, name="x", n_layers=0, d_model=2)


def test_load_model_from_local_directory(tmp_path: Path) -> None:
    model = tiny_model("llama", n_layers=2)
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path, dtype=torch.bfloat16)
    assert (loaded.n_layers, loaded.d_model) == (2, 32)
    assert loaded.dtype == torch.bfloat16
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    reference = dict(model.named_parameters())
    for name, param in loaded.model.named_parameters():
        assert torch.equal(param, reference[name].to(torch.bfloat16)), name


def test_load_model_missing_path_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="name_or_path"):
        load_model(tmp_path / "nowhere.gguf")
    with pytest.raises(FileNotFoundError, match="name_or_path"):
        load_model(str(tmp_path / "missing-dir"))


def test_load_model_offline_never_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="HF_HUB_OFFLINE"):
        load_model("sae-steer-checks-nonexistent/model-that-is-not-cached")


def test_load_model_refuses_integer_dtype() -> None:
    with pytest.raises(ValueError, match="dtype"):
        load_model("gemma3-270m", dtype=torch.int8)


def test_default_device_is_cuda_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu")
