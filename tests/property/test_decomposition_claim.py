"""The decomposition claim on planted worlds: the gap interval covers the truth; the verdict is calibrated.

The claim is "SAE(v) is a poor account of v where a signed sparse code over the same decoder is a good
one", judged at SAE(v)'s own sparsity k (see ``sae_steer_checks.diagnostics.nulls``).

Coverage: the population mean difference mu of a planted world is known exactly (its steering vector),
so ``gap(mu)`` (at mu's own SAE sparsity) is the estimand. Items are drawn around mu, v is their mean,
the bootstrap resamples items, and the basic interval must hold ``gap(mu)`` at a rate consistent with
its nominal 95%: at least ``0.95 - 3 sqrt(0.95 * 0.05 / R)`` over R repetitions.

Calibration: null worlds have no behaviour features, so positive and negative prompts are exchangeable
and v is label noise (a signed mix of the nuisance features the prompts happen to use: decoder-sparse,
so it beats isotropic directions, which is why the verdict also needs the signal test). The false
"problem" rate must stay at most ``alpha + 3 sqrt(alpha (1 - alpha) / W)``; effect worlds (8 behaviour
features, half negative-leaning, lean 4.5) must say "problem" in at least 80% of worlds. Everything runs
with the shipped defaults (39 null vectors, k_max 64, 999 sign flips, 100 bootstrap draws).

R = 40 repetitions, W = 20 null and 10 effect worlds in the fast tier; 200, 200 and 50 with
``HYPOTHESIS_PROFILE=thorough``. The null worlds are ``slow`` (``--run-slow``, ``nox -s thorough``).
"""

from __future__ import annotations

import math
import os

import pytest
import torch

from sae_steer_checks.diagnostics.nulls import DecompositionNulls, decomposition_nulls
from sae_steer_checks.diagnostics.resample import vector_draws
from sae_steer_checks.synthetic import WorldConfig, build_world

ALPHA = 0.05
LEVEL = 0.95
THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
N_REPS = 200 if THOROUGH else 40
N_NULL_WORLDS = 200 if THOROUGH else 20
N_EFFECT_WORLDS = 50 if THOROUGH else 10
ITEMS = (12, 24, 100)  # few items and many, in turn


pytestmark = pytest.mark.usefixtures("one_thread")


def _bound(rate: float, n: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / n)


def test_basic_interval_covers_the_population_gap_at_the_nominal_rate() -> None:
    config = WorldConfig(d_model=128, d_sae=512, n_behaviour_features=16, n_aligned_pairs=0, seed=1)
    world = build_world(config)
    mu = world.truth.steering_vector
    truth = decomposition_nulls(world.sae, mu, k_max=32).verdict_figures()
    # Item noise: Gaussian with the planted world's own per-coordinate spread around mu.
    pos, neg = world.sample_contrastive(2000, torch.Generator().manual_seed(0))
    sd = float(((pos - neg) - mu).pow(2).mean()) ** 0.5
    n_items, n_boot = 100, 200
    hits = 0
    for rep in range(N_REPS):
        gen = torch.Generator().manual_seed(100 + rep)
        diffs = mu + sd * torch.randn(n_items, config.d_model, generator=gen)
        v = diffs.mean(0)
        boot = vector_draws(v, diffs, n_boot=n_boot, n_shuffled=1, generator=rep).bootstrap
        result = decomposition_nulls(world.sae, v, bootstrap=boot, k_max=32, level=LEVEL, generator=rep)
        low, high = result.verdict_figures()["gap_interval"]
        hits += low <= truth["gap"] <= high
    coverage = hits / N_REPS
    assert coverage >= LEVEL - _bound(LEVEL, N_REPS), f"coverage {coverage} over {N_REPS} repetitions"


def _world_verdict(seed: int, n_behaviour: int) -> DecompositionNulls:
    """The decomposition claim on one planted world, with the shipped defaults."""
    config = WorldConfig(
        d_model=128,
        d_sae=256,
        n_behaviour_features=n_behaviour,
        negative_fraction=0.5,
        behaviour_magnitude=4.5,
        n_aligned_pairs=0,
        seed=1000 + seed,
    )
    world = build_world(config)
    n_items = ITEMS[seed % len(ITEMS)]
    gen = torch.Generator().manual_seed(seed)
    pos, neg = world.sample_contrastive(n_items, gen)
    item_ids = None
    if seed % 2:  # choice-swapped copies: the item is the unit
        pos2, neg2 = world.sample_contrastive(n_items, gen)
        pos, neg = torch.cat([pos, pos2]), torch.cat([neg, neg2])
        item_ids = torch.arange(n_items).repeat(2)
    acts = world.sample_activations(100, torch.Generator().manual_seed(10_000 + seed))
    diffs = pos - neg
    if item_ids is not None:
        diffs = (diffs[:n_items] + diffs[n_items:]) / 2
    v = diffs.mean(0)
    boot = vector_draws(v, diffs, n_boot=100, generator=seed).bootstrap
    return decomposition_nulls(
        world.sae, v, activations=acts, pos=pos, neg=neg, item_ids=item_ids, bootstrap=boot, generator=seed
    )


@pytest.mark.slow
def test_null_worlds_say_problem_at_most_at_the_nominal_rate() -> None:
    results = [_world_verdict(seed, 0) for seed in range(N_NULL_WORLDS)]
    rate = sum(r.status == "problem" for r in results) / N_NULL_WORLDS
    assert rate <= ALPHA + _bound(ALPHA, N_NULL_WORLDS)
    # Label noise is decoder-sparse: its signed fit beats isotropic directions in most null worlds, so
    # that gate alone could not calibrate the verdict; the signal test does.
    assert sum(r.verdict_figures()["beats_null"] for r in results) / N_NULL_WORLDS > 0.5


def test_effect_worlds_say_problem_with_power_at_least_0_8() -> None:
    results = [_world_verdict(seed, 8) for seed in range(N_EFFECT_WORLDS)]
    assert sum(r.status == "problem" for r in results) / N_EFFECT_WORLDS >= 0.8
