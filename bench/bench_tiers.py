"""Wall time of the test tiers, run as the noxfile runs them (budgets are in run.py's TARGETS)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, check_repeats, median

TIERS = {
    "fast": ["-n", "2", "tests/unit", "tests/property"],
    "realmodel": ["--run-realmodel", "tests/realmodel"],
}


def run_tier(name: str, timeout: float = 1800.0) -> dict[str, Any]:
    """Run one tier with pytest in a fresh process; seconds, exit code and the summary line."""
    args = TIERS[name]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    start = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout, check=False
    )
    seconds = time.perf_counter() - start
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    return {"seconds": seconds, "exit_code": done.returncode, "summary": lines[-1] if lines else ""}


def run(names: tuple[str, ...] = ("fast", "realmodel"), repeats: int = 3) -> dict[str, Any]:
    """Every tier in ``names``, ``repeats`` interleaved rounds; the median time and the worst exit code."""
    check_repeats(repeats)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(run_tier(name))
    return {
        name: {
            "command": "pytest " + " ".join(TIERS[name]),
            "seconds": median([r["seconds"] for r in rs]),
            "seconds_all": [r["seconds"] for r in rs],
            # a failing round fails the figure: the worst (non-zero) exit code is kept
            "exit_code": max((r["exit_code"] for r in rs), key=lambda c: c != 0),
            "summary": rs[-1]["summary"],
        }
        for name, rs in runs.items()
    }
