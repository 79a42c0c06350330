"""Benchmark suite: every figure is a ratio against a baseline measured in the same run.

    python bench/run.py --out bench.json            # full run (CPU, and CUDA when present)
    python bench/run.py --out bench.json --quick    # small sizes, seconds; no model, no test tiers

Writes ``bench.json`` (sorted keys) with the raw seconds and bytes beside each ratio, the device,
dtype, thread counts and library versions, and prints a Markdown table of the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_decompose
import bench_pairs
from common import environment

FULL = {
    "pairs": {"n": 16384, "d": 2304, "block_size": 2048, "large_n": 65536},
    "decompose": {
        "n_atoms": 16384,
        "d": 2304,
        "n_vectors": 256,
        "k": 64,
        "n_planted": 48,
        "atoms_per_step": 8,
        "scaling": (64, 128, 256),
    },
}
QUICK = {
    "pairs": {"n": 2048, "d": 128, "block_size": 256, "large_n": 4096},
    "decompose": {
        "n_atoms": 1024,
        "d": 64,
        "n_vectors": 16,
        "k": 8,
        "n_planted": 4,
        "atoms_per_step": 2,
        "scaling": (4, 8, 16),
    },
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench.json"), help="where to write the JSON figures")
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes only (seconds); implies --skip-model and --skip-tiers",
    )
    p.add_argument("--skip-model", action="store_true", help="skip the Gemma 3 270M extraction figures")
    p.add_argument("--skip-tiers", action="store_true", help="skip timing the test tiers")
    p.add_argument("--skip-large", action="store_true", help="skip the 65536-row pair search")
    p.add_argument(
        "--only",
        choices=("pairs", "decompose", "extract", "tiers"),
        action="append",
        help="run only these parts (repeatable)",
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the pair search (best kept)")
    p.add_argument("--model-repeats", type=int, default=1, help="repetitions of each extraction method")
    p.add_argument("--seed", type=int, default=0)
    return p


def _devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


def _fmt_mb(x: float | None) -> str:
    return "-" if x is None else f"{x / 2**20:.0f} MiB"


def _fmt_x(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}x"


def markdown(result: dict[str, Any]) -> str:
    """A short Markdown table of the figures in ``result``."""
    rows = ["| figure | ours | baseline | ratio | target |", "|---|---|---|---|---|"]
    for key, r in result.get("pairs", {}).items():
        rows.append(
            f"| pair search {r['shape'][0]}x{r['shape'][1]} ({key}), time | "
            f"{_fmt_s(r['seconds']['ours'])} | {_fmt_s(r['seconds']['baseline'])} | "
            f"{_fmt_x(r['time_ratio'])} | <= 0.6x |"
        )
        rows.append(
            f"| pair search ({key}), peak memory | {_fmt_mb(r['peak_bytes']['ours'])} | "
            f"{_fmt_mb(r['peak_bytes']['baseline'])} | {_fmt_x(r['memory_ratio'], 3)} | <= 0.25x |"
        )
        if "large" in r:
            big = r["large"]
            rows.append(
                f"| pair search {big['shape'][0]}x{big['shape'][1]} ({key}) | "
                f"{_fmt_s(big['seconds'])}, {_fmt_mb(big['peak_bytes'])} peak | dense: "
                f"{_fmt_mb(big['dense_result_bytes'])} result | - | completes, bounded |"
            )
    for key, r in result.get("decompose", {}).items():
        base = r["baseline"]
        for name, m in r["methods"].items():
            rows.append(
                f"| decomposition {r['n_vectors']} x {r['shape'][0]}x{r['shape'][1]}, k={r['k']} "
                f"({key}), {name} | {_fmt_s(m['seconds'])}, err {m['rel_error']:.4f} | "
                f"{_fmt_s(base['seconds'])}, err {base['rel_error']:.4f} | "
                f"{_fmt_x(m['speedup'], 1)} faster, err {_fmt_x(m['error_ratio'], 3)} | "
                f">= 10x, err <= 1.05x |"
            )
        spread = r["scaling_spread"]
        sizes = ", ".join(f"{n}: {_fmt_s(s['seconds'])}" for n, s in r["scaling"].items())
        rows.append(
            f"| decomposition time vs vectors ({key}) | {sizes} | - | "
            f"per-vector spread {_fmt_x(spread)} | linear |"
        )
    ext = result.get("extract")
    if ext:
        for dtype in ("float32", "bfloat16"):
            for name, m in ext[dtype]["methods"].items():
                rows.append(
                    f"| extraction {ext['n_pairs']} pairs, layer {ext['layer']} ({dtype}), {name} | "
                    f"{_fmt_s(m['seconds'])} | - | "
                    f"{_fmt_x(m['speedup_vs_steering_vectors'], 1)} vs steering-vectors, "
                    f"vector diff {m['vector_rel_diff']:.1e} | ours >= 8x |"
                )
    for name, t in result.get("tiers", {}).items():
        rows.append(
            f"| test tier {name} (`{t['command']}`) | {_fmt_s(t['seconds'])} (exit {t['exit_code']}) "
            f"| - | - | < {t['budget_seconds']:.0f} s |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected parts, write the JSON and print the table; returns the exit code."""
    args = build_parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    parts = set(args.only or ("pairs", "decompose", "extract", "tiers"))
    if args.quick or args.skip_model:
        parts.discard("extract")
    if args.quick or args.skip_tiers:
        parts.discard("tiers")
    result: dict[str, Any] = {"quick": args.quick, "environment": environment()}
    start = time.perf_counter()
    if "pairs" in parts:
        p = dict(sizes["pairs"])
        large = None if args.skip_large else p.pop("large_n")
        p.pop("large_n", None)
        result["pairs"] = {
            dev: bench_pairs.run(
                **p,
                rounds=max(1, args.rounds),
                large_n=large if dev == "cpu" else None,
                device=dev,
                seed=args.seed,
            )
            for dev in _devices()
        }
        print(f"pairs done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    if "decompose" in parts:
        result["decompose"] = {
            dev: bench_decompose.run(**sizes["decompose"], device=dev, seed=args.seed) for dev in _devices()
        }
        print(f"decompose done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    if "extract" in parts:
        import bench_extract

        result["extract"] = bench_extract.run(n_pairs=64, layer=9, batch_size=16, repeats=args.model_repeats)
        print(f"extract done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    if "tiers" in parts:
        import bench_tiers

        result["tiers"] = bench_tiers.run()
    result["total_seconds"] = time.perf_counter() - start
    result["table"] = markdown(result)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(result["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
