from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sae_steer_checks.report.markdown import PLOTS_SKIPPED, render_markdown, verdicts, write_report
from sae_steer_checks.report.plots import PLOT_FILES, PlotData


def example_report() -> dict[str, Any]:
    """A report shaped like ``CheckResult.to_dict()``, with the study's Gemma 2 2B figures."""
    return {
        "schema_version": 1,
        "provenance": {
            "model": "google/gemma-2-2b",
            "layer": 14,
            "dataset": "corrigible-neutral-HHH.json",
            "dataset_sha256": "ab" * 32,
            "sae_source": {
                "source": "release",
                "release": "gemma-scope-2b-pt-res",
                "sae_id": "layer_14/width_16k/average_l0_173",
            },
            "versions": {"torch": "2.13.0", "sae-lens": "6.54.12"},
            "seed": 0,
            "device": "cuda",
            "dtype": "float32",
            "d_model": 2304,
            "d_sae": 16384,
        },
        "norm": {
            "steering_norm": 12.5,
            "activation_norm_median": 150.0,
            "quantiles": {"0.01": 120.0, "0.5": 150.0, "0.99": 300.0},
            "ratio": 12.5 / 150.0,
            "percentile": 0.0,
            "n_activations": 200000,
        },
        "bias": {
            "top_k": 5,
            "top_features_vector": [
                {"feature": 4888, "value": 95.04},
                {"feature": 15603, "value": 36.34},
                {"feature": 12695, "value": 22.64},
                {"feature": 7589, "value": 18.89},
                {"feature": 2350, "value": 11.35},
            ],
            "top_features_zero": [
                {"feature": 4888, "value": 89.06},
                {"feature": 15603, "value": 35.94},
                {"feature": 7589, "value": 19.80},
                {"feature": 2350, "value": 10.74},
                {"feature": 101, "value": 3.0},
            ],
            "overlap": 4 / 6,
            "mass_in_zero": 0.81,
            "decoder_bias_subtracted": False,
            "other_convention": {
                "decoder_bias_subtracted": True,
                "overlap": 1.0,
                "mass_in_zero": 0.97,
                "top_features_vector": [{"feature": 4888, "value": 86.2}],
            },
            "delta_top_features": [{"feature": 14004, "value": 1.5}],
        },
        "negative_leaning": {
            "fraction": 0.512,
            "n_active": 1000,
            "significant_fraction": 0.4,
            "n_significant": 30,
            "alpha": 0.05,
            "n_pairs": 340,
            "dropped_by_encoder": [14004, 77],
        },
        "aligned_pairs": {
            "threshold": -0.5,
            "n_pairs": 3,
            "n_live": 1,
            "n_dead": 2,
            "pairs": [
                {"feature": 14004, "partner": 3517, "cosine": -0.82, "status": "live"},
                {"feature": 5, "partner": 6, "cosine": -0.7, "status": "dead"},
                {"feature": 8, "partner": 9, "cosine": -0.6, "status": "dead"},
            ],
            "spurious": [{"feature": 3517, "explained_by": 14004, "cosine": -0.82, "value": 4.2}],
            "bias_explained": [4888, 15603],
            "sign_conflicts": [{"feature": 4888, "value": 95.0, "projection": -0.3}],
        },
        "decompositions": {
            "sae": {"cosine": 0.31, "rel_error": 0.95, "l0": 45, "n_negative": 0, "method": "sae_encoder"},
            "signed": {"cosine": 0.98, "rel_error": 0.2, "l0": 32, "n_negative": 12, "method": "omp"},
            "omp": {"cosine": 0.98, "rel_error": 0.2, "l0": 32, "n_negative": 12, "method": "omp"},
            "gradient_pursuit": {"cosine": 0.97, "rel_error": 0.25, "l0": 32, "n_negative": 11},
        },
        "retention": {
            "multipliers": [-1.0, 0.0, 1.0],
            "slopes": {"original": 2.0, "sae": 0.3, "signed": 1.9},
            "scores": {"original": [-2.0, 0.0, 2.0], "sae": [-0.3, 0.0, 0.3], "signed": [-1.9, 0, 1.9]},
            "ratio_sae": 0.15,
            "ratio_signed": 0.95,
        },
    }


def test_every_mechanism_gets_one_plain_verdict_line() -> None:
    text = render_markdown(example_report())
    section = text.split("## Verdict")[1].split("\n## ")[0]
    bullets = [line for line in section.splitlines() if line.startswith("- ")]
    assert len(bullets) == 6
    assert all("(**problem**)" in b for b in bullets)
    assert "The encoder bias decides 4 of the top 5 features of SAE(v)" in section
    assert "51.2% of the 1000 features active" in section
    assert "SAE(v) gives 0 to 2 significantly negative-leaning feature(s) (14004, 77)" in section
    assert "feature 3517 is explained by the negative projection on feature 14004 (cosine -0.82)" in section
    assert "shorter than every one of the 200000 sampled activations" in section
    assert "keeps 15.0% of the original vector's slope; the signed decomposition keeps 95.0%" in section


def test_fine_verdicts_when_the_sae_accounts_for_the_vector() -> None:
    report = example_report()
    report["norm"]["percentile"] = 40.0
    report["bias"]["top_features_zero"] = [{"feature": 1, "value": 1.0}]
    report["negative_leaning"]["dropped_by_encoder"] = []
    report["aligned_pairs"]["spurious"] = []
    report["decompositions"]["sae"]["cosine"] = 0.95
    report["retention"]["ratio_sae"] = 0.9
    assert [v.status for v in verdicts(report)] == ["fine"] * 6


def test_missing_sections_are_said_not_run() -> None:
    report = example_report()
    report["retention"] = None
    del report["aligned_pairs"]
    statuses = {v.mechanism: v.status for v in verdicts(report)}
    assert statuses["Behaviour retained"] == "not run"
    assert statuses["Negatively aligned pairs"] == "not run"
    text = render_markdown(report)
    assert "Not run: no behaviour score was given." in text


def test_tables_carry_the_key_figures() -> None:
    text = render_markdown(example_report())
    assert "| 4888 | 95.04 | 89.06 | yes |" in text
    # 12695 is not among SAE(0)'s five listed features, which fill the top 5: below the 5th
    assert "| 12695 | 22.64 | < 3 | no |" in text
    assert "| 14004 | 3517 | -0.82 | live |" in text
    assert "| omp (reported as signed) | 0.98 | 0.2 | 32 | 12 |" in text
    assert "| SAE(v) | 0.3 | 15.0% |" in text
    assert "Under the other convention (decoder bias subtracted): overlap 1" in text
    assert "| dataset_sha256 | " + "ab" * 32 + " |" in text


def test_shorter_zero_list_means_exact_zero() -> None:
    report = example_report()
    report["bias"]["top_features_zero"] = report["bias"]["top_features_zero"][:2]
    assert "| 12695 | 22.64 | 0 | no |" in render_markdown(report)


def test_images_only_for_the_plots_given() -> None:
    text = render_markdown(example_report(), plots={"norms": "activation_norms.png"})
    assert re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text) == ["activation_norms.png"]
    noted = render_markdown(example_report(), plots_note=PLOTS_SKIPPED)
    assert "Plots were skipped" in noted
    assert "![" not in noted


def test_render_does_not_change_the_report() -> None:
    report = example_report()
    before = copy.deepcopy(report)
    render_markdown(report)
    assert report == before


def _plot_data() -> PlotData:
    rng = np.random.default_rng(0)
    code = np.zeros(32)
    code[[1, 2]] = [5.0, 3.0]
    return PlotData(
        steering_norm=2.0,
        activation_norms=rng.uniform(50, 60, 100),
        code_vector=code,
        code_zero=code * 0.9,
        multipliers=(-1.0, 0.0, 1.0),
        curves={"original": [-1.0, 0.0, 1.0]},
    )


def test_write_report_writes_json_markdown_and_resolvable_images(tmp_path: Path) -> None:
    out = tmp_path / "out"
    written = write_report(example_report(), out, plot_data=_plot_data())
    assert written[:2] == ["report.json", "report.md"]
    assert sorted(written[2:]) == sorted([PLOT_FILES["norms"], PLOT_FILES["bias"], PLOT_FILES["retention"]])
    assert json.loads((out / "report.json").read_text()) == example_report()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (out / "report.md").read_text())
    assert sorted(links) == sorted(written[2:])
    assert all((out / link).is_file() for link in links)


def test_without_matplotlib_json_and_markdown_still_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    out = tmp_path / "out"
    written = write_report(example_report(), out, plot_data=_plot_data())
    assert written == ["report.json", "report.md"]
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]
    assert PLOTS_SKIPPED in (out / "report.md").read_text()
