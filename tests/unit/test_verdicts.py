from __future__ import annotations

import math

import pytest

from sae_steer_checks.report.verdicts import feature_ids, feature_values, fmt_num, fmt_pct, id_list, verdicts


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


@pytest.mark.parametrize(("percentile", "status"), [(0.0, "problem"), (0.99, "problem"), (1.0, "fine")])
def test_norm_verdict_threshold(percentile: float, status: str) -> None:
    norm = {"steering_norm": 1.0, "activation_norm_median": 2.0, "ratio": 0.5, "percentile": percentile}
    assert verdicts({"norm": norm})[0].status == status


@pytest.mark.parametrize(("shared", "status"), [(0, "fine"), (2, "fine"), (3, "problem"), (5, "problem")])
def test_bias_verdict_counts_shared_top_features(shared: int, status: str) -> None:
    top_v = [{"feature": i, "value": 1.0} for i in range(5)]
    top_0 = [{"feature": i if i < shared else 100 + i, "value": 1.0} for i in range(5)]
    verdict = verdicts({"bias": {"top_features_vector": top_v, "top_features_zero": top_0}})[1]
    assert verdict.status == status
    assert f"decides {shared} of the top 5 features" in verdict.sentence


def test_every_verdict_starts_with_a_capital_and_ends_with_a_full_stop() -> None:
    for verdict in verdicts({}):
        assert verdict.status == "not run"
        assert verdict.sentence[0].isupper()
        assert verdict.sentence.endswith(".")
