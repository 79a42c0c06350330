"""Wall time of the whole ``run`` command against ``extract`` on the same items, its profile, and the demo.

    python bench/bench_run.py '{"dataset": "builtin:sentiment"}'    # one run, in this process: JSON
    python bench/bench_run.py '{"dataset": "builtin:sentiment", "command": "extract"}'    # its baseline

Each measurement runs in a fresh process (:func:`common.run_worker`). The worker calls
``sae_steer_checks.cli.main`` in-process under cProfile, with each phase of :data:`PHASES` wrapped by a
timer, so the share of each phase (the sweep: every vector and random direction times every multiplier)
is read against the total of the same call; the baseline is ``extract`` of the same items, also in a
fresh process of the same round. The model's first load assembles a cache: run once before measuring
(the figures are warm).
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


# where a whole run spends its time: module, function, phase name (each wrapped by a timer in the worker)
PHASES = (
    ("sae_steer_checks.cli.inputs", "load_checked_model", "model load"),
    ("sae_steer_checks.sae.loading", "load_sae", "SAE load"),
    ("sae_steer_checks.cli.inputs", "extract_vector", "CAA extraction"),
    ("sae_steer_checks.cli.inputs", "read_text_activations", "ordinary text activations"),
    ("sae_steer_checks.cli.inputs", "learn_vector", "learning in the SAE basis"),
    ("sae_steer_checks.diagnostics.run", "retention_check", "behaviour sweep and retention"),
    ("sae_steer_checks.diagnostics.run", "run_checks", "every check (sweep included)"),
    ("sae_steer_checks.report.write", "write_report", "report"),
)


def _phase_timers(spent: dict[str, float]) -> list[Any]:
    """Patches that add each phase's seconds to ``spent`` (a function missing from its module is skipped)."""
    import importlib

    patches = []
    for module_name, name, phase in PHASES:
        module = importlib.import_module(module_name)
        inner = getattr(module, name, None)
        if inner is None:
            continue

        def timed_call(*args: Any, _inner: Any = inner, _phase: str = phase, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                spent[_phase] = spent.get(_phase, 0.0) + time.perf_counter() - start

        patches.append(mock.patch.object(module, name, timed_call))
    return patches


def _top_functions(profile: Any, total: float, n: int = 15) -> list[dict[str, Any]]:
    """The project's functions with the most cumulative time in ``profile`` (a cProfile.Profile)."""
    import pstats

    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, _nc, _tt, cumulative, _callers) in stats.items():
        if "sae_steer_checks" in filename:
            where = filename[filename.index("sae_steer_checks") :]
            rows.append(
                {
                    "function": f"{where}:{line}({name})",
                    "seconds": cumulative,
                    "share": ratio(cumulative, total),
                }
            )
    rows.sort(key=lambda r: -r["seconds"])
    return rows[:n]


def whole_run(
    dataset: str, model: str = "gemma3-270m", layer: int = 10, command: str = "run"
) -> dict[str, Any]:
    """One ``run`` (or ``extract`` of the items ``run`` extracts from) on ``dataset``, in this process.

    ``run`` uses the bundled SAE and the defaults (``answer`` positions, the retention check's random
    directions, default multipliers) and reports the seconds of each phase and the project's costliest
    functions (cProfile); ``extract`` is the baseline: the same model and items, ``--split train``.
    """
    import cProfile
    from contextlib import ExitStack

    from sae_steer_checks.cli import main
    from sae_steer_checks.sae.loading import bundled_sae_dir

    spent: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as out:
        argv = [command, "--model", model, "--layer", str(layer), "--dataset", dataset]
        if command == "run":
            argv += ["--sae", str(bundled_sae_dir())]
        else:
            argv += ["--split", "train"]
        argv += ["--out", out, "--force", "-q"]
        load_before = _load()
        profile = cProfile.Profile()
        start = time.perf_counter()
        with ExitStack() as stack:
            if command == "run":
                for patch in _phase_timers(spent):
                    stack.enter_context(patch)
            profile.enable()
            code = main(argv)
            profile.disable()
        total = time.perf_counter() - start
        report = Path(out) / "report.json"
        facts: dict[str, Any] = {}
        if command == "run" and report.exists():
            data = json.loads(report.read_text())
            null = (data.get("retention") or {}).get("null") or {}
            facts = {
                "random_directions": null.get("n"),
                "steer_positions": data["provenance"].get("behaviour", {}).get("steer_positions"),
                "multipliers": (data.get("retention") or {}).get("multipliers"),
            }
    sweep = spent.get("behaviour sweep and retention", 0.0)
    return {
        "command": "python -m sae_steer_checks " + " ".join(argv).replace(out, "OUT"),
        "exit_code": code,
        "seconds": total,
        "sweep_seconds": sweep,
        "sweep_share": ratio(sweep, total),
        "phases": {k: {"seconds": v, "share": ratio(v, total)} for k, v in sorted(spent.items())},
        "profile": _top_functions(profile, total) if command == "run" else [],
        "load_average_before": load_before,
        **facts,
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
    extracts: dict[str, list[dict[str, Any]]] = {d: [] for d in datasets}
    demos: list[dict[str, Any]] = []
    bases: list[dict[str, Any]] = []
    for i in range(max(run_repeats, demo_repeats)):
        if i < run_repeats:
            for d in datasets:
                runs[d].append(run_worker("bench_run", {"dataset": d}, timeout=3600.0))
                extracts[d].append(
                    run_worker("bench_run", {"dataset": d, "command": "extract"}, timeout=3600.0)
                )
        if i < demo_repeats:
            demos.append(demo())
            bases.append(demo_inputs_only())
    out: dict[str, Any] = {"run": {}} if datasets else {}
    for d, rs in runs.items():
        seconds, extract = median([r["seconds"] for r in rs]), median([r["seconds"] for r in extracts[d]])
        out["run"][d] = {
            "command": rs[0]["command"],
            "baseline_command": extracts[d][0]["command"],
            "repeats": len(rs),
            "seconds": seconds,
            "extract_seconds": extract,
            "run_over_extract": ratio(seconds, extract),
            "random_directions": rs[0].get("random_directions"),
            "steer_positions": rs[0].get("steer_positions"),
            "phases": rs[0]["phases"],
            "profile": rs[0]["profile"],
            "sweep_seconds": median([r["sweep_seconds"] for r in rs]),
            "sweep_share": median([r["sweep_share"] for r in rs]),
            "exit_code": max((r["exit_code"] for r in (*rs, *extracts[d])), key=lambda c: c != 0),
            "rounds": rs,
            "baseline_rounds": extracts[d],
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
