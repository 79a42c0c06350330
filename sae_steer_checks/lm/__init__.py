"""Language models: loading (the packaged Gemma 3 270M too), hooks, batched reads, activations of text."""

from sae_steer_checks.lm.activations import (
    DEFAULT_CORPORA,
    TextActivations,
    collect_activations,
    text_activations,
)
from sae_steer_checks.lm.hooks import add_to_residual, capture_residual, residual_activations
from sae_steer_checks.lm.models import (
    LoadedModel,
    decoder_layers,
    default_device,
    load_model,
    validate_layer,
)
from sae_steer_checks.lm.readout import read_pairs

__all__ = [
    "DEFAULT_CORPORA",
    "LoadedModel",
    "TextActivations",
    "add_to_residual",
    "capture_residual",
    "collect_activations",
    "decoder_layers",
    "default_device",
    "load_model",
    "read_pairs",
    "residual_activations",
    "text_activations",
    "validate_layer",
]
