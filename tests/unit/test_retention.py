"""Unit tests of steerability slopes and retention ratios."""

from __future__ import annotations

import pytest
import torch

from sae_steer_checks.diagnostics.retention import retention, steerability_slope
from tests.reference_impl import slope_loop


def test_slope_matches_polyfit() -> None:
    readout = torch.tensor([1.0, -2.0, 0.5])

    def score(u: torch.Tensor) -> float:
        return float(readout @ u) ** 2 * 0.1 + float(readout @ u)

    v = torch.tensor([0.3, 0.1, 2.0])
    ms = [-2.0, -1.0, 0.0, 1.0, 3.0]
    fit = steerability_slope(score, v, ms)
    assert fit.slope == pytest.approx(slope_loop(ms, [score(m * v) for m in ms]))
    assert fit.stderr is not None
    assert fit.stderr > 0


def test_ratios_of_linear_score() -> None:
    readout = torch.tensor([1.0, 0.0])
    kept = retention(
        lambda u: float(readout @ u),
        {
            "original": torch.tensor([2.0, 1.0]),
            "sae": torch.tensor([0.5, 5.0]),
            "signed": torch.tensor([2.0, 0.0]),
        },
    )
    assert kept.ratio("sae") == pytest.approx(0.25)
    assert kept.ratio("signed") == pytest.approx(1.0)
    d = kept.to_dict()
    assert d["ratio_sae"] == pytest.approx(0.25)
    assert d["slopes"]["original"] == pytest.approx(2.0)
    assert d["multipliers"] == [-1.0, 0.0, 1.0]


def test_zero_original_slope_gives_undefined_ratio() -> None:
    kept = retention(lambda u: float(u.sum()), {"original": torch.zeros(2), "sae": torch.ones(2)})
    assert kept.ratio("sae") is None


def test_bad_multipliers_and_scores() -> None:
    with pytest.raises(ValueError, match="two distinct values"):
        steerability_slope(lambda u: 0.0, torch.ones(2), [1.0, 1.0])
    with pytest.raises(ValueError, match="non-finite score"):
        steerability_slope(lambda u: float("nan"), torch.ones(2), [0.0, 1.0])
    with pytest.raises(ValueError, match="must include 'original'"):
        retention(lambda u: 0.0, {"sae": torch.ones(2)})
