"""diagnostics.figures: the plotted numbers a check keeps (small JSON), histograms and the leaning subset."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sae_steer_checks.diagnostics.figures import cosine_figure, leaning_figure, norm_histogram
from sae_steer_checks.diagnostics.run import CheckResult
from sae_steer_checks.report.plots import plot_data_from_report, render_plots
from tests.helpers.planted import PlantedCheck


def test_the_result_keeps_no_decoder_and_its_figures_are_small_json(
    planted_check: PlantedCheck,
) -> None:
    world, result = planted_check.world, planted_check.result
    names = {f.name for f in dataclasses.fields(CheckResult)}
    assert not names & {"decoder", "sample_norms"}
    assert result.figures is not None
    assert _plain(result.figures)  # no tensors, no arrays: JSON as it stands
    assert len(json.dumps(result.figures)) < world.sae.W_dec.numel()  # far below the decoder's bytes


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


def test_figures_hold_what_the_checks_found(planted_check: PlantedCheck) -> None:
    world, result = planted_check.world, planted_check.result
    fig = result.figures
    assert fig is not None
    assert fig["top_features"]["top_zero"] == [f for f, _ in result.bias.own.top_zero]
    assert fig["top_features"]["top_vector"] == [f for f, _ in result.bias.own.top_vector]
    lean = fig["leaning"]
    assert set(lean["circled"]) <= set(lean["features"])
    assert lean["circled"] == list(result.leaning.dropped_by_encoder[:6])
    assert lean["n_active"] == int(((result.leaning.mean_pos > 0) | (result.leaning.mean_neg > 0)).sum())
    cos = fig["cosines"]
    assert {tuple(sorted((i, j))) for i, j, _ in world.truth.pairs} <= {
        (p["feature"], p["partner"]) for p in cos["flagged"]
    }
    assert all(p["cosine"] < cos["threshold"] for p in cos["flagged"])
    assert cos["n_flagged_total"] == len(result.pairs)
    assert sum(cos["counts"]) == cos["n_features"] * (cos["n_features"] - 1) // 2


def test_the_blocked_cosine_histogram_is_the_whole_matrix_one() -> None:
    gen = torch.Generator().manual_seed(5)
    decoder = torch.randn(40, 8, generator=gen)
    features = [0, 3, 4, 7, 11, 19, 20, 33, 39]
    fig = cosine_figure(decoder, features, [(3, 4, -0.7)], threshold=-0.5, block_size=4)
    rows = torch.nn.functional.normalize(decoder[features], dim=1)
    upper = torch.triu_indices(len(features), len(features), offset=1)
    naive = (rows @ rows.T)[upper[0], upper[1]].double().numpy()
    assert fig["counts"] == np.histogram(naive, bins=np.linspace(-1, 1, 81))[0].tolist()
    assert fig["flagged"] == [{"feature": 3, "partner": 4, "cosine": -0.7}]


def test_the_norm_histogram_counts_every_positive_norm() -> None:
    norms = np.array([0.0, 3.0, 4.0, 4.0, 9.0, 30.0])
    hist = norm_histogram(norms, 5.0)
    assert sum(hist["counts"]) == 5
    assert hist["edges"][0] == 3.0
    assert hist["median"] == 4.0
    assert hist["percent_shorter"] == pytest.approx(100 * 4 / 6)
    assert norm_histogram(np.full(3, 2.0), 0.0)["counts"] == [3]


def test_a_wide_leaning_plot_draws_the_most_active_and_counts_them_all(
    planted_check: PlantedCheck, tmp_path: Path
) -> None:
    lean = planted_check.result.leaning
    fig = leaning_figure(lean, max_points=20)
    weight = torch.maximum(lean.mean_pos, lean.mean_neg)
    most = torch.sort(weight, descending=True, stable=True).indices[:20].tolist()
    assert set(most) | set(fig["circled"]) <= set(fig["features"])
    assert fig["n_active"] == leaning_figure(lean)["n_active"] > len(fig["features"])
    assert fig["n_negative"] == int(lean.negative.sum())
    assert planted_check.result.figures is not None
    report = {"figures": {**planted_check.result.figures, "leaning": fig}}
    assert "leaning" in render_plots(plot_data_from_report(report), tmp_path)
