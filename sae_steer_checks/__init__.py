"""Check whether a sparse autoencoder gives a trustworthy account of a steering vector.

The names here follow a researcher's flow: load a dataset and split it, load a model, extract a CAA
vector, read ordinary text activations, build a behaviour task, run every check against an SAE, write
the report. Everything else lives in its subpackage (``data``, ``lm``, ``steering``, ``diagnostics``,
``report``, ``cli``). Names are imported lazily, so
``import sae_steer_checks`` (and the CLI's ``--help``) stays fast and has no side effects.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sae_steer_checks.data.schema import load_dataset, split_dataset
    from sae_steer_checks.diagnostics.run import CheckConfig, CheckResult, run_checks
    from sae_steer_checks.lm.activations import text_activations
    from sae_steer_checks.lm.models import LoadedModel, load_model
    from sae_steer_checks.report.verdicts import collect_verdicts
    from sae_steer_checks.report.write import write_report
    from sae_steer_checks.sae.loading import load_sae, load_sae_metadata
    from sae_steer_checks.sae.protocol import SAELike
    from sae_steer_checks.steering.caa import CAAResult, extract_caa
    from sae_steer_checks.steering.learned import learn_in_sae_basis
    from sae_steer_checks.steering.multipliers import default_multipliers
    from sae_steer_checks.steering.scoring import make_score_fn
    from sae_steer_checks.steering.tasks import ab_task, freeform_task, training_task
    from sae_steer_checks.synthetic import WorldConfig, build_world
    from sae_steer_checks.train import TrainConfig, train_sae

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "load_dataset": "data.schema",
    "split_dataset": "data.schema",
    "LoadedModel": "lm.models",
    "load_model": "lm.models",
    "text_activations": "lm.activations",
    "CAAResult": "steering.caa",
    "extract_caa": "steering.caa",
    "ab_task": "steering.tasks",
    "freeform_task": "steering.tasks",
    "training_task": "steering.tasks",
    "learn_in_sae_basis": "steering.learned",
    "make_score_fn": "steering.scoring",
    "default_multipliers": "steering.multipliers",
    "SAELike": "sae.protocol",
    "load_sae": "sae.loading",
    "load_sae_metadata": "sae.loading",
    "CheckConfig": "diagnostics.run",
    "CheckResult": "diagnostics.run",
    "run_checks": "diagnostics.run",
    "write_report": "report.write",
    "collect_verdicts": "report.verdicts",
    "WorldConfig": "synthetic",
    "build_world": "synthetic",
    "TrainConfig": "train",
    "train_sae": "train",
}

__all__ = [
    "CAAResult",
    "CheckConfig",
    "CheckResult",
    "LoadedModel",
    "SAELike",
    "TrainConfig",
    "WorldConfig",
    "__version__",
    "ab_task",
    "build_world",
    "collect_verdicts",
    "default_multipliers",
    "extract_caa",
    "freeform_task",
    "learn_in_sae_basis",
    "load_dataset",
    "load_model",
    "load_sae",
    "load_sae_metadata",
    "make_score_fn",
    "run_checks",
    "split_dataset",
    "text_activations",
    "train_sae",
    "training_task",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sae_steer_checks' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sae_steer_checks.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
