"""Wall time of the test tiers, run as the noxfile runs them (figures against fixed budgets)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT

TIERS = {
    "fast": (["-n", "2", "tests/unit", "tests/property"], 120.0),
    "realmodel": (["--run-realmodel", "-m", "realmodel", "tests/realmodel"], 600.0),
}


def run_tier(name: str, timeout: float = 1800.0) -> dict[str, Any]:
    """Run one tier with pytest in a fresh process; seconds, exit code and the summary line."""
    args, budget = TIERS[name]
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
    return {
        "command": "pytest " + " ".join(args),
        "seconds": seconds,
        "budget_seconds": budget,
        "within_budget": seconds <= budget,
        "exit_code": done.returncode,
        "summary": lines[-1] if lines else "",
    }


def run(names: tuple[str, ...] = ("fast", "realmodel")) -> dict[str, Any]:
    """Every tier in ``names``, one after the other."""
    return {name: run_tier(name) for name in names}
