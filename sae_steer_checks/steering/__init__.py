"""Steering: CAA extraction, behaviour tasks and their scores, steerability against a random null, layer sweeps."""

from sae_steer_checks.steering.behaviour import (
    BehaviourTask,
    Steerability,
    ab_task,
    freeform_task,
    make_score_fn,
    steerability,
)
from sae_steer_checks.steering.caa import CAAResult, LetterConfound, extract_caa
from sae_steer_checks.steering.layers import LayerSweep, layer_sweep

__all__ = [
    "BehaviourTask",
    "CAAResult",
    "LayerSweep",
    "LetterConfound",
    "Steerability",
    "ab_task",
    "extract_caa",
    "freeform_task",
    "layer_sweep",
    "make_score_fn",
    "steerability",
]
