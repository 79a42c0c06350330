"""report.markdown: one plain verdict line per mechanism, the tables, intervals and nulls, images, links."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from sae_steer_checks.report.markdown import PLOTS_SKIPPED, render_markdown
from sae_steer_checks.report.verdicts import collect_verdicts
from sae_steer_checks.report.write import build_report, write_report
from tests.helpers.reports import example_report


def render(sections: dict[str, Any], **kwargs: Any) -> str:
    return render_markdown(build_report(sections), **kwargs)


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
