from __future__ import annotations

import math

import pytest

from sae_steer_checks.report.schema import validate_report
from sae_steer_checks.report.verdicts import (
    Figure,
    Interval,
    NullSummary,
    Verdict,
    feature_ids,
    feature_values,
    fmt_num,
    fmt_pct,
    id_list,
    verdicts,
)
from sae_steer_checks.report.write import build_report
from tests.unit.test_report import example_report


@pytest.mark.parametrize(
    ("value", "text"),
    [(3, "3"), (2.0, "2"), (0.09924, "0.09924"), (201.123, "201.1"), (1e-5, "1.00e-05"),
     (math.nan, "n/a"), (None, "n/a"), (True, "n/a")],
)  # fmt: skip
def test_fmt_num(value: object, text: str) -> None:
    assert fmt_num(value) == text


def test_fmt_pct_and_ids() -> None:
    assert fmt_pct(0.512) == "51.2%"
    assert fmt_pct(None) == "n/a"
    entries = [{"feature": 4888, "value": 95.04}, [15603, 36.34], 7]
    assert feature_ids(entries) == [4888, 15603, 7]
    assert feature_values(entries)[:2] == [(4888, 95.04), (15603, 36.34)]
    assert id_list(list(range(10)), limit=3) == "0, 1, 2 and 7 more"
    assert id_list([]) == "none"


@pytest.mark.parametrize(
    ("percentiles", "status"),
    [((0.0, 0.0), "problem"), ((0.0, 0.99), "problem"), ((0.5, 2.0), "inconclusive"), ((1.0, 3.0), "fine")],
)
def test_norm_verdict_reads_the_interval_of_the_percentile(
    percentiles: tuple[float, float], status: str
) -> None:
    report = example_report()
    report["norm"]["percentile_interval"] = list(percentiles)
    verdict = verdicts(report)[0]
    assert verdict.status == status
    assert verdict.figure == Figure("norm.percentile", report["norm"]["percentile"])
    assert verdict.interval is not None
    assert verdict.null is not None


@pytest.mark.parametrize(
    ("interval", "status"), [((0.6, 0.9), "problem"), ((0.1, 0.45), "fine"), ((0.4, 0.6), "inconclusive")]
)
def test_bias_verdict_reads_the_interval_of_the_mass_in_zero(
    interval: tuple[float, float], status: str
) -> None:
    report = example_report()
    report["bias"]["mass_interval"] = list(interval)
    verdict = verdicts(report)[1]
    assert verdict.status == status
    assert verdict.interval is not None
    assert (verdict.interval.low, verdict.interval.high) == interval


def test_every_verdict_is_a_sentence_naming_its_figure() -> None:
    report = example_report()
    report["retention"] = None
    found = verdicts(report)
    assert found[-1].status == "not run"
    for verdict in found:
        assert verdict.sentence[0].isupper() or verdict.sentence[0].isdigit()
        assert verdict.sentence.endswith(".")
        assert (verdict.figure is None) == (verdict.status == "not run")
    # every verdict that ran stands against a null
    assert all(
        v.null is not None
        for v in found
        if v.mechanism not in ("Negatively aligned pairs", "Behaviour retained")
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [("norm", "percentile"), ("bias", "top_features_zero"), ("negative_leaning", "flagged"),
     ("aligned_pairs", "spurious"), ("retention", "ratio_sae")],
)  # fmt: skip
def test_a_renamed_key_raises_instead_of_reading_not_run(section: str, key: str) -> None:
    report = example_report()
    report[section][f"{key}_renamed"] = report[section].pop(key)
    with pytest.raises(KeyError, match=key):
        verdicts(report)


def test_verdict_entries_carry_interval_and_null_when_given() -> None:
    verdict = Verdict(
        "Behaviour retained",
        "inconclusive",
        "Steering with SAE(v) keeps 70% of the slope.",
        Figure("retention.ratio_sae", 0.7),
        Interval(0.4, 1.1, 0.95, "fieller"),
        NullSummary("random vectors of the same norm", 0.01, 0.2, 99.0, 200),
    )
    entry = verdict.to_dict()
    assert entry["figure"] == {"name": "retention.ratio_sae", "value": 0.7}
    assert entry["interval"] == {"low": 0.4, "high": 1.1, "level": 0.95, "method": "fieller"}
    assert entry["null"] == {
        "name": "random vectors of the same norm", "mean": 0.01, "q95": 0.2, "percentile": 99.0, "n": 200
    }  # fmt: skip
    report = build_report(example_report())
    report["verdicts"][5] = entry
    validate_report(report)
