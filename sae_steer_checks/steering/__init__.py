"""Steering: CAA extraction, behaviour tasks and scores, steerability against a random null, layer sweeps."""

from sae_steer_checks.steering.caa import CAAResult, LetterConfound, extract_caa
from sae_steer_checks.steering.layers import LayerSweep, layer_sweep
from sae_steer_checks.steering.multipliers import DEFAULT_FRACTIONS, default_multipliers
from sae_steer_checks.steering.scoring import ItemScoreFn, make_score_fn
from sae_steer_checks.steering.slopes import Steerability, steerability
from sae_steer_checks.steering.tasks import BehaviourTask, ab_task, behaviour_task, freeform_task

__all__ = [
    "DEFAULT_FRACTIONS",
    "BehaviourTask",
    "CAAResult",
    "ItemScoreFn",
    "LayerSweep",
    "LetterConfound",
    "Steerability",
    "ab_task",
    "behaviour_task",
    "default_multipliers",
    "extract_caa",
    "freeform_task",
    "layer_sweep",
    "make_score_fn",
    "steerability",
]
