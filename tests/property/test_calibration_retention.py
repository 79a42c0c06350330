"""Calibration of the retention verdict on worlds with skewed, heavy-tailed per-item behaviour slopes.

Each world has ``n_items`` held-out items; item i scores an added vector ``u`` as ``r_i . u``, so the
per-item slope of a vector is ``r_i . v``. The readouts are a shared behaviour direction ``r`` plus
item-to-item disagreement along three parts:

- along ``r`` (how strongly the item responds), scale ``STRENGTH``;
- along a direction ``o`` orthogonal to ``r`` that the reconstruction also carries, scale ``EXTRA``;
- Gaussian on every coordinate, scale ``BASE``.

The first two draw from a skewed (centred lognormal, shape ``SIGMA``; skewness 1.75) or heavy-tailed
(Student t, 3 df) law with variance 1. The original ``v`` has slope 1 along ``r``; the reconstruction
keeps ``kept`` of it and adds ``0.5 o``, so the true retention ratio is exactly ``kept`` while the
per-item contrasts ``a_i - 0.8 b_i`` are skewed to the right (the hard side for "problem": a small
sample usually misses the long tail and looks low). Worlds, with ``retention_check()``'s defaults:

- boundary (null): the reconstruction keeps exactly the retained threshold (0.8): "problem" may be
  said at most at alpha = 0.05 plus 3 Monte Carlo standard errors;
- not steering: ``v`` is orthogonal to every readout part but the Gaussian one: neither "problem" nor
  the steering gate may pass beyond that bound;
- exchangeable: ``v`` is itself a random direction, drawn like the gate's null: the gate may pass at
  most at that bound (its Monte Carlo p-value is exact here);
- effect: the reconstruction keeps 40%: "problem" in at least 80% of worlds with 24 or more items;
- learned: a learned vector swept beside v (``learned``, as ``run --learn-steps`` adds it) has a true
  ratio to v's slope of ``LEARNED_RATIOS`` (0.5: worse than CAA; 1.5: better) and a part along ``o``
  with the opposite sign to the reconstruction's: its 90% ratio interval must hold the true ratio in at
  least 90% of worlds less 3 Monte Carlo standard errors.

W is 40 worlds per case in the fast tier and 200 with ``HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

import math
import os
from typing import Literal

import pytest
import torch
from torch import Tensor

from sae_steer_checks.diagnostics.retention import Retention, retention_check

ALPHA = 0.05
W = 200 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 40
D, N_ITEMS = 32, 24
ITEM_COUNTS = (12, 24, 50)
NOISES = ("lognormal", "t3")
SIGMA, STRENGTH, EXTRA, BASE = 0.5, 0.5, 1.0, 0.1
MULTIPLIERS = (-1.0, 0.0, 1.0)
LEARNED_RATIOS = (0.5, 1.5)

Noise = Literal["lognormal", "t3"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _unit_noise(kind: str, n: int, gen: torch.Generator) -> Tensor:
    """``n`` draws with mean 0 and variance 1: a right-skewed lognormal or a Student t with 3 df."""
    z = torch.randn(n, generator=gen, dtype=torch.float64)
    if kind == "lognormal":
        mean, var = math.exp(SIGMA**2 / 2), (math.exp(SIGMA**2) - 1) * math.exp(SIGMA**2)
        return (torch.exp(SIGMA * z) - mean) / math.sqrt(var)
    if kind == "t3":
        chi2 = torch.randn(n, 3, generator=gen, dtype=torch.float64).pow(2).sum(1)
        return z / torch.sqrt(chi2 / 3) / math.sqrt(3.0)
    raise ValueError(f"noise must be one of {NOISES}, got {kind!r}")


def _world(
    seed: int,
    kept: float,
    steers: bool | Literal["random"],
    noise: str,
    n_items: int,
    learned: float | None = None,
) -> tuple[Retention, Tensor]:
    """Retention of one world with the shipped defaults, and the original vector's per-item slopes.

    ``learned`` adds a learned vector with that true ratio to v's slope.
    """
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(D, generator=gen, dtype=torch.float64)
    # two directions orthogonal to r (and to each other): the reconstruction's extra part, and a
    # direction the behaviour does not read
    basis, _ = torch.linalg.qr(
        torch.cat([r[:, None], torch.randn(D, 2, generator=gen, dtype=torch.float64)], 1)
    )
    unit, other, third = r / r.norm(), basis[:, 1], basis[:, 2]
    strength, extra = _unit_noise(noise, n_items, gen), _unit_noise(noise, n_items, gen)
    base = torch.randn(n_items, D, generator=gen, dtype=torch.float64)
    norm = float(r.norm())
    readouts = r + norm * (STRENGTH * strength[:, None] * unit + EXTRA * extra[:, None] * other + BASE * base)
    if steers == "random":
        v = torch.randn(D, generator=gen, dtype=torch.float64)
        v = v / v.norm() / norm
    else:
        v = (unit if steers else third) / norm  # mean slope r . v = 1 (or 0)
    u = (kept * unit + 0.5 * other) / norm

    def score(x: Tensor) -> Tensor:
        return readouts @ x.to(torch.float64)

    vectors = {"original": v.float(), "sae": u.float()}
    if learned is not None:
        vectors["learned"] = ((learned * unit - 0.5 * other) / norm).float()
    kept_check = retention_check(score, vectors, MULTIPLIERS, generator=seed)
    return kept_check, readouts @ v


def _status(
    seed: int, kept: float, steers: bool = True, *, noise: Noise = "lognormal", n_items: int = N_ITEMS
) -> str:
    """Status of SAE(v) in one world (see the module notes); ``bench/calibration.py`` tabulates it."""
    return _world(seed, kept, steers, noise, n_items)[0].statuses["sae"][0]


def _bound(w: int) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / w)


def learned_coverage(w: int, ratio: float, *, noise: Noise = "lognormal", n_items: int = N_ITEMS) -> float:
    """Share of ``w`` worlds whose learned/v ratio interval holds the true ``ratio``.

    ``bench/calibration.py`` tabulates it.
    """
    held = 0
    for seed in range(w):
        test = _world(seed, 0.8, True, noise, n_items, learned=ratio)[0].ratios["learned"]
        held += test.ci_low <= ratio <= test.ci_high
    return held / w


@pytest.mark.parametrize("n_items", ITEM_COUNTS)
@pytest.mark.parametrize("noise", NOISES)
def test_at_the_threshold_retention_says_problem_at_most_at_the_nominal_rate(
    noise: Noise, n_items: int
) -> None:
    rate = sum(_status(s, 0.8, noise=noise, n_items=n_items) == "problem" for s in range(W)) / W
    assert rate <= _bound(W), f"false 'problem' rate {rate:.3f} over {W} worlds ({noise}, {n_items} items)"


@pytest.mark.parametrize("n_items", ITEM_COUNTS)
@pytest.mark.parametrize("noise", NOISES)
def test_a_vector_that_does_not_steer_is_never_judged(noise: Noise, n_items: int) -> None:
    worlds = [_world(s, 0.8, False, noise, n_items)[0] for s in range(W)]
    problem = sum(k.statuses["sae"][0] == "problem" for k in worlds) / W
    steers = sum(k.steers for k in worlds) / W
    assert problem <= _bound(W), f"'problem' rate {problem:.3f} for a vector that does not steer"
    assert steers <= _bound(W), f"the gate passed {steers:.3f} of vectors that do not steer"


@pytest.mark.parametrize("n_items", ITEM_COUNTS)
def test_the_gate_passes_a_random_direction_at_most_at_the_nominal_rate(n_items: int) -> None:
    # v drawn like the null's directions: its Monte Carlo p-value is uniform on {1/41, ..., 1}
    worlds = [_world(s, 0.8, "random", "lognormal", n_items) for s in range(W)]
    rate = sum(k.steers for k, _ in worlds) / W
    assert rate <= _bound(W), f"the gate passed {rate:.3f} of random directions ({n_items} items)"
    assert all(k.null is not None and len(k.null.slopes) == 40 for k, _ in worlds)


@pytest.mark.parametrize("n_items", [n for n in ITEM_COUNTS if n >= 24])
@pytest.mark.parametrize("noise", NOISES)
def test_losing_most_of_the_slope_is_found_with_power_at_least_0_8(noise: Noise, n_items: int) -> None:
    power = sum(_status(s, 0.4, noise=noise, n_items=n_items) == "problem" for s in range(W)) / W
    assert power >= 0.8, f"power {power:.3f} over {W} worlds ({noise}, {n_items} items)"


# two cases in the fast tier; every (ratio, items) case with --run-slow (bench/calibration.py: 200 worlds)
_LEARNED_CASES = [
    pytest.param(r, n, marks=() if (r, n) in ((0.5, 12), (1.5, 50)) else pytest.mark.slow)
    for r in LEARNED_RATIOS
    for n in ITEM_COUNTS
]


@pytest.mark.parametrize(("ratio", "n_items"), _LEARNED_CASES)
def test_the_learned_vectors_ratio_interval_holds_the_true_ratio(ratio: float, n_items: int) -> None:
    coverage = learned_coverage(W, ratio, n_items=n_items)
    floor = 1 - 2 * ALPHA - 3 * math.sqrt(2 * ALPHA * (1 - 2 * ALPHA) / W)
    assert coverage >= floor, f"coverage {coverage:.3f} of the learned ratio {ratio} over {W} worlds"


@pytest.mark.parametrize("noise", NOISES)
def test_the_worlds_are_as_described(noise: Noise) -> None:
    # the original's slopes have mean 1 and the stated spread; the null's contrasts are skewed or
    # heavy-tailed as stated (checked on one big world)
    kept, slopes = _world(0, 0.8, True, noise, 4000)
    assert float(slopes.mean()) == pytest.approx(1.0, abs=0.05)
    assert float(slopes.std()) == pytest.approx(math.hypot(STRENGTH, BASE), rel=0.15)
    assert kept.ratio("sae") == pytest.approx(0.8, abs=0.05)
    learned = _world(0, 0.8, True, noise, 4000, learned=1.5)[0]
    assert learned.ratio("learned") == pytest.approx(1.5, abs=0.08)
