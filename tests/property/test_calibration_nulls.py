"""Calibration of the geometric verdicts through ``run_checks`` with its defaults, on hard planted worlds.

Worlds come from ``tests/helpers/hard_worlds.py``: a noisy dictionary, shared context, skewed and
heavy-tailed prompt noise, and choice-swapped copies counted by item id. Null worlds have no behaviour
feature (labels exchangeable): the leaning, pairs and decomposition verdicts may say "problem" at most
at alpha = 0.05 within 3 Monte Carlo standard errors, ``alpha + 3 sqrt(alpha (1 - alpha) / W)``.
Effect worlds plant behaviour features present in every item, 40% of them leaning negative: the
leaning and decomposition verdicts must say "problem" in at least 80% of them. The interval of the
population norm must hold the population CAA vector's norm.

Every test here is ``slow`` (each world runs the whole check with its default nulls): ``--run-slow``
runs the small width with W = 16 null and 8 effect worlds (a cheaper version of the same claims),
``nox -s thorough`` (``HYPOTHESIS_PROFILE=thorough``) W = 200 and 50, and ``python bench/calibration.py``
the full grid (widths 2k and 16k, 12 to 100 items) with every figure in README.
"""

from __future__ import annotations

import math
import os
from functools import cache
from typing import Any

import pytest

from tests.helpers.calibration import one_world, truths

ALPHA = 0.05
THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
N_NULL_WORLDS = 200 if THOROUGH else 16
N_EFFECT_WORLDS = 50 if THOROUGH else 8
N_ITEMS = 24
WIDTH = "small"

pytestmark = pytest.mark.slow


def _bound(w: int) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / w)


@cache
def _results(effect: bool) -> tuple[tuple[dict[str, Any], dict[str, float]], ...]:
    w = N_EFFECT_WORLDS if effect else N_NULL_WORLDS
    out = []
    for s in range(w):
        out.append((one_world(WIDTH, N_ITEMS, effect, s, 1000 + s), truths(1000 + s, WIDTH, effect)))
    return tuple(out)


@pytest.mark.parametrize("verdict", ["leaning", "pairs", "decomposition"])
def test_null_worlds_say_problem_at_most_at_the_nominal_rate(verdict: str) -> None:
    results = _results(False)
    rate = sum(r["statuses"][verdict] == "problem" for r, _ in results) / len(results)
    assert rate <= _bound(len(results)), f"{verdict}: false 'problem' rate {rate:.3f}"


@pytest.mark.parametrize("verdict", ["leaning", "decomposition"])
def test_effect_worlds_say_problem_with_power_at_least_0_8(verdict: str) -> None:
    results = _results(True)
    power = sum(r["statuses"][verdict] == "problem" for r, _ in results) / len(results)
    assert power >= 0.8, f"{verdict}: power {power:.3f}"


@pytest.mark.parametrize("effect", [False, True])
def test_the_norm_interval_holds_the_population_norm(effect: bool) -> None:
    """The one interval a geometric verdict reads (bias, pairs and the gap are exact figures of v)."""
    results = _results(effect)
    held = [
        r["intervals"]["norm"][0] - 1e-9 <= t["norm"] <= r["intervals"]["norm"][1] + 1e-9 for r, t in results
    ]
    # 0.93 at W >= 200; with the fast tier's few worlds, allow 2 standard errors below it
    floor = 0.93 if THOROUGH else 0.93 - 2 * math.sqrt(0.93 * 0.07 / len(held))
    assert sum(held) / len(held) >= floor, f"coverage {sum(held) / len(held):.3f}"
