"""The study's figures on Gemma 2 2B, layer 14, with Gemma Scope (16k, average L0 173).

One test per figure of ``tests/gpu/study.json``. ``test_weights_*`` read the SAE file only (no model,
no forward); the others share one run of the whole tier (``tier`` fixture), which also writes the report
folder and ``replication.md`` / ``replication.json``. Plumbing is rehearsed on stand-ins in CI
(``tests/realmodel/test_gemma2_rehearsal.py``); the figures are asserted only here, on real weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.gpu.figures import Figure, Row, replication_table
from tests.gpu.replication import TierRun

_STUDY = json.loads(Path(__file__).with_name("study.json").read_text(encoding="utf-8"))["figures"]
WEIGHT_FIGURES = [name for name, entry in _STUDY.items() if entry["needs"] == "weights"]
FORWARD_FIGURES = [name for name, entry in _STUDY.items() if entry["needs"] == "forward"]


def _check(row: Row) -> None:
    detail = (
        f"{row.figure}: ours {row.ours!r} ({row.note}) vs study {row.study!r}, {row.kind} {row.tolerance}"
    )
    assert row.ours is not None, f"{detail}: the run did not produce this figure"
    if row.holds is not None:
        assert row.holds, f"{detail} -- tolerance because {row.reason}"


@pytest.mark.parametrize("name", WEIGHT_FIGURES)
def test_weights_figure(name: str, weight_only_figures: dict[str, Figure], study: dict[str, Any]) -> None:
    (row,) = replication_table(weight_only_figures, {name: study[name]})
    _check(row)


@pytest.mark.parametrize("name", FORWARD_FIGURES)
def test_figure(name: str, tier: tuple[TierRun, list[Row], Path]) -> None:
    _, rows, _ = tier
    (row,) = [r for r in rows if r.figure == name]
    _check(row)


def test_tier_writes_report_and_replication_table(tier: tuple[TierRun, list[Row], Path]) -> None:
    run, rows, out = tier
    for name in ("report.json", "report.md", "replication.md", "replication.json"):
        assert (out / name).is_file(), f"{out / name} was not written"
    assert len(rows) == len(_STUDY)
    assert run.report["provenance"]["extraction"]["prompt_format"] == "plain"
    assert run.caa.n_items == 340, f"the study used 340 items, the run read {run.caa.n_items}"


def test_tier_runs_in_under_ten_minutes(tier: tuple[TierRun, list[Row], Path]) -> None:
    run, _, _ = tier
    assert sum(run.seconds.values()) < 600, run.seconds
