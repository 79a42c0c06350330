"""The survey table's learned-vector figures: its own held-out slope against v's null, and kept rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sae_steer_checks.cli.survey import _kept_row
from sae_steer_checks.report.survey import CELL_KEYS, render_survey_markdown, survey_row


def _report(v_slope: float, learned_slope: float, steers: bool) -> dict[str, Any]:
    null = [0.1 * (i - 20) for i in range(40)]  # |null| up to 2.0
    ratio = {"ratio": learned_slope / v_slope, "ci_low": 0.5, "ci_high": 9.0}
    return {
        "verdicts": [],
        "ablation": None,
        "learned": {"n_support": 32, "n_negative": 12},
        "retention": {
            "steers": steers,
            "slopes": {"original": v_slope, "sae": 0.1 * v_slope, "learned": learned_slope},
            "slope_estimates": {"learned": {"ci_low": learned_slope - 0.1, "ci_high": learned_slope + 0.1}},
            "null": {"slopes": null, "n": len(null)},
            "ratio_intervals": {"learned": ratio, "sae": {"ratio": 0.1, "ci_low": 0.0, "ci_high": 0.2}},
            "statuses": {"learned": {"status": "fine"}},
        },
    }


@pytest.mark.parametrize(
    ("learned_slope", "p"),
    [(2.5, 1 / 41), (-2.5, 1 / 41), (1.95, 2 / 41), (0.05, 40 / 41)],
)
def test_the_learned_slope_is_ranked_among_vs_random_directions(learned_slope: float, p: float) -> None:
    row = survey_row({"cell": "c", "index": 0}, _report(1.0, learned_slope, steers=False))
    learned = row["learned"]
    assert learned["null_p"] == pytest.approx(p)
    assert learned["null_n"] == 40
    assert learned["slope_interval"] == pytest.approx([learned_slope - 0.1, learned_slope + 0.1])
    assert learned["v_steers"] is False


def test_the_learned_paragraph_separates_cells_where_v_steers() -> None:
    rows = [
        survey_row(
            {"cell": "steers", "index": 0, "behaviour": "b", "layer": 1, "sae": "s"},
            _report(1.0, 2.5, steers=True),
        ),
        survey_row(
            {"cell": "flat", "index": 1, "behaviour": "b", "layer": 1, "sae": "s"},
            _report(0.01, 2.5, steers=False),
        ),
    ]
    survey = {"model": "m", "behaviours": [], "layers": [], "saes": [], "grid": ["steers", "flat"],
              "shard": None, "rows": rows}  # fmt: skip
    text = render_survey_markdown(survey)
    assert "In 1 of 2 cells v itself steers" in text
    assert "at p <= 0.05 in 2 of 2 cells, 1 of them cells where v does not steer" in text
    assert "flat: held-out slope 2.5" in text
    assert "v does not steer here" in text


def test_a_kept_row_is_rebuilt_from_its_report(tmp_path: Path) -> None:
    old = {k: None for k in CELL_KEYS} | {"cell": "c", "index": 3, "status": "ok", "learned": {"ratio": 1.0}}
    (tmp_path / "row.json").write_text(json.dumps(old))
    (tmp_path / "report.json").write_text(json.dumps(_report(1.0, 2.5, steers=True)))
    row = _kept_row(tmp_path / "row.json")
    assert row["index"] == 3
    assert row["learned"]["null_p"] == pytest.approx(1 / 41)
