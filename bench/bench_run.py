"""Wall time of the whole ``run`` command (and the share in the steering sweep) and of the warm demo.

    python bench/bench_run.py '{"dataset": "builtin:sentiment"}'    # one run, in this process: JSON

Each measurement runs in a fresh process (:func:`common.run_worker`). The worker calls
``sae_steer_checks.cli.main`` in-process with ``diagnostics.run.retention`` wrapped by a timer, so the
share of the sweep (the retention check: every vector times every multiplier, and the random null) is
read against the total of the same call. The model's first load assembles a cache: run once before
measuring (the figures are warm).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, check_repeats, median, ratio, run_worker

DATASETS = ("builtin:corrigibility", "builtin:sentiment")


def _load() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def whole_run(dataset: str, model: str = "gemma3-270m", layer: int = 10) -> dict[str, Any]:
    """One ``run`` on ``dataset`` with the bundled SAE, in this process: total and sweep seconds."""
    import sae_steer_checks.diagnostics.run as diag_run
    from sae_steer_checks.cli import main
    from sae_steer_checks.sae.loading import bundled_sae_dir

    inner = diag_run.retention
    spent: list[float] = []

    def timed_retention(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as out:
        argv = ["run", "--model", model, "--sae", str(bundled_sae_dir()), "--layer", str(layer)]
        argv += ["--dataset", dataset, "--out", out, "--force", "-q"]
        load_before = _load()
        start = time.perf_counter()
        with mock.patch.object(diag_run, "retention", timed_retention):
            code = main(argv)
        total = time.perf_counter() - start
    return {
        "command": "python -m sae_steer_checks " + " ".join(argv).replace(out, "OUT"),
        "exit_code": code,
        "seconds": total,
        "sweep_seconds": sum(spent),
        "sweep_share": ratio(sum(spent), total),
        "load_average_before": load_before,
    }


_INPUTS_ONLY = "from sae_steer_checks.cli.demo import demo_inputs; demo_inputs(progress=False)"


def demo_inputs_only(timeout: float = 900.0) -> dict[str, Any]:
    """The demo's baseline in a fresh interpreter: imports, model and SAE load, text and CAA reads only.

    What every check of the demo needs before any diagnostic, null or report runs; the demo's ratio to
    it is what the checks, their nulls and the reports add.
    """
    load_before = _load()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _INPUTS_ONLY],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    return {
        "seconds": time.perf_counter() - start,
        "exit_code": done.returncode,
        "load_average_before": load_before,
    }


def demo(timeout: float = 900.0) -> dict[str, Any]:
    """One warm ``demo`` as the user runs it (a fresh interpreter): seconds, exit code and load."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "sae_steer_checks", "demo", "--out", out, "--force", "-q"]
        load_before = _load()
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "exit_code": done.returncode, "load_average_before": load_before}


def run(
    datasets: tuple[str, ...] = DATASETS,
    run_repeats: int = 1,
    demo_repeats: int = 3,
    demo_limit: float = 60.0,
) -> dict[str, Any]:
    """The whole ``run`` per set (``run_repeats`` rounds, one acceptable: minutes each) and the demo.

    Rounds are interleaved; each figure is the median. The run's sweep share is a ratio within one call;
    the demo's ``checks_ratio`` is its wall time over that of its inputs alone (:func:`demo_inputs_only`,
    interleaved), and ``limit_seconds`` an absolute bound kept beside the load average for reference.
    ``datasets=()`` skips the runs and ``demo_repeats=0`` the demo (the key is then absent).
    """
    if demo_repeats:
        check_repeats(demo_repeats)
    if datasets and run_repeats < 1:
        raise ValueError(f"run_repeats must be at least 1, got {run_repeats}")
    runs: dict[str, list[dict[str, Any]]] = {d: [] for d in datasets}
    demos: list[dict[str, Any]] = []
    bases: list[dict[str, Any]] = []
    for i in range(max(run_repeats, demo_repeats)):
        if i < run_repeats:
            for d in datasets:
                runs[d].append(run_worker("bench_run", {"dataset": d}, timeout=3600.0))
        if i < demo_repeats:
            demos.append(demo())
            bases.append(demo_inputs_only())
    out: dict[str, Any] = {"run": {}} if datasets else {}
    for d, rs in runs.items():
        out["run"][d] = {
            "command": rs[0]["command"],
            "repeats": len(rs),
            "seconds": median([r["seconds"] for r in rs]),
            "sweep_seconds": median([r["sweep_seconds"] for r in rs]),
            "sweep_share": median([r["sweep_share"] for r in rs]),
            "exit_code": max((r["exit_code"] for r in rs), key=lambda c: c != 0),
            "rounds": rs,
        }
    if not demos:
        return out
    seconds, inputs = median([r["seconds"] for r in demos]), median([r["seconds"] for r in bases])
    out["demo"] = {
        "command": "python -m sae_steer_checks demo --out OUT --force -q",
        "baseline_command": f"python -c '{_INPUTS_ONLY}'",
        "repeats": len(demos),
        "seconds": seconds,
        "inputs_seconds": inputs,
        "checks_ratio": ratio(seconds, inputs),
        "exit_code": max((r["exit_code"] for r in (*demos, *bases)), key=lambda c: c != 0),
        "limit_seconds": demo_limit,
        "cpu_count": os.cpu_count(),
        "rounds": demos,
        "baseline_rounds": bases,
    }
    return out


if __name__ == "__main__":
    print(json.dumps(whole_run(**json.loads(sys.argv[1]))))
