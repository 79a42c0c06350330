"""The leaning verdict at the width of Gemma Scope: one real feature among thousands of active ones.

Codes are synthetic (no SAE): every feature fires on a share of the prompts, and its paired
difference is a random sign times a zero-inflated |noise|, so no feature leans. The planted feature
fires more on the negative prompt of every item, and SAE(v) gives it 0. Its exact sign-flip p-value
is 2**(1 - n_items), below Holm's first bound ``0.05 / m`` for every family size ``m`` involved, so
the verdict must say "problem"; without it the verdict may say "problem" at most at rate alpha.

The widest world and the null worlds are ``slow`` (``--run-slow``, ``nox -s thorough``); the fast tier
keeps the planted feature at Gemma Scope's 16k width. W null worlds: 8 with ``--run-slow``, 100 with
``HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

from sae_steer_checks.diagnostics.leaning import leaning_from_acts

ALPHA = 0.05
THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
N_NULL_WORLDS = 100 if THOROUGH else 8


def _world(
    n_items: int, d_sae: int, seed: int, *, planted: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(codes of the positive prompts, of the negative prompts, SAE(v)), all features active."""
    gen = torch.Generator().manual_seed(seed)
    rate = torch.rand(d_sae, generator=gen) * 0.6 + 0.4
    base = torch.rand(n_items, d_sae, generator=gen) * (torch.rand(n_items, d_sae, generator=gen) < rate)
    base += 0.01  # every feature fires somewhere
    # half of the features differ in every item, the others in about 70% of the items
    zero_rate = torch.where(torch.arange(d_sae) % 2 == 0, 0.0, 0.3)
    size = torch.randn(n_items, d_sae, generator=gen).abs() + 0.01
    size *= torch.rand(n_items, d_sae, generator=gen) >= zero_rate
    up = torch.rand(n_items, d_sae, generator=gen) < 0.5
    pos, neg = base + size * up, base + size * ~up
    vector_acts = torch.zeros(d_sae)
    vector_acts[1 + torch.randperm(d_sae - 1, generator=gen)[:50]] = 1.0
    if planted:
        pos[:, 0] = base[:, 0]
        neg[:, 0] = base[:, 0] + 1.0 + size[:, 0]
    return pos, neg, vector_acts


@pytest.mark.parametrize(
    ("n_items", "d_sae", "options"),
    [
        (20, 16_384, {}),
        pytest.param(100, 50_000, {"n_null_tests": 20, "n_boot": 200, "n_null": 200}, marks=pytest.mark.slow),
    ],
)
def test_one_feature_leaning_in_every_item_is_confirmed_among_thousands(
    n_items: int, d_sae: int, options: dict[str, int]
) -> None:
    pos, neg, vector_acts = _world(n_items, d_sae, seed=n_items, planted=True)
    result = leaning_from_acts(pos, neg, vector_acts=vector_acts, generator=1, **options)
    summary = result.to_dict()
    assert summary["n_active"] == d_sae
    assert 2.0 ** (1 - n_items) <= ALPHA / d_sae
    # the exact (closed-form) p-value, below Holm's first bound even over every active feature
    assert float(result.p_values[0]) == 2.0 ** (1 - n_items)
    assert result.tested is not None
    assert bool(result.tested[0])
    # the family holds at least the features that differ in every item
    assert summary["n_tested"] >= d_sae // 2
    assert result.holm_rejected is not None
    assert bool(result.holm_rejected[0])
    assert 0 in result.confirmed
    assert len(result.confirmed) > summary["flagged_bound"]
    assert summary["verdict"] == "problem"


@pytest.mark.slow
def test_the_same_worlds_without_the_feature_rarely_say_problem() -> None:
    verdicts = []
    for seed in range(N_NULL_WORLDS):
        pos, neg, vector_acts = _world(20, 16_384, seed=100 + seed, planted=False)
        verdicts.append(leaning_from_acts(pos, neg, vector_acts=vector_acts, generator=seed).status)
    rate = verdicts.count("problem") / N_NULL_WORLDS
    assert rate <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / N_NULL_WORLDS)
    # With 20 items, candidates that differ in fewer items cannot be tested: never "fine".
    assert "fine" not in verdicts
