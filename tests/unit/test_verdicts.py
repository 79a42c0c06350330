from __future__ import annotations

import math

import pytest

from sae_steer_checks.diagnostics.norms import NormCheck
from sae_steer_checks.report.schema import validate_report
from sae_steer_checks.report.verdicts import (
    Figure,
    Interval,
    NullSummary,
    Rule,
    Verdict,
    clears,
    collect_verdicts,
    feature_ids,
    feature_values,
    fmt_num,
    fmt_pct,
    id_list,
)
from sae_steer_checks.report.write import build_report
from tests.helpers.reports import example_report


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
    ("norm", "interval", "status"),
    [(12.5, (10.0, 12.0), "problem"), (12.5, (100.0, 119.0), "problem"),
     (12.5, (100.0, 130.0), "inconclusive"), (150.0, (120.0, 300.0), "fine"),
     (130.0, (10.0, 119.0), "inconclusive")],
)  # fmt: skip
def test_norm_verdict_words_the_checks_status_and_the_interval_it_read(
    norm: float, interval: tuple[float, float], status: str
) -> None:
    report = example_report()  # the 1st percentile of activation norms is 120
    check = NormCheck(
        steering_norm=norm,
        activation_norm_median=150.0,
        quantiles={0.95: 290.0},
        percentile=0.0,
        n_activations=200000,
        interval=interval,
        population_norm=sum(interval) / 2,
        bound=120.0,
    )
    report["norm"].update(check.to_dict())
    verdict = collect_verdicts(report)[0]
    assert verdict.status == status == check.status
    assert verdict.figure == Figure("norm.steering_norm", norm)
    assert verdict.interval is not None
    # the interval shown holds both the given vector's norm and the population norm's interval
    assert verdict.interval.low == min(norm, interval[0])
    assert verdict.interval.high == max(norm, interval[1])
    assert verdict.null is not None
    assert verdict.rule == Rule("below", 120.0, "percentile 1 of activation norms")
    assert clears(verdict.interval, verdict.rule) == (status == "problem")


@pytest.mark.parametrize(("mass", "status"), [(0.7, "problem"), (0.3, "fine"), (0.52, "fine")])
def test_bias_verdict_words_the_given_vectors_share_against_half_and_the_reference(
    mass: float, status: str
) -> None:
    from tests.unit.test_bias import bias_with

    check = bias_with(mass, reference_q95=0.55)
    report = example_report()
    report["bias"].update(check.to_dict())
    report["bias"]["mass_interval"] = [mass - 0.1, mass + 0.1]  # resampling spread: reported, not a gate
    verdict = collect_verdicts(report)[1]
    assert verdict.status == status == check.status
    assert verdict.interval is not None
    assert (verdict.interval.low, verdict.interval.high) == (mass, mass)
    assert verdict.interval.method.startswith("exact")
    assert verdict.rule is not None
    assert verdict.rule.bound == 0.55
    assert clears(verdict.interval, verdict.rule) == (status == "problem")
    assert f"{mass - 0.1:.1%}" in verdict.sentence


@pytest.mark.parametrize(
    ("share_interval", "null_q95", "status"),
    [((0.7, 0.95), 0.2, "problem"), ((0.7, 0.95), 0.8, "fine"), ((0.3, 0.6), 0.2, "fine"),
     ((0.0, 0.4), 0.2, "fine"), ((0.6, 0.7), 0.75, "fine"), ((0.5, 0.6), 0.2, "fine"),
     ((0.51, 0.6), 0.2, "problem")],
)  # fmt: skip
def test_pairs_verdict_needs_the_given_vectors_share_to_clear_min_share_and_the_reference(
    share_interval: tuple[float, float], null_q95: float, status: str
) -> None:
    from sae_steer_checks.diagnostics.spurious import SpuriousCheck
    from sae_steer_checks.stats import NullSummary as Draws

    check = SpuriousCheck(
        threshold=-0.5,
        rare_rate=0.05,
        spurious=(),
        bias_explained=(),
        unexplained=(),
        sign_conflicts=(),
        max_share=share_interval[0],
        share_interval=share_interval,
        share_null=Draws(0.9, 0.1, 0.0, 1.0, 32, 50.0),
        share_reference=Draws(0.1, 0.1, 0.0, null_q95, 32, 99.0),
    )
    report = example_report()
    report["aligned_pairs"].update(check.to_dict())
    verdict = collect_verdicts(report)[3]
    assert verdict.status == status == check.status
    assert verdict.rule is not None
    assert verdict.rule.bound == max(0.5, null_q95)
    assert clears(verdict.interval, verdict.rule) == (status == "problem")


def test_every_verdict_is_a_sentence_naming_its_figure() -> None:
    report = example_report()
    report["retention"] = report["ablation"] = None  # no behaviour score: neither runs
    found = collect_verdicts(report)
    assert [v.status for v in found[-2:]] == ["not run"] * 2
    for verdict in found:
        assert verdict.sentence[0].isupper() or verdict.sentence[0].isdigit()
        assert verdict.sentence.endswith(".")
        assert (verdict.figure is None) == (verdict.status == "not run")
    # every verdict that ran carries an interval, a null and its rule; a problem clears the rule
    for v in found[:-2]:
        assert v.interval is not None, v.mechanism
        assert v.null is not None, v.mechanism
        assert v.rule is not None, v.mechanism
        if v.status == "problem":
            assert clears(v.interval, v.rule), v.mechanism


@pytest.mark.parametrize(
    ("section", "key"),
    [("norm", "steering_norm"), ("bias", "top_features_zero"), ("negative_leaning", "flagged"),
     ("aligned_pairs", "spurious"), ("retention", "ratio_sae")],
)  # fmt: skip
def test_a_renamed_key_raises_instead_of_reading_not_run(section: str, key: str) -> None:
    report = example_report()
    report[section][f"{key}_renamed"] = report[section].pop(key)
    with pytest.raises(KeyError, match=key):
        collect_verdicts(report)


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
    assert entry["rule"] is None
    report = build_report(example_report())
    report["verdicts"][5] = entry
    validate_report(report)
    entry["rule"] = Rule("below", 0.8, "the retained threshold").to_dict()
    report["verdicts"][5] = entry
    validate_report(report)
    entry["rule"] = {"side": "sideways", "bound": 0.8, "what": "x"}
    with pytest.raises(ValueError, match=r"\['rule'\]\['side'\]"):
        validate_report(report)


def test_the_verdicts_module_is_not_shadowed_by_a_function() -> None:
    import sae_steer_checks.report.verdicts as module

    assert module.clears is clears
    assert module.collect_verdicts is collect_verdicts


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
