"""The report schema: what validate_report accepts and how it names the first bad key."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from sae_steer_checks.report.schema import SCHEMA_VERSION, validate_report
from sae_steer_checks.report.write import build_report
from tests.helpers.reports import example_report


@pytest.fixture
def report() -> dict[str, Any]:
    return copy.deepcopy(dict(build_report(example_report())))


def test_a_built_report_is_valid(report: dict[str, Any]) -> None:
    validate_report(report)
    assert report["schema_version"] == SCHEMA_VERSION == 4


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["norm"].pop("ratio"), r"report\['norm'\]\['ratio'\]: missing"),
        (lambda r: r.pop("verdicts"), r"report\['verdicts'\]: missing"),
        (lambda r: r["norm"].update(ratoi=1.0), r"report\['norm'\]\['ratoi'\]: unknown key"),
        (
            lambda r: r["norm"].update(n_activations="many"),
            r"report\['norm'\]\['n_activations'\]: expected int",
        ),
        (
            lambda r: r["norm"].update(n_activations=True),
            r"report\['norm'\]\['n_activations'\]: expected int",
        ),
        (
            lambda r: r["bias"]["top_features_vector"][1].pop("value"),
            r"\['top_features_vector'\]\[1\]\['value'\]: missing",
        ),
        (
            lambda r: r["bias"]["other_convention"].update(top_k=5),
            r"\['other_convention'\]\['top_k'\]: unknown key",
        ),
        (
            lambda r: r["aligned_pairs"]["pairs"][0].update(status="alive"),
            r"\['pairs'\]\[0\]\['status'\]: expected one of",
        ),
        (
            lambda r: r["decompositions"]["sae"].pop("l0"),
            r"report\['decompositions'\]\['sae'\]\['l0'\]: missing",
        ),
        (lambda r: r["retention"].pop("ratio_sae"), r"report\['retention'\]\['ratio_sae'\]: missing"),
        (
            lambda r: r["verdicts"][2].update(status="bad"),
            r"report\['verdicts'\]\[2\]\['status'\]: expected one of",
        ),
        (lambda r: r["verdicts"][0].pop("null"), r"report\['verdicts'\]\[0\]\['null'\]: missing"),
        (lambda r: r["provenance"].pop("d_sae"), r"report\['provenance'\]\['d_sae'\]: missing"),
    ],
)
def test_the_first_bad_key_is_named(report: dict[str, Any], edit: Any, message: str) -> None:
    edit(report)
    with pytest.raises(ValueError, match=message):
        validate_report(report)


def test_optional_and_open_parts(report: dict[str, Any]) -> None:
    report["retention"] = None  # no behaviour score
    report["provenance"]["notebook"] = "anything"  # the provenance is open
    report["decompositions"]["sae"].pop("k", None)  # k is not required
    report["norm"]["ratio"] = math.nan  # NaN is a float (written as null)
    report["norm"]["n_activations"] = 3
    report["bias"]["overlap"] = 1  # an int is a JSON number
    validate_report(report)


def test_the_example_follows_the_schema() -> None:
    report = build_report(example_report())
    validate_report(report)
    assert report["schema_version"] == 4
    assert report["verdicts"][0]["mechanism"] == "Out of distribution"
