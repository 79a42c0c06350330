"""Calibration of the leaning and decomposition verdicts on planted worlds.

Null worlds have no behaviour features (``n_behaviour_features=0``): positive and negative prompts share
a context and draw their nuisance features from the same distribution, so no feature leans and the CAA
vector is noise. There each verdict may say "problem" at most at its nominal rate alpha = 0.05, within
3 Monte Carlo standard errors: ``rate <= alpha + 3 sqrt(alpha (1 - alpha) / W)``. Effect worlds plant 8
behaviour features (half negative-leaning) of lean 4.5, just above the JumpReLU threshold 4, with 24
items; there each verdict must say "problem" in at least 80% of worlds (the leaning verdict needs a
flagged feature to pass Holm's family-wise bound: with 20 items its power is 0.78, with 24 about 0.9).

W is 20 null and 10 effect worlds in the fast tier, 200 and 50 with ``HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

import math
import os

import torch

from sae_steer_checks.diagnostics.leaning import leaning_check
from sae_steer_checks.diagnostics.nulls import decomposition_nulls
from sae_steer_checks.sae.protocol import encode_in_sae_space
from sae_steer_checks.synthetic import WorldConfig, build_world

ALPHA = 0.05
THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
N_NULL_WORLDS = 200 if THOROUGH else 20
N_EFFECT_WORLDS = 50 if THOROUGH else 10
EFFECT = 4.5
N_PAIRS = 24


def _verdicts(seed: int, n_behaviour: int) -> tuple[str, str]:
    """(leaning verdict, decomposition verdict) on one world."""
    config = WorldConfig(
        d_model=128,
        d_sae=256,
        n_behaviour_features=n_behaviour,
        negative_fraction=0.5,
        behaviour_magnitude=EFFECT,
        n_aligned_pairs=0,
        seed=1000 + seed,
    )
    world = build_world(config)
    pos, neg = world.sample_contrastive(N_PAIRS, torch.Generator().manual_seed(seed))
    acts = world.sample_activations(100, torch.Generator().manual_seed(10_000 + seed))
    v = (pos - neg).mean(0)
    f_v = encode_in_sae_space(world.sae, v[None])[0]
    leaning = leaning_check(
        world.sae, pos, neg, vector_acts=f_v, n_perm=1000, n_null=200, n_boot=200, generator=seed
    )
    nulls = decomposition_nulls(world.sae, v, activations=acts, pos=pos, neg=neg, k_max=32, generator=seed)
    return leaning.verdict(), nulls.verdict()


def _bound(w: int) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / w)


def test_null_worlds_say_problem_at_most_at_the_nominal_rate() -> None:
    results = [_verdicts(seed, 0) for seed in range(N_NULL_WORLDS)]
    leaning_rate = sum(lv == "problem" for lv, _ in results) / N_NULL_WORLDS
    decomposition_rate = sum(dv == "problem" for _, dv in results) / N_NULL_WORLDS
    assert leaning_rate <= _bound(N_NULL_WORLDS)
    assert decomposition_rate <= _bound(N_NULL_WORLDS)


def test_effect_worlds_say_problem_with_power_at_least_0_8() -> None:
    results = [_verdicts(seed, 8) for seed in range(N_EFFECT_WORLDS)]
    assert sum(lv == "problem" for lv, _ in results) / N_EFFECT_WORLDS >= 0.8
    assert sum(dv == "problem" for _, dv in results) / N_EFFECT_WORLDS >= 0.8
