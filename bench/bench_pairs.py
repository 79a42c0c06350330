"""Pair search: ``find_aligned_pairs`` against a dense ``W @ W.T`` plus thresholding, same dtype.

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
from common import peak_rss, ratio, run_worker, timed

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
    *, n: int, d: int, block_size: int, rounds: int, large_n: int | None, device: str, seed: int = 0
) -> dict[str, Any]:
    """Interleaved rounds of ours and the dense baseline; the best time and the peak of each side."""
    baseline = "numpy" if device == "cpu" else "torch"
    common = {"n": n, "d": d, "seed": seed, "device": device, "block_size": block_size}
    ours, base = [], []
    for _ in range(rounds):
        ours.append(run_worker("bench_pairs", {**common, "impl": "ours"}))
        base.append(run_worker("bench_pairs", {**common, "impl": baseline}))
    t_ours = min(r["seconds"] for r in ours)
    t_base = min(r["seconds"] for r in base)
    m_ours = max(r["peak_bytes"] for r in ours)
    m_base = max(r["peak_bytes"] for r in base)
    same = all(r["found"] == base[0]["found"] for r in ours + base)
    out: dict[str, Any] = {
        "shape": [n, d],
        "dtype": "float32",
        "device": device,
        "threshold": THRESHOLD,
        "block_size": block_size,
        "baseline": f"dense {baseline} W @ W.T, then threshold > S with i < j",
        "seconds": {
            "ours": t_ours,
            "baseline": t_base,
            "ours_all": [r["seconds"] for r in ours],
            "baseline_all": [r["seconds"] for r in base],
        },
        "peak_bytes": {"ours": m_ours, "baseline": m_base, "ours_tile_bytes": 4 * block_size * block_size},
        "cpu_seconds": {
            "ours": min(r["cpu_seconds"] for r in ours),
            "baseline": min(r["cpu_seconds"] for r in base),
        },
        "time_ratio": ratio(t_ours, t_base),
        "cpu_time_ratio": ratio(min(r["cpu_seconds"] for r in ours), min(r["cpu_seconds"] for r in base)),
        "memory_ratio": ratio(m_ours, m_base),
        "n_pairs": len(base[0]["found"]),
        "same_pairs": same,
        "planted_found": all(r["correct"] for r in ours + base),
        "targets": {"time_ratio_max": 0.6, "memory_ratio_max": 0.25},
    }
    out["met"] = bool(
        same
        and out["planted_found"]
        and out["time_ratio"] is not None
        and out["time_ratio"] <= 0.6
        and out["memory_ratio"] is not None
        and out["memory_ratio"] <= 0.25
    )
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
