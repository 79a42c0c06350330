"""Calibration of the retention verdict on worlds with per-item linear behaviour scores.

Each world has ``N_ITEMS`` held-out items; item i scores an added vector ``u`` as ``r_i . u`` with
``r_i = r + noise`` (a shared behaviour direction plus item-to-item disagreement), so the per-item
slope of a vector is ``r_i . v`` and the true retention ratio of a reconstruction ``u`` is
``(r . u) / (r . v)``. Worlds:

- boundary (null): SAE(v) keeps exactly the retained threshold (0.8) of the slope: "problem" may be
  said at most at the nominal rate alpha = 0.05 (within 3 Monte Carlo standard errors);
- not steering: the vector is orthogonal to ``r``: retention must not say "problem" beyond that rate;
- effect: SAE(v) keeps 40%: "problem" in at least 80% of worlds (power).

W is 40 worlds per case in the fast tier and 200 with ``HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

import math
import os

import torch

from sae_steer_checks.diagnostics.retention import retention

ALPHA = 0.05
W = 200 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 40
D, N_ITEMS, NOISE = 32, 40, 0.06
MULTIPLIERS = (-1.0, 0.0, 1.0)


def _status(seed: int, kept: float, steers: bool = True) -> str:
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(D, generator=gen, dtype=torch.float64)
    readouts = r + NOISE * r.norm() * torch.randn(N_ITEMS, D, generator=gen, dtype=torch.float64)
    unit = r / r.norm()
    other = torch.randn(D, generator=gen, dtype=torch.float64)
    other = other - (other @ unit) * unit
    other = other / other.norm()
    v = unit / r.norm() if steers else other / r.norm()  # slope r . v = 1 (or 0)
    # the reconstruction keeps `kept` of v along r and adds an orthogonal part of the same size
    u = kept * unit / r.norm() + 0.5 * other / r.norm()

    def score(x: torch.Tensor) -> torch.Tensor:
        return readouts @ x.to(torch.float64)

    vectors = {"original": v.float(), "sae": u.float(), "signed": v.float()}
    return retention(score, vectors, MULTIPLIERS, n_random=8, generator=seed).statuses["sae"][0]


def _bound(w: int) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / w)


def test_at_the_threshold_retention_says_problem_at_most_at_the_nominal_rate() -> None:
    rate = sum(_status(s, 0.8) == "problem" for s in range(W)) / W
    assert rate <= _bound(W), f"false 'problem' rate {rate:.3f} over {W} worlds"


def test_a_vector_that_does_not_steer_is_never_judged() -> None:
    rate = sum(_status(s, 0.8, steers=False) == "problem" for s in range(W)) / W
    assert rate <= _bound(W), f"'problem' rate {rate:.3f} for a vector that does not steer"


def test_losing_most_of_the_slope_is_found_with_power_at_least_0_8() -> None:
    power = sum(_status(s, 0.4) == "problem" for s in range(W)) / W
    assert power >= 0.8, f"power {power:.3f} over {W} worlds"
