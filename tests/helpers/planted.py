"""One check on the planted world and its inputs (built once per session by tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sae_steer_checks.diagnostics.run import CheckConfig, CheckResult, run_checks
from sae_steer_checks.synthetic import PlantedWorld

CHEAP = CheckConfig(n_null=19, n_boot=50)
"""The fewest null and bootstrap draws that still let every Monte Carlo test reach alpha = 0.05."""


@dataclass(frozen=True)
class PlantedCheck:
    """One ``run_checks`` on the planted world, with the inputs it was given."""

    world: PlantedWorld
    vector: Tensor
    pos: Tensor
    neg: Tensor
    activations: Tensor
    config: CheckConfig
    result: CheckResult


def planted_check(world: PlantedWorld, config: CheckConfig = CHEAP, *, seed: int = 0) -> PlantedCheck:
    """64 contrastive pairs and 512 activations of ``world``, checked with ``config`` and its item scores."""
    gen = torch.Generator().manual_seed(seed)
    pos, neg = world.sample_contrastive(64, gen)
    acts = world.sample_activations(512, gen)
    vector = (pos - neg).mean(0)
    result = run_checks(world.sae, vector, pos, neg, acts, score_fn=world.item_scores, config=config)
    return PlantedCheck(world, vector, pos, neg, acts, config, result)
