from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from sae_steer_checks.diagnostics.figures import norm_histogram
from sae_steer_checks.report.plots import (
    PLOT_FILES,
    PlotData,
    matplotlib_available,
    plot_activation_norms,
    plot_data_from_report,
    plot_decoder_cosines,
    plot_leaning,
    plot_retention,
    plot_top_features,
    render_plots,
)
from tests.helpers.planted import PlantedCheck


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    assert pixels.ndim == 3
    assert pixels.shape[0] > 200
    assert pixels.shape[1] > 300
    assert float(pixels[..., :3].std()) > 0.01  # not a blank canvas


def test_each_plot_writes_a_valid_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    code_v, code_0 = np.zeros(50), np.zeros(50)
    code_v[[3, 7, 9]] = [90.0, 12.0, 4.0]
    code_0[[3, 7]] = [86.0, 11.0]
    pos, neg = rng.exponential(1.0, 50), rng.exponential(1.0, 50)
    norms = norm_histogram(rng.uniform(80, 300, 500), 3.0)
    cosines = np.histogram(rng.uniform(-0.3, 0.3, 400), bins=np.linspace(-1, 1, 81))[0]
    paths = [
        plot_activation_norms(norms["edges"], norms["counts"], 3.0, tmp_path / "n.png",
                              median=norms["median"], percent_shorter=norms["percent_shorter"]),
        plot_top_features([3, 7, 9], code_v[[3, 7, 9]], code_0[[3, 7, 9]], tmp_path / "t.png",
                          top_vector=[3, 7, 9], top_zero=[3, 7]),
        plot_leaning(pos, neg, tmp_path / "l.png", significant=(1, 2), dropped=(2,)),
        plot_leaning(pos[:20], neg[:20], tmp_path / "sub.png", features=range(100, 120),
                     significant=(101,), dropped=(102,), n_dropped=9, n_active=500, n_negative=240),
        plot_decoder_cosines(np.linspace(-1, 1, 81), cosines, -0.5, [(1, 2, -0.82)], tmp_path / "c.png",
                             n_flagged=12, n_total=30),
        plot_retention((-1.0, 0.0, 1.0), {"original": [-1, 0, 1], "sae": [0, 0, 0]}, tmp_path / "r.png"),
    ]  # fmt: skip
    for path in paths:
        _assert_png(path)


def test_degenerate_inputs_still_draw(tmp_path: Path) -> None:
    empty = np.zeros(0)
    _assert_png(plot_top_features([], empty, empty, tmp_path / "empty.png", top_vector=[], top_zero=[]))
    same = norm_histogram(np.full(10, 5.0), 0.0)
    _assert_png(plot_activation_norms(same["edges"], same["counts"], 0.0, tmp_path / "zero.png",
                                      median=5.0, percent_shorter=0.0))  # fmt: skip
    _assert_png(plot_leaning(np.zeros(4), np.zeros(4), tmp_path / "silent.png"))
    one = np.histogram([0.1], bins=np.linspace(-1, 1, 81))[0]
    _assert_png(plot_decoder_cosines(np.linspace(-1, 1, 81), one, -0.5, [], tmp_path / "none.png"))


def test_render_plots_draws_only_what_it_has_numbers_for(tmp_path: Path) -> None:
    norms = norm_histogram(np.linspace(10, 20, 30), 1.0)
    data = PlotData(
        steering_norm=1.0, norm_edges=np.array(norms["edges"]), norm_counts=np.array(norms["counts"])
    )
    assert render_plots(data, tmp_path) == {"norms": PLOT_FILES["norms"]}
    assert [p.name for p in tmp_path.iterdir()] == [PLOT_FILES["norms"]]
    assert render_plots(PlotData(), tmp_path / "nothing") == {}


def test_matplotlib_available_follows_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    assert matplotlib_available()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not matplotlib_available()


def test_plot_data_from_a_check_on_the_planted_world(planted_check: PlantedCheck, tmp_path: Path) -> None:
    world, result = planted_check.world, planted_check.result
    v, acts = planted_check.vector, planted_check.activations
    data = plot_data_from_report(result.to_report())
    assert data.steering_norm == pytest.approx(float(v.norm()), rel=1e-6)
    assert data.norm_counts is not None
    assert data.norm_counts.sum() == acts.shape[0]
    assert data.norm_median == pytest.approx(float(acts.double().norm(dim=1).median()), rel=1e-3)
    f_v = result.bias.own.acts_vector.double().numpy()
    assert data.code_vector is not None
    assert np.array_equal(data.code_vector, f_v[list(data.top_features)])
    mean_neg = result.leaning.mean_neg.numpy()[list(data.leaning_features)]
    assert data.mean_neg is not None
    assert np.allclose(data.mean_neg, mean_neg, rtol=1e-6)
    planted = {tuple(sorted((i, j))) for i, j, _ in world.truth.pairs}
    assert planted <= {tuple(sorted((i, j))) for i, j, _ in data.flagged}
    assert all(c < -0.5 for _, _, c in data.flagged)
    assert data.cosine_counts is not None
    assert data.cosine_counts[:8].sum() > 0  # some cosine below -0.8
    assert set(data.curves) == {"original", "sae", "signed"}
    assert sorted(render_plots(data, tmp_path)) == sorted(PLOT_FILES)
    for name in PLOT_FILES.values():
        _assert_png(tmp_path / name)
