from __future__ import annotations

import copy
import functools
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from sae_steer_checks.report.markdown import PLOTS_SKIPPED, render_markdown
from sae_steer_checks.report.plots import PLOT_FILES
from sae_steer_checks.report.schema import validate_report
from sae_steer_checks.report.verdicts import collect_verdicts
from sae_steer_checks.report.write import build_report, write_report


@functools.lru_cache(maxsize=1)
def _planted_sections() -> dict[str, Any]:
    """``CheckResult.to_report()`` of a small planted-world run: every key the diagnostics write."""
    from sae_steer_checks.cli.inputs import planted_inputs
    from sae_steer_checks.diagnostics.run import CheckConfig, run_checks

    c = planted_inputs(seed=0, n_pairs=48, n_activations=256)
    config = CheckConfig(multipliers=(-1.0, 0.0, 1.0), n_null=19, n_boot=50, leaning_n_perm=500, k_max=16)
    result = run_checks(c.sae, c.vector, c.pos, c.neg, c.activations, score_fn=c.score_fn, config=config)
    return result.to_report()


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def example_report() -> dict[str, Any]:
    """Report sections shaped like ``CheckResult.to_report()``, with the study's Gemma 2 2B figures.

    The keys come from a real (planted-world) run, so the example cannot drift from the schema; the
    figures named in the study are written over them.
    """
    return _merge(_planted_sections(), _study_figures())


def _study_figures() -> dict[str, Any]:
    return {
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
            "sae": {"class": "SAE", "architecture": "jumprelu"},
            "n_pairs": 340,
            "n_activations": 200000,
            "activation_source": "activations",
            "reconstruction": "decoder-bias-free feature part decode(f) - decode(0)",
        },
        "norm": {
            "steering_norm": 12.5,
            "activation_norm_median": 150.0,
            "quantiles": {"0.01": 120.0, "0.5": 150.0, "0.99": 300.0},
            "ratio": 12.5 / 150.0,
            "percentile": 0.0,
            "n_activations": 200000,
            "bound_percentile": 1.0,
            "bound": 120.0,
            "population_norm": 11.0,
            "interval": [10.0, 12.0],
            "verdict_interval": [10.0, 12.5],
            "verdict": "problem",
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
            "same_support": False,
            "l0_vector": 45,
            "l0_zero": 40,
            "other_convention": {
                "decoder_bias_subtracted": True,
                "overlap": 1.0,
                "mass_in_zero": 0.97,
                "top_features_vector": [{"feature": 4888, "value": 86.2}],
                "top_features_zero": [{"feature": 4888, "value": 85.0}],
                "same_support": True,
                "l0_vector": 1,
                "l0_zero": 1,
            },
            "delta_top_features": [{"feature": 14004, "value": 1.5}],
        },
        "negative_leaning": {
            "fraction": 0.512,
            "n_active": 1000,
            "n_negative": 512,
            "significant_fraction": 0.4,
            "n_significant": 30,
            "n_significant_negative": 12,
            "alpha": 0.05,
            "n_pairs": 340,
            "dropped_by_encoder": [14004, 77],
        },
        "aligned_pairs": {
            "threshold": -0.5,
            "n_pairs": 3,
            "n_live": 1,
            "n_dead": 2,
            "n_mixed": 0,
            "truncated": False,
            "pairs": [
                {"feature": 14004, "partner": 3517, "cosine": -0.82, "status": "live"},
                {"feature": 5, "partner": 6, "cosine": -0.7, "status": "dead"},
                {"feature": 8, "partner": 9, "cosine": -0.6, "status": "dead"},
            ],
            "max_share": 0.9,
            "share_interval": [0.7, 0.95],
            "share_null": {"mean": 0.85, "q05": 0.0, "q95": 1.0, "n": 32, "percentile": 60.0},
            "share_reference": {"mean": 0.01, "q05": 0.0, "q95": 0.05, "n": 200000, "percentile": 100.0},
            "share_bound": 0.5,
            "verdict": "problem",
            "spurious": [
                {
                    "feature": 3517,
                    "explained_by": 14004,
                    "share": 0.9,
                    "cosine": -0.82,
                    "value": 4.2,
                    "partner_projection": -1.0,
                }
            ],
            "bias_explained": [4888, 15603],
            "unexplained": [],
            "sign_conflicts": [
                {"feature": 4888, "value": 95.0, "projection": -0.3, "signed_coefficient": -0.1}
            ],
            "rare_rate": 0.05,
        },
        "decompositions": {
            "sae": _dec(0.31, 0.95, 45, 0, "sae_encoder"),
            "signed": {**_dec(0.98, 0.2, 32, 12, "omp"), "k": 32},
            "omp": {**_dec(0.98, 0.2, 32, 12, "omp"), "k": 32},
            "gradient_pursuit": {**_dec(0.97, 0.25, 32, 11, "gradient_pursuit"), "k": 32},
        },
        "retention": {
            "multipliers": [-1.0, 0.0, 1.0],
            "slopes": {"original": 2.0, "sae": 0.3, "signed": 1.9},
            "stderr": {"original": 0.1, "sae": 0.05, "signed": None},
            "scores": {"original": [-2.0, 0.0, 2.0], "sae": [-0.3, 0.0, 0.3], "signed": [-1.9, 0, 1.9]},
            "ratio_sae": 0.15,
            "ratio_signed": 0.95,
        },
    }


def _dec(cosine: float, rel_error: float, l0: int, n_negative: int, method: str) -> dict[str, Any]:
    return {
        "cosine": cosine,
        "rel_error": rel_error,
        "error_norm": rel_error * 12.5,
        "l0": l0,
        "n_negative": n_negative,
        "method": method,
    }


def render(sections: dict[str, Any], **kwargs: Any) -> str:
    return render_markdown(build_report(sections), **kwargs)


def test_the_example_follows_the_schema() -> None:
    report = build_report(example_report())
    validate_report(report)
    assert report["schema_version"] == 4
    assert report["verdicts"][0]["mechanism"] == "Out of distribution"


def test_every_mechanism_gets_one_plain_verdict_line() -> None:
    text = render(example_report())
    section = text.split("## Verdict")[1].split("\n## ")[0]
    bullets = [line for line in section.splitlines() if line.startswith("- ")]
    assert len(bullets) == 7
    marks = ("(**problem**)", "(fine)", "(inconclusive)", "(not run)")
    assert all(sum(m in b for m in marks) == 1 for b in bullets)
    assert "The encoder bias decides 4 of the top 5 features of SAE(v)" in section
    assert "51.2% of the 1000 features active" in section
    assert "e.g. feature 3517: 90.0% from feature 14004 (cosine -0.82)" in section
    assert "shorter than every one of the 200000 sampled activations" in section
    assert "Steering with SAE(v) keeps 15.0% of that slope" in section


def test_fine_verdicts_when_the_sae_accounts_for_the_vector() -> None:
    report = example_report()
    # above the 1st percentile of activation norms, 120
    report["norm"].update(steering_norm=135.0, interval=[130.0, 140.0], verdict_interval=[130.0, 140.0])
    report["norm"]["verdict"] = "fine"
    report["bias"].update(mass_in_zero=0.2, mass_interval=[0.1, 0.3], verdict="fine")
    report["negative_leaning"]["verdict"] = "fine"
    report["aligned_pairs"].update(spurious=[], verdict="fine")
    report["decomposition_nulls"]["verdict"] = "fine"
    report["retention"].update(status="fine", steers=True, reason="the ratio's interval lies above 0.8")
    report["ablation"].update(status="fine", reason="the cost's interval lies below 0.2")
    assert [v.status for v in collect_verdicts(report)] == ["fine"] * 7


def test_absent_retention_is_not_run_and_a_missing_section_raises() -> None:
    report = example_report()
    report["retention"] = None
    statuses = {v.mechanism: v.status for v in collect_verdicts(report)}
    assert statuses["Behaviour retained"] == "not run"
    assert "Not run: no behaviour score was given." in render(report)
    del report["aligned_pairs"]
    with pytest.raises(KeyError, match="aligned_pairs"):
        collect_verdicts(report)
    with pytest.raises(ValueError, match=r"report\['aligned_pairs'\]: missing"):
        build_report(report)


def test_tables_carry_the_key_figures() -> None:
    text = render(example_report())
    assert "| 4888 | 95.04 | 89.06 | yes |" in text
    # 12695 is not among SAE(0)'s five listed features, which fill the top 5: below the 5th
    assert "| 12695 | 22.64 | < 3 | no |" in text
    assert "| 14004 | 3517 | -0.82 | live |" in text
    assert "| omp (reported as signed) | 0.98 | 0.2 | 32 | 12 |" in text
    assert "| SAE(v) | 0.3 | " in text
    assert "Under the other convention (decoder bias subtracted): overlap 1" in text
    assert "| dataset_sha256 | " + "ab" * 32 + " |" in text


def test_shorter_zero_list_means_exact_zero() -> None:
    report = example_report()
    report["bias"]["top_features_zero"] = report["bias"]["top_features_zero"][:2]
    assert "| 12695 | 22.64 | 0 | no |" in render(report)


def test_images_only_for_the_plots_given() -> None:
    text = render(example_report(), plots={"norms": "activation_norms.png"})
    assert re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text) == ["activation_norms.png"]
    noted = render(example_report(), plots_note=PLOTS_SKIPPED)
    assert "Plots were skipped" in noted
    assert "![" not in noted


def test_render_and_build_do_not_change_their_input() -> None:
    sections = example_report()
    before = copy.deepcopy(sections)
    report = build_report(sections)
    assert sections == before
    built = copy.deepcopy(report)
    render_markdown(report)
    assert report == built


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


def test_without_matplotlib_json_and_markdown_still_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    out = tmp_path / "out"
    write_report(example_report(), out)
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]
    assert PLOTS_SKIPPED in (out / "report.md").read_text()


def _calibrated() -> dict[str, Any]:
    report = build_report(example_report())
    report["negative_leaning"]["fraction_interval"] = {"low": 0.47, "high": 0.538, "level": 0.95}
    report["negative_leaning"]["fraction_null"] = {
        "mean": 0.4995,
        "q05": 0.464,
        "q95": 0.5375,
        "percentile": 62.05,
    }
    report["retention"]["slope_estimates"] = {"sae": {"ci_low": 0.21, "ci_high": 0.39}}
    report["retention"]["ratio_intervals"] = {"sae": {"ci_low": 0.1, "ci_high": 0.2, "method": "fieller"}}
    report["retention"]["null"] = {"n": 16, "abs_q95": 0.42, "mean": 0.01, "percentile": 100.0}
    report["verdicts"][0]["interval"] = {"low": 22.14, "high": 22.72, "method": "bootstrap over items"}
    report["verdicts"][0]["null"] = {"name": "norms", "mean": 201.1, "q95": 201.6, "percentile": 0.0}
    report["verdicts"][0]["figure"] = {"name": "norm.percentile", "value": 0.0}
    return report


def test_markdown_shows_intervals_and_nulls() -> None:
    text = render_markdown(_calibrated())
    row = "| `norm.percentile` = 0 | 22.14 to 22.72 (bootstrap over items) | "
    assert row + "norms: mean 201.1, q95 201.6, percentile 0 |" in text
    assert "| 95% interval of that share (bootstrap over items) | 47.0% to 53.8% |" in text
    assert "50.0% (46.4% to 53.8%), percentile 62.05" in text
    assert "| SAE(v) | 0.3 | 0.21 to 0.39 | 15.0% | 10.0% to 20.0% |" in text
    assert "|slope| q95 0.42" in text


def test_feature_ids_link_to_neuronpedia_only_with_an_id() -> None:
    report = build_report(example_report())
    assert "neuronpedia.org" not in render_markdown(report)
    report["provenance"]["sae"]["neuronpedia_id"] = "gemma-2-2b/14-gemmascope-res-16k"
    text = render_markdown(report)
    url = "https://www.neuronpedia.org/gemma-2-2b/14-gemmascope-res-16k/"
    assert f"| [4888]({url}4888) | 95.04 | 89.06 | yes |" in text
    assert f"| [14004]({url}14004) | [3517]({url}3517) | -0.82 | live |" in text
    report = build_report(example_report())
    report["provenance"]["sae_source"]["neuronpedia_id"] = "x/y"
    assert "(https://www.neuronpedia.org/x/y/4888)" in render_markdown(report)
