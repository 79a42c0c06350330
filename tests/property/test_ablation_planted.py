"""The ablation of the lost projections on planted worlds whose behaviour reads a known part of v.

The planted negative-leaning features lean in every item, so the leaning check flags them and SAE(v)
drops them: their decoder rows span the lost projections. When the behaviour reads only that part of
the steering vector, removing it takes the steering away and the ablation must say "problem"; when
the behaviour reads only the positive-leaning part (orthogonal to that span), removing it costs
nothing and the ablation must not say "problem". Both run through ``run_checks``, so the gate, the
random-row baseline and the verdict are the shipped ones. The ``slow`` test repeats both on the
calibration's hard worlds (noisy dictionary, skewed noise, swapped copies) with ``run_checks``
defaults.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_steer_checks.diagnostics.run import CheckConfig, CheckResult, run_checks
from sae_steer_checks.synthetic import WorldConfig, build_world
from tests.helpers.readouts import Side, with_readout

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLES = 60 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 8
CONFIG = {"n_null": 19, "n_boot": 50, "leaning_n_perm": 500, "k_max": 16}


def _run(seed: int, n_pairs: int, architecture: str, side: Side) -> tuple[CheckResult, tuple[int, ...]]:
    world = with_readout(
        build_world(WorldConfig(d_model=64, d_sae=160, architecture=architecture, seed=seed)), side
    )  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed)
    pos, neg = world.sample_contrastive(n_pairs, gen)
    acts = world.sample_activations(128, gen)
    result = run_checks(
        world.sae, (pos - neg).mean(0), pos, neg, acts, score_fn=world.item_scores,
        config=CheckConfig(seed=seed, **CONFIG),  # type: ignore[arg-type]
    )  # fmt: skip
    return result, world.truth.negative_features


worlds = {
    "seed": st.integers(0, 10_000),
    "n_pairs": st.integers(16, 48),
    "architecture": st.sampled_from(["jumprelu", "relu"]),
}


@settings(max_examples=EXAMPLES)
@given(**worlds)
def test_behaviour_in_the_lost_span_is_a_problem(seed: int, n_pairs: int, architecture: str) -> None:
    result, negative = _run(seed, n_pairs, architecture, "negative")
    ablation = result.ablation
    assert ablation is not None
    # the lost projections hold the planted negative-leaning features (BH may add a false discovery)
    assert set(negative) <= set(ablation.features)
    assert ablation.status == "problem", ablation.reason
    assert ablation.cost is not None
    assert ablation.cost > 0.8
    # s^2, the cost were the behaviour spread over v by energy, sits below the cost the readout gives
    assert ablation.energy_share is not None
    assert ablation.energy_share < ablation.cost
    # a linear behaviour splits exactly: without the span + the span alone = v
    s = ablation.slopes
    assert math.isclose(s["without"] + s["only"], s["original"], rel_tol=1e-4, abs_tol=1e-4)


@settings(max_examples=EXAMPLES)
@given(**worlds)
def test_behaviour_orthogonal_to_the_lost_span_is_not_a_problem(
    seed: int, n_pairs: int, architecture: str
) -> None:
    result, _ = _run(seed, n_pairs, architecture, "positive")
    ablation = result.ablation
    assert ablation is not None
    assert ablation.features
    assert ablation.status != "problem", ablation.reason
    assert ablation.status == "fine", ablation.reason  # the cost's interval is small: it says so
    assert ablation.cost is not None
    assert abs(ablation.cost) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("side", ["negative", "positive"])
def test_hard_worlds_calibrate_the_ablation(side: Side) -> None:
    """Through ``run_checks`` defaults on the calibration's hard worlds (``bench/calibration.py``)."""
    from tests.helpers.calibration import one_world

    w = 50 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 8
    statuses = [one_world("small", 24, True, s, 1000 + s * min(10, w) // w, readout=side) for s in range(w)]
    rate = sum(r["statuses"]["ablation"] == "problem" for r in statuses) / w
    if side == "negative":  # the lost span carries the whole behaviour
        assert rate >= 0.8, f"power {rate:.2f}"
    else:  # it carries none of it: alpha + 3 Monte Carlo standard errors
        assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / w), f"false 'problem' rate {rate:.3f}"
