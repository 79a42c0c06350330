"""The report from a planted-world run: written by ``write_report``, read back, valid against the schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from sae_steer_checks.cli.commands import main
from sae_steer_checks.cli.inputs import CheckInputs, planted_inputs
from sae_steer_checks.diagnostics.run import CheckConfig, CheckResult, run_checks
from sae_steer_checks.report.plots import PLOT_FILES
from sae_steer_checks.report.schema import STATUSES, validate_report
from sae_steer_checks.report.verdicts import collect_verdicts
from sae_steer_checks.report.write import build_report, report_files, write_report
from tests.helpers.planted import PlantedCheck
from tests.helpers.reports import example_report

VERDICT_FIELDS = {"mechanism", "status", "sentence", "figure", "interval", "null", "rule"}


def _check(inputs: CheckInputs) -> CheckResult:
    assert inputs.multipliers is not None
    config = CheckConfig(multipliers=tuple(inputs.multipliers))
    return run_checks(
        inputs.sae,
        inputs.vector,
        inputs.pos,
        inputs.neg,
        inputs.activations,
        score_fn=inputs.score_fn,
        config=config,
    )


@pytest.fixture(scope="module")
def planted() -> tuple[CheckInputs, CheckResult]:
    inputs = planted_inputs(seed=0)
    torch.manual_seed(0)  # as the command line does before the checks
    return inputs, _check(inputs)


def test_round_trip_through_report_json_is_valid(
    planted: tuple[CheckInputs, CheckResult], tmp_path: Path
) -> None:
    inputs, result = planted
    report = write_report(result, tmp_path / "out", provenance=inputs.provenance)
    loaded = json.loads((tmp_path / "out" / "report.json").read_text())
    validate_report(loaded)
    assert loaded == json.loads(json.dumps(report))
    assert loaded["provenance"]["seed"] == 0
    assert len(loaded["verdicts"]) == 7
    for entry in loaded["verdicts"]:
        assert set(entry) == VERDICT_FIELDS
        assert entry["status"] in STATUSES
        assert set(entry["figure"]) == {"name", "value"}
    # The planted world plants every mechanism, so every verdict reads "problem".
    assert [v["status"] for v in loaded["verdicts"]] == ["problem"] * 7
    assert loaded["verdicts"][0]["figure"] == {
        "name": "norm.steering_norm",
        "value": loaded["norm"]["steering_norm"],
    }
    assert report_files(tmp_path / "out")[:2] == ["report.json", "report.md"]
    assert len(report_files(tmp_path / "out")) == 8  # with the decomposition plot


def test_a_notebook_gets_exactly_what_the_command_line_writes(
    planted: tuple[CheckInputs, CheckResult], tmp_path: Path
) -> None:
    inputs, result = planted
    assert main(["demo", "--planted", "--out", str(tmp_path / "cli"), "-q"]) == 0
    write_report(result, tmp_path / "lib", provenance=inputs.provenance)
    for name in report_files(tmp_path / "cli"):
        assert (tmp_path / "lib" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name


def test_a_removed_key_is_named_by_the_schema_and_the_verdicts(
    planted: tuple[CheckInputs, CheckResult],
) -> None:
    _, result = planted
    report: dict[str, Any] = dict(build_report(result))
    del report["norm"]["ratio"]
    with pytest.raises(ValueError, match=r"report\['norm'\]\['ratio'\]: missing"):
        validate_report(report)
    with pytest.raises(KeyError, match="ratio"):
        collect_verdicts(report)
    with pytest.raises(ValueError, match=r"report\['norm'\]\['ratio'\]: missing"):
        build_report(result.to_report() | {"norm": report["norm"]})


def test_plots_can_be_left_out(planted: tuple[CheckInputs, CheckResult], tmp_path: Path) -> None:
    _, result = planted
    write_report(result, tmp_path / "out", plots=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "report.md"]
    assert "Plots were skipped" not in (tmp_path / "out" / "report.md").read_text()


def test_write_report_writes_json_markdown_and_resolvable_images(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = write_report(example_report(), out)  # the plots come from its figures section
    assert json.loads((out / "report.json").read_text()) == report
    assert report == build_report(example_report())
    images = sorted(p.name for p in out.glob("*.png"))
    assert images == sorted(PLOT_FILES.values())
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (out / "report.md").read_text())
    assert sorted(links) == images
    assert all((out / link).is_file() for link in links)


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
