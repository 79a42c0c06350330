"""report.render: a report redrawn from report.json alone, in place or into another folder, and its guards."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from sae_steer_checks._validate import InputError
from sae_steer_checks.report.plots import PLOT_FILES, PlotData, plot_data_from_report
from sae_steer_checks.report.render import load_report, render_report
from sae_steer_checks.report.schema import SCHEMA_VERSION
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


def test_a_report_missing_a_key_says_it_may_come_from_another_version(fresh: Path, tmp_path: Path) -> None:
    folder = _only_json(fresh, tmp_path / "older")
    report = json.loads((folder / "report.json").read_text())
    del report["norm"]["verdict_interval"]
    (folder / "report.json").write_text(json.dumps(report))
    with pytest.raises(InputError, match=r"report\['norm'\]\['verdict_interval'\]: missing") as error:
        load_report(folder)
    assert f"another version of sae_steer_checks, schema_version {SCHEMA_VERSION}" in str(error.value)
    assert "rerun the command that wrote it" in str(error.value)


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
