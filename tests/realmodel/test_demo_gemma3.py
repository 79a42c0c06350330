"""The main job on the embedded default: the full check on Gemma 3 270M with the bundled SAE.

Two kinds of assertions on the demo's ``report.json`` files:

- **golden figures** (``golden_demo.json``, with device, dtype, library versions and a tolerance per figure),
  so that a change in any stage shows up as a changed number;
- **the study's claims on this second model and SAE**: those that hold here are asserted; those that do not
  (spurious positives from negatively aligned pairs) are asserted as measured, so that a change is noticed.

Set ``SAE_STEER_CHECKS_UPDATE_GOLDEN=1`` to rewrite the golden file from a fresh run (then review the diff).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from sae_steer_checks.cli.commands import main

pytestmark = pytest.mark.realmodel

GOLDEN = Path(__file__).with_name("golden_demo.json")
CHECKS = ("corrigibility", "sentiment")

#: dotted path -> (kind, tolerance): "abs" absolute, "rel" relative, "exact" equality
FIGURES: dict[str, tuple[str, float]] = {
    "norm.steering_norm": ("rel", 0.02),
    "norm.activation_norm_median": ("rel", 0.01),
    "norm.percentile": ("abs", 0.5),
    "bias.overlap": ("abs", 0.0),
    "bias.mass_in_zero": ("abs", 0.01),
    "bias.l0_zero": ("exact", 0.0),
    "negative_leaning.fraction": ("abs", 0.03),
    "negative_leaning.n_significant": ("abs", 4.0),
    "negative_leaning.significant_fraction": ("abs", 0.06),
    "aligned_pairs.n_pairs": ("exact", 0.0),
    "aligned_pairs.n_dead": ("exact", 0.0),
    "decompositions.sae.cosine": ("abs", 0.02),
    "decompositions.signed.cosine": ("abs", 0.02),
    "decompositions.signed.n_negative": ("abs", 3.0),
    # the verdicts themselves (Out of distribution .. Signed decomposition; retention below)
    **{f"verdicts.{i}.status": ("exact", 0.0) for i in range(5)},
}
RETENTION_FIGURES: dict[str, tuple[str, float]] = {
    "retention.slopes.original": ("rel", 0.05),
    "retention.ratio_sae": ("abs", 0.05),
    "retention.ratio_signed": ("abs", 0.05),
    "verdicts.5.status": ("exact", 0.0),
    "ablation.cost": ("abs", 0.05),
    "verdicts.6.status": ("exact", 0.0),
}


def _get(report: dict[str, Any], dotted: str) -> Any:
    value: Any = report
    for key in dotted.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


@pytest.fixture(scope="module")
def demo_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo") / "report"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary) == sorted(CHECKS)
    return {name: json.loads((out / name / "report.json").read_text()) for name in CHECKS}


def _figures(name: str) -> dict[str, tuple[str, float]]:
    return {**FIGURES, **(RETENTION_FIGURES if name == "sentiment" else {})}


def test_figures_match_the_golden_file(demo_reports: dict[str, dict[str, Any]]) -> None:
    if os.environ.get("SAE_STEER_CHECKS_UPDATE_GOLDEN") == "1":
        first = demo_reports[CHECKS[0]]["provenance"]
        golden = {
            "device": first["device"],
            "dtype": first["dtype"],
            "versions": first["versions"],
            "checks": {
                name: {
                    path: {"value": _get(demo_reports[name], path), "kind": kind, "tolerance": tol}
                    for path, (kind, tol) in _figures(name).items()
                }
                for name in CHECKS
            },
        }
        GOLDEN.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    mismatches = []
    for name in CHECKS:
        assert set(golden["checks"][name]) == set(_figures(name))
        for path, spec in golden["checks"][name].items():
            got, want, tol = _get(demo_reports[name], path), spec["value"], spec["tolerance"]
            kind = spec["kind"]
            if kind == "exact":
                ok = got == want
            else:
                ok = abs(got - want) <= (tol if kind == "abs" else tol * abs(want))
            if not ok:
                mismatches.append(f"{name}.{path}: got {got}, golden {want} ({spec['kind']} tol {tol})")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("name", CHECKS)
def test_the_vector_is_far_out_of_distribution(demo_reports: dict[str, dict[str, Any]], name: str) -> None:
    norm = demo_reports[name]["norm"]
    assert norm["ratio"] < 0.1
    assert norm["percentile"] == 0.0  # shorter than every sampled text token's activation


@pytest.mark.parametrize("name", CHECKS)
def test_the_encoder_bias_decides_the_top_features(
    demo_reports: dict[str, dict[str, Any]], name: str
) -> None:
    bias = demo_reports[name]["bias"]
    top_v = {entry["feature"] for entry in bias["top_features_vector"]}
    top_0 = {entry["feature"] for entry in bias["top_features_zero"]}
    assert len(top_v & top_0) >= 4
    assert bias["mass_in_zero"] > 0.9


@pytest.mark.parametrize("name", CHECKS)
def test_a_substantial_share_leans_negative_and_is_dropped(
    demo_reports: dict[str, dict[str, Any]], name: str
) -> None:
    leaning = demo_reports[name]["negative_leaning"]
    assert leaning["fraction"] > 0.3
    assert leaning["significant_fraction"] > 0.3
    assert len(leaning["dropped_by_encoder"]) > 0


@pytest.mark.parametrize("name", CHECKS)
def test_negatively_aligned_pairs_are_mostly_dead_and_explain_no_positive(
    demo_reports: dict[str, dict[str, Any]], name: str
) -> None:
    # What this model and SAE show, unlike the study's 3517/14004: pairs below -0.5 exist, almost all
    # between features that never fire on held-out text, and none turns a negative projection into a
    # positive SAE(v) coefficient.
    pairs = demo_reports[name]["aligned_pairs"]
    assert len(pairs["pairs"]) > 0
    assert pairs["n_dead"] > 10 * pairs["n_live"]
    assert pairs["spurious"] == []


def test_signed_decomposition_retains_more_steering_than_the_sae(
    demo_reports: dict[str, dict[str, Any]],
) -> None:
    retention = demo_reports["sentiment"]["retention"]
    original = retention["slopes"]["original"]
    assert original > 5 * retention["stderr"]["original"]  # the vector steers this behaviour
    assert retention["ratio_signed"] > retention["ratio_sae"] + 0.2
    # a 270M base model does not express corrigibility through A/B letters: no retention sweep there
    assert demo_reports["corrigibility"]["retention"] is None


@pytest.mark.parametrize("name", CHECKS)
def test_every_verdict_carries_an_interval_a_null_and_a_rule_it_obeys(
    demo_reports: dict[str, dict[str, Any]], name: str
) -> None:
    from sae_steer_checks.report.verdicts import clears

    found = demo_reports[name]["verdicts"]
    assert len(found) == 7
    ran = [v for v in found if v["status"] != "not run"]
    assert len(ran) == (7 if name == "sentiment" else 5)
    for verdict in ran:
        assert verdict["interval"] is not None, verdict["mechanism"]
        assert verdict["null"] is not None, verdict["mechanism"]
        assert verdict["rule"] is not None, verdict["mechanism"]
        # no "problem" where the interval reaches the bound its null sets
        if verdict["status"] == "problem":
            assert clears(verdict["interval"], verdict["rule"]), verdict["mechanism"]
