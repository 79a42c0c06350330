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
    "SAELike": "sae",
    "check_sae": "sae",
    "describe_sae": "sae",
    "WorldConfig": "synthetic",
    "PlantedWorld": "synthetic",
    "GroundTruth": "synthetic",
    "build_world": "synthetic",
    "CheckConfig": "check",
    "CheckResult": "check",
    "run_checks": "check",
    "NormCheck": "norms",
    "norm_check": "norms",
    "BiasCheck": "bias",
    "bias_check": "bias",
    "LeaningCheck": "leaning",
    "leaning_check": "leaning",
    "AlignedPairs": "pairs",
    "SpuriousCheck": "pairs",
    "find_aligned_pairs": "pairs",
    "spurious_check": "pairs",
    "SparseCode": "decompose",
    "omp": "decompose",
    "gradient_pursuit": "decompose",
    "ScoreFn": "retention",
    "Retention": "retention",
    "steerability_slope": "retention",
    "retention": "retention",
    "LoadedModel": "models",
    "load_model": "models",
    "decoder_layers": "models",
    "check_layer": "models",
    "capture_residual": "hooks",
    "residual_activations": "hooks",
    "add_to_residual": "hooks",
    "ABItem": "data",
    "ContrastivePair": "data",
    "FreeformDataset": "data",
    "FreeformItem": "data",
    "load_ab_items": "data",
    "load_freeform": "data",
    "ab_pairs": "data",
    "ab_prompt": "data",
    "freeform_pairs": "data",
    "split_items": "data",
    "swap_choices": "data",
    "CAAResult": "caa",
    "LetterConfound": "caa",
    "extract_caa": "caa",
    "letter_confound": "caa",
    "BehaviourTask": "behaviour",
    "Steerability": "behaviour",
    "SweepResult": "behaviour",
    "ab_task": "behaviour",
    "freeform_task": "behaviour",
    "make_score_fn": "behaviour",
    "score_items": "behaviour",
    "sweep": "behaviour",
    "steerability": "behaviour",
    "LayerSweep": "layers",
    "layer_sweep": "layers",
    "TrainConfig": "train",
    "train_sae": "train",
    "load_trained_sae": "train",
    "render_markdown": "report",
    "write_report": "report",
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
