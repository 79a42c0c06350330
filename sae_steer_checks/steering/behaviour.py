"""Former home of tasks, scores and steerability; kept so that older imports keep working.

The code now lives in ``steering.tasks`` (tasks), ``steering.scoring`` (scores) and
``steering.steerability`` (sweeps, slopes, random null). Import from those.
"""

from __future__ import annotations

from sae_steer_checks.steering.scoring import ItemScoreFn, group_mean, make_score_fn, score_grid, score_items
from sae_steer_checks.steering.steerability import (
    Steerability,
    SweepResult,
    random_like,
    relative_multipliers,
    steerability,
    sweep,
    sweeps,
)
from sae_steer_checks.steering.tasks import BehaviourTask, ab_task, freeform_task

__all__ = [
    "BehaviourTask",
    "ItemScoreFn",
    "Steerability",
    "SweepResult",
    "ab_task",
    "freeform_task",
    "group_mean",
    "make_score_fn",
    "random_like",
    "relative_multipliers",
    "score_grid",
    "score_items",
    "steerability",
    "sweep",
    "sweeps",
]
