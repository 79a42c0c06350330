"""The SAE as this library sees it: a Protocol, float32 encoding helpers, loading from disk or sae-lens."""

from sae_steer_checks.sae.loading import (
    bundled_sae_dir,
    load_sae,
    load_sae_folder,
    load_sae_metadata,
    parse_sae_spec,
    sae_layer,
)
from sae_steer_checks.sae.protocol import SAELike, describe_sae, validate_sae

__all__ = [
    "SAELike",
    "bundled_sae_dir",
    "describe_sae",
    "load_sae",
    "load_sae_folder",
    "load_sae_metadata",
    "parse_sae_spec",
    "sae_layer",
    "validate_sae",
]
