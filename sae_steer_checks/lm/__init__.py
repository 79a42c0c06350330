"""Language models: loading (the packaged Gemma 3 270M too), residual hooks and batched residual reads."""

from sae_steer_checks.lm.hooks import add_to_residual, capture_residual, residual_activations
from sae_steer_checks.lm.models import LoadedModel, decoder_layers, load_model, validate_layer
from sae_steer_checks.lm.readout import read_pairs

__all__ = [
    "LoadedModel",
    "add_to_residual",
    "capture_residual",
    "decoder_layers",
    "load_model",
    "read_pairs",
    "residual_activations",
    "validate_layer",
]
