"""Smoke run of the benchmark script at its quick sizes: it runs, checks its answers and writes JSON."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None,
    reason="the benchmark's baselines need scikit-learn (the `bench` extra)",
)


def test_quick_benchmark_writes_checked_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--rounds", "1", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    pairs = result["pairs"]["cpu"]
    # both sides found exactly the planted pairs
    assert pairs["same_pairs"]
    assert pairs["planted_found"]
    assert pairs["n_pairs"] == 8
    assert pairs["large"]["planted_found"]
    assert pairs["seconds"]["ours"] > 0
    assert pairs["seconds"]["baseline"] > 0
    dec = result["decompose"]["cpu"]
    # exact OMP is the same algorithm as scikit-learn's: same error to rounding
    assert dec["methods"]["omp_exact"]["error_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert all(m["max_l0"] <= dec["k"] for m in dec["methods"].values())
    assert set(dec["scaling"]) == {"4", "8", "16"}
    env = result["environment"]
    assert env["torch_threads"] >= 1
    assert env["versions"]["torch"]
    assert "| figure |" in result["table"]
    assert "extract" not in result
    assert "tiers" not in result
