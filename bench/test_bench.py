"""Smoke run of the benchmark script at its quick sizes: it runs, checks its answers and writes JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_writes_checked_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--repeats", "3", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    pairs = result["pairs"]["cpu"]
    # both sides found exactly the planted pairs
    assert pairs["same_pairs"]
    assert pairs["planted_found"]
    assert pairs["n_pairs"] == 8
    assert pairs["large"]["planted_found"]
    # the CPU baselines are a dense numpy and a dense torch Gram, each timed in 3 interleaved repeats
    assert set(pairs["baselines"]) == {"numpy", "torch"}
    for impl in ("ours", "numpy", "torch"):
        assert len(pairs["seconds"]["all"][impl]) == 3
        assert pairs["seconds"][impl] == sorted(pairs["seconds"]["all"][impl])[1]
    assert pairs["time_baseline"] in ("numpy", "torch")
    assert pairs["time_ratio"] == pairs["time_ratios"][pairs["time_baseline"]]
    dec = result["decompose"]["cpu"]
    # exact OMP is the same algorithm as scikit-learn's: same error to rounding
    assert dec["methods"]["omp_exact"]["error_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert all(m["max_l0"] <= dec["k"] for m in dec["methods"].values())
    assert set(dec["scaling"]) == {"4", "8", "16"}
    assert len(dec["baseline"]["seconds_all"]) == 3
    env = result["environment"]
    assert env["torch_threads"] >= 1
    assert env["versions"]["torch"]
    assert "| figure |" in result["table"]
    assert "extract" not in result
    assert "tiers" not in result
    # every target of the parts that ran is judged, with its value
    judged = {(t["part"], t["figure"]) for t in result["targets"]}
    assert {part for part, _ in judged} == {"pairs", "decompose", "sweep"}  # quick: the sweep on a tiny model
    assert all(isinstance(t["met"], bool) for t in result["targets"])
    correct = [t for t in result["targets"] if t["figure"] == "every side finds exactly the planted pairs"]
    assert correct[0]["met"]


def test_check_fails_on_a_missed_target(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import run
    finally:
        sys.path.remove(str(ROOT / "bench"))
    good = {
        "pairs": {"cpu": {"time_ratio": 0.5, "memory_ratio": 0.1, "same_pairs": True, "planted_found": True}}
    }
    assert all(t["met"] for t in run.judge(good))
    slow = {"pairs": {"cpu": {**good["pairs"]["cpu"], "time_ratio": 0.7}}}
    missed = [t["figure"] for t in run.judge(slow) if not t["met"]]
    assert missed == ["time vs the fastest dense Gram"]
    # a ratio that could not be formed (zero baseline) is a miss, not a pass
    none = {"pairs": {"cpu": {**good["pairs"]["cpu"], "memory_ratio": None}}}
    assert [t["figure"] for t in run.judge(none) if not t["met"]] == ["peak memory vs the leanest dense Gram"]
