"""A report redrawn from report.json alone: the figures section, ``render_report`` and its guards."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sae_steer_checks._validate import InputError
from sae_steer_checks.diagnostics.figures import cosine_figure, leaning_figure, norm_histogram
from sae_steer_checks.diagnostics.run import CheckResult
from sae_steer_checks.report.plots import PLOT_FILES, PlotData, plot_data_from_report, render_plots
from sae_steer_checks.report.render import load_report, render_report
from sae_steer_checks.report.write import NO_FIGURES, write_report
from tests.helpers.planted import PlantedCheck


@pytest.fixture(scope="module")
def fresh(planted_check: PlantedCheck, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fresh") / "report"
    write_report(planted_check.result, out)
    return out


def _only_json(fresh: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    shutil.copyfile(fresh / "report.json", folder / "report.json")
    return folder


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def _same_numbers(a: PlotData, b: PlotData) -> None:
    for f in dataclasses.fields(PlotData):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), f.name
            for key in x:
                np.testing.assert_array_equal(np.asarray(x[key]), np.asarray(y[key]), err_msg=f.name)
        else:
            assert x == y, f.name


def test_a_redrawn_report_is_the_written_one_byte_for_byte(fresh: Path, tmp_path: Path) -> None:
    again = _only_json(fresh, tmp_path / "again")
    names = render_report(again)
    assert names == ["report.md", *PLOT_FILES.values()]
    assert (again / "report.md").read_bytes() == (fresh / "report.md").read_bytes()
    assert sorted(_pngs(fresh)) == sorted(PLOT_FILES.values())
    assert _pngs(again) == _pngs(fresh)  # the Agg canvas writes the same bytes for the same numbers
    assert (again / "report.json").read_bytes() == (fresh / "report.json").read_bytes()


def test_plot_data_of_a_fresh_result_and_of_its_report_json_agree(
    planted_check: PlantedCheck, fresh: Path
) -> None:
    from_result = plot_data_from_report(planted_check.result.to_report())
    from_file = plot_data_from_report(json.loads((fresh / "report.json").read_text()))
    _same_numbers(from_result, from_file)
    assert from_file.steering_norm == pytest.approx(planted_check.result.norm.steering_norm)
    assert set(from_file.curves) == {"original", "sae", "signed"}


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


def test_in_place_keeps_report_json_and_other_files(fresh: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    shutil.copytree(fresh, folder)
    (folder / "notes.txt").write_text("mine")
    (folder / "report.md").write_text("stale")
    before = (folder / "report.json").read_bytes()
    render_report(folder)
    assert (folder / "report.json").read_bytes() == before
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "report.md").read_bytes() == (fresh / "report.md").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["notes.txt", "report.json", "report.md", *PLOT_FILES.values()]
    )


def test_into_another_folder_needs_force_and_never_its_own_parent(fresh: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    names = render_report(fresh, other)
    assert names[:2] == ["report.json", "report.md"]
    assert (other / "report.json").read_bytes() == (fresh / "report.json").read_bytes()
    assert _pngs(other) == _pngs(fresh)
    with pytest.raises(InputError, match="not empty; pass --force"):
        render_report(fresh, other)
    (other / "extra.txt").write_text("replaced")
    render_report(fresh, other, force=True, plots=False)  # the replacement is the point, not the plots
    assert not (other / "extra.txt").exists()
    assert (other / "report.json").read_bytes() == (fresh / "report.json").read_bytes()
    inner = _only_json(fresh, tmp_path / "outer" / "inner")
    with pytest.raises(InputError, match="holds"):
        render_report(inner, tmp_path / "outer", force=True)
    assert (inner / "report.json").is_file()


def test_an_old_report_without_figures_still_renders(fresh: Path, tmp_path: Path) -> None:
    folder = tmp_path / "old"
    shutil.copytree(fresh, folder)
    report = json.loads((folder / "report.json").read_text())
    del report["figures"]
    (folder / "report.json").write_text(json.dumps(report, sort_keys=True, indent=2) + "\n")
    assert plot_data_from_report(report) == PlotData()
    assert render_report(folder) == ["report.md"]
    markdown = (folder / "report.md").read_text()
    assert NO_FIGURES in markdown
    assert "![" not in markdown
    assert sorted(_pngs(folder)) == sorted(PLOT_FILES.values())  # the PNGs drawn before are kept
    other = tmp_path / "other"
    assert render_report(folder, other) == ["report.json", "report.md"]
    assert sorted(p.name for p in other.iterdir()) == ["report.json", "report.md"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "report.json: not found"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"schema_version": 4}', "not a valid report: report['provenance']: missing"),
    ],
)
def test_a_missing_or_bad_report_json_is_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "report.json").write_text(content)
    with pytest.raises(InputError, match="^" + re.escape(str(tmp_path))) as error:
        load_report(tmp_path)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match="not a folder"):
        render_report(tmp_path / "missing")


def test_write_report_lists_at_most_max_listed_pairs(planted_check: PlantedCheck, tmp_path: Path) -> None:
    result = planted_check.result
    assert len(result.pairs) >= 2
    # the list is cut in report.json; the plots do not read it
    report = write_report(result, tmp_path / "one", max_listed_pairs=1, plots=False)
    section = report["aligned_pairs"]
    assert (len(section["pairs"]), section["n_pairs"], section["truncated"]) == (1, len(result.pairs), True)
    assert json.loads((tmp_path / "one" / "report.json").read_text())["aligned_pairs"] == section
    again = write_report(result.to_report(), tmp_path / "dict", max_listed_pairs=1, plots=False)
    assert again["aligned_pairs"] == section


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
