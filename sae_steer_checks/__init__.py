"""Check whether a sparse autoencoder gives a trustworthy account of a steering vector.

The public API is re-exported here and imported lazily, so ``import sae_steer_checks`` (and the CLI's
``--help``) stays fast and has no side effects: heavy modules (torch, transformers, sae-lens) load on
first use of a name that needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # the SAE as the library sees it
    "SAELike": "sae",
    "check_sae": "sae",
    "describe_sae": "sae",
    # planted-feature world
    "WorldConfig": "synthetic",
    "PlantedWorld": "synthetic",
    "GroundTruth": "synthetic",
    "build_world": "synthetic",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sae_steer_checks' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sae_steer_checks.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
