"""Pair search: ``find_aligned_pairs`` against dense ``W @ W.T`` Grams (numpy and torch) plus thresholding.

Every measurement runs in a fresh process (``python bench/bench_pairs.py '<json>'``) that builds
the dictionary first, then times one search while a thread samples its RSS, so the peak memory of
a side is the growth during its own call. The dictionary has random unit rows with a few planted
anti-aligned pairs well below the threshold (random pairs in 2304 dimensions sit near 0 +- 0.02),
so both sides must return exactly the planted pairs.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_repeats, median, peak_rss, ratio, run_worker, timed

THRESHOLD = -0.5
N_PLANTED = 8


def planted_dictionary(n: int, d: int, seed: int) -> tuple[torch.Tensor, set[tuple[int, int]]]:
    """Unit-row ``[n, d]`` float32 dictionary built in place, and its planted pairs ``(i < j)``."""
    gen = torch.Generator().manual_seed(seed)
    W = torch.empty(n, d)
    for s in range(0, n, 4096):
        chunk = W[s : s + 4096]
        chunk.normal_(generator=gen)
        chunk.div_(chunk.norm(dim=1, keepdim=True))
    ids = torch.randperm(n, generator=gen)[: 2 * N_PLANTED].view(N_PLANTED, 2)
    planted = set()
    for k, (a, b) in enumerate(ids.tolist()):
        rho = 0.6 + 0.3 * k / max(1, N_PLANTED - 1)
        other = W[b] - (W[b] @ W[a]) * W[a]
        W[b] = -rho * W[a] + math.sqrt(1 - rho**2) * other / other.norm()
        planted.add((min(a, b), max(a, b)))
    return W, planted


def _dense_numpy(W: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    S = W @ W.T
    i, j = np.nonzero(threshold > S)
    keep = i < j
    return set(zip(i[keep].tolist(), j[keep].tolist(), strict=True))


def _dense_torch(W: torch.Tensor, threshold: float) -> set[tuple[int, int]]:
    S = W @ W.T
    ij = (threshold > S).triu(diagonal=1).nonzero().cpu()
    return set(zip(ij[:, 0].tolist(), ij[:, 1].tolist(), strict=True))


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """One timed search in this process: ``impl`` is "ours", "numpy" or "torch" (dense)."""
    from sae_steer_checks.diagnostics.pairs import find_aligned_pairs

    torch.set_num_threads(args.get("threads") or torch.get_num_threads())
    device = args.get("device", "cpu")
    W, planted = planted_dictionary(args["n"], args["d"], args["seed"])
    impl = args["impl"]
    if impl == "numpy":
        Wn = W.numpy()
        run = lambda: _dense_numpy(Wn, THRESHOLD)  # noqa: E731
    else:
        W = W.to(device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if device.startswith("cuda") else 0
        if impl == "torch":
            run = lambda: _dense_torch(W, THRESHOLD)  # noqa: E731
        else:
            bs = args["block_size"]
            run = lambda: {p[:2] for p in find_aligned_pairs(W, THRESHOLD, block_size=bs).pairs}  # noqa: E731
    # A small search first, so library loading and first-call set-up stay out of the figures.
    small = W[:256].numpy() if impl == "numpy" else W[:256]
    if impl == "numpy":
        _dense_numpy(small, THRESHOLD)
    else:
        _dense_torch(small, THRESHOLD)
        find_aligned_pairs(small, THRESHOLD, block_size=64)
    cpu_start = time.process_time()
    with peak_rss() as mem:
        seconds, found = timed(run, device)
    cpu_seconds = time.process_time() - cpu_start
    peak = mem["peak_delta"]
    if impl != "numpy" and device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() - base
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_bytes": int(peak),
        "found": sorted(found),
        "correct": found == planted,
    }


def run(
    *, n: int, d: int, block_size: int, repeats: int, large_n: int | None, device: str, seed: int = 0
) -> dict[str, Any]:
    """Interleaved repeats of ours and every dense baseline; median times and the peak of each side.

    On the CPU the baselines are a dense numpy and a dense torch Gram, on CUDA the torch one; the
    ratios are taken against the strongest baseline (the fastest median, the smallest peak).
    """
    check_repeats(repeats)
    baselines = ["numpy", "torch"] if device == "cpu" else ["torch"]
    common = {"n": n, "d": d, "seed": seed, "device": device, "block_size": block_size}
    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in ["ours", *baselines]}
    for _ in range(repeats):
        for impl in runs:
            runs[impl].append(run_worker("bench_pairs", {**common, "impl": impl}))
    seconds = {impl: median([r["seconds"] for r in rs]) for impl, rs in runs.items()}
    cpu_seconds = {impl: median([r["cpu_seconds"] for r in rs]) for impl, rs in runs.items()}
    peaks = {impl: max(r["peak_bytes"] for r in rs) for impl, rs in runs.items()}
    fastest = min(baselines, key=lambda b: seconds[b])
    leanest = min(baselines, key=lambda b: peaks[b])
    every = [r for rs in runs.values() for r in rs]
    first = runs[baselines[0]][0]["found"]
    out: dict[str, Any] = {
        "shape": [n, d],
        "dtype": "float32",
        "device": device,
        "threshold": THRESHOLD,
        "block_size": block_size,
        "repeats": repeats,
        "baselines": {b: f"dense {b} W @ W.T, then threshold > S with i < j" for b in baselines},
        "seconds": {**seconds, "all": {impl: [r["seconds"] for r in rs] for impl, rs in runs.items()}},
        "cpu_seconds": cpu_seconds,
        "peak_bytes": {**peaks, "ours_tile_bytes": 4 * block_size * block_size},
        "time_baseline": fastest,
        "memory_baseline": leanest,
        "time_ratio": ratio(seconds["ours"], seconds[fastest]),
        "time_ratios": {b: ratio(seconds["ours"], seconds[b]) for b in baselines},
        "cpu_time_ratio": ratio(cpu_seconds["ours"], cpu_seconds[fastest]),
        "memory_ratio": ratio(peaks["ours"], peaks[leanest]),
        "memory_ratios": {b: ratio(peaks["ours"], peaks[b]) for b in baselines},
        "n_pairs": len(first),
        "same_pairs": all(r["found"] == first for r in every),
        "planted_found": all(r["correct"] for r in every),
    }
    if large_n is not None:
        big = run_worker("bench_pairs", {**common, "n": large_n, "impl": "ours"})
        out["large"] = {
            "shape": [large_n, d],
            "block_size": block_size,
            "seconds": big["seconds"],
            "peak_bytes": big["peak_bytes"],
            "dictionary_bytes": 4 * large_n * d,
            "dense_result_bytes": 4 * large_n * large_n,
            "planted_found": big["correct"],
        }
    return out


if __name__ == "__main__":
    print(json.dumps(worker(json.loads(sys.argv[1]))))
