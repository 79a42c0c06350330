"""Steering: CAA, behaviour tasks and scores, steerability, layer sweeps, vectors learned in the SAE basis."""

from sae_steer_checks.steering.caa import CAAResult, LetterConfound, extract_caa
from sae_steer_checks.steering.layers import LayerSweep, layer_sweep
from sae_steer_checks.steering.learned import LearnedVector, fit_sparse_steering, learn_in_sae_basis
from sae_steer_checks.steering.multipliers import DEFAULT_FRACTIONS, default_multipliers
from sae_steer_checks.steering.objective import BehaviourObjective
from sae_steer_checks.steering.scoring import ItemScoreFn, make_score_fn
from sae_steer_checks.steering.slopes import Steerability, steerability
from sae_steer_checks.steering.tasks import (
    BehaviourTask,
    ab_task,
    behaviour_task,
    completion_task,
    freeform_task,
    training_task,
)

__all__ = [
    "DEFAULT_FRACTIONS",
    "BehaviourObjective",
    "BehaviourTask",
    "CAAResult",
    "ItemScoreFn",
    "LayerSweep",
    "LearnedVector",
    "LetterConfound",
    "Steerability",
    "ab_task",
    "behaviour_task",
    "completion_task",
    "default_multipliers",
    "extract_caa",
    "fit_sparse_steering",
    "freeform_task",
    "layer_sweep",
    "learn_in_sae_basis",
    "make_score_fn",
    "steerability",
    "training_task",
]
