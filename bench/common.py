"""Shared pieces of the benchmark: timing, peak-memory sampling, workers and the environment record."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = (
    "sae-steer-checks",
    "torch",
    "numpy",
    "scipy",
    "scikit-learn",
    "transformers",
    "steering-vectors",
    "sae-lens",
    "psutil",
)


def versions() -> dict[str, str | None]:
    """Installed version of every library the figures depend on (None when missing)."""
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict[str, Any]:
    """Machine, thread counts, BLAS back ends and versions, recorded beside the figures."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": versions(),
    }
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        info["load_average"] = None
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info()
        ]
    except ImportError:
        info["blas"] = None
    return info


def timed(fn: Callable[[], Any], device: str = "cpu") -> tuple[float, Any]:
    """Run ``fn`` once and return ``(seconds, result)``, synchronising CUDA around it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def rss() -> int:
    """Resident set size of this process in bytes (psutil, else ``/proc/self/statm``)."""
    try:
        import psutil
    except ImportError:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process().memory_info().rss)


@contextmanager
def peak_rss(interval: float = 0.002) -> Iterator[dict[str, int]]:
    """Sample this process's RSS on a thread; yields a dict that gets ``peak_delta`` bytes on exit.

    The delta is taken against the RSS on entry, so run the measured call in a fresh process
    whose inputs are already built (see :func:`run_worker`); freed pages count only while held.
    """
    record = {"start": rss(), "peak": 0, "peak_delta": 0}
    record["peak"] = record["start"]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            record["peak"] = max(record["peak"], rss())
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        stop.set()
        thread.join()
        record["peak"] = max(record["peak"], rss())
        record["peak_delta"] = record["peak"] - record["start"]


def run_worker(module: str, args: dict[str, Any], timeout: float = 1800.0) -> dict[str, Any]:
    """Run ``bench/<module>.py`` as a fresh process with ``args`` (JSON); return its JSON answer.

    A fresh process per measurement keeps the memory of one side out of the other's figure.
    """
    cmd = [sys.executable, str(ROOT / "bench" / f"{module}.py"), json.dumps(args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {module} {args} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    """The median of ``values`` (the figure of every repeated measurement)."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def check_repeats(repeats: int) -> int:
    """``repeats`` itself, or ValueError when it is below 3 (a median needs at least three runs)."""
    if repeats < 3:
        raise ValueError(f"repeats must be at least 3 for a median, got {repeats}")
    return repeats


def ratio(ours: float, baseline: float) -> float | None:
    """``ours / baseline`` (None when the baseline is zero)."""
    return ours / baseline if baseline > 0 else None
