"""Benchmark suite: every figure is a ratio against a baseline measured in the same run.

    python bench/run.py --out bench.json --check    # full run (CPU, and CUDA when present); exit 1 on a miss
    python bench/run.py --out bench.json --quick    # small sizes, seconds; no model, no test tiers
    python bench/run.py --only run,sweep,demo --out bench.json    # cost of the checks on Gemma 3 270M

Every time is the median of ``--repeats`` (at least 3) interleaved runs. Writes ``bench.json`` (sorted keys)
with the raw seconds and bytes beside each ratio, the device, dtype, thread counts and library versions, and
every target of ``TARGETS`` with its value and whether it was met; prints a Markdown table of the figures.
"""

from __future__ import annotations

import argparse
import json
import operator
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Target:
    """One target: a figure read from one part's result, compared with a bound."""

    figure: str
    """What is measured, as the table names it."""
    read: Callable[[dict[str, Any]], Any]
    """The figure's value from the part's result (one device, or the whole part for extract/tiers)."""
    op: str
    """"<=", ">=" or "==" (value op bound)."""
    bound: Any
    """The bound the value must meet."""


_OPS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq}

# The one table of targets: part -> targets judged on each device's result of that part (pairs,
# decompose) or on the part's whole result (extract, in float32; tiers, per tier).
TARGETS: dict[str, tuple[Target, ...]] = {
    "pairs": (
        Target("time vs the fastest dense Gram", lambda r: r["time_ratio"], "<=", 0.6),
        Target("peak memory vs the leanest dense Gram", lambda r: r["memory_ratio"], "<=", 0.25),
        Target(
            "every side finds exactly the planted pairs",
            lambda r: r["same_pairs"] and r["planted_found"],
            "==",
            True,
        ),
        Target(
            "the large search finds the planted pairs",
            lambda r: r.get("large", {}).get("planted_found", True),
            "==",
            True,
        ),
    ),
    "decompose": (
        Target("exact OMP speed-up vs scikit-learn", lambda r: r["speedup"], ">=", 10.0),
        Target("exact OMP error vs scikit-learn", lambda r: r["error_ratio"], "<=", 1.05),
    ),
    "extract": (
        Target(
            "extraction speed-up vs steering-vectors (float32)", lambda r: r["float32"]["speedup"], ">=", 8.0
        ),
        Target(
            "extracted vector vs steering-vectors, relative difference (float32)",
            lambda r: r["float32"]["methods"]["ours"]["vector_rel_diff"],
            "<=",
            1e-4,
        ),
    ),
    "tiers": (
        Target("fast tier seconds", lambda r: r["fast"]["seconds"], "<=", 120.0),
        Target("fast tier exit code", lambda r: r["fast"]["exit_code"], "==", 0),
        Target("realmodel tier seconds", lambda r: r["realmodel"]["seconds"], "<=", 600.0),
        Target("realmodel tier exit code", lambda r: r["realmodel"]["exit_code"], "==", 0),
    ),
    "sweep": (
        Target(
            "batched sweep speed-up vs one plain forward per (vector, multiplier, prompt), same positions",
            lambda r: r["speedup"],
            ">=",
            20.0,
        ),
        Target(
            "batched sweep score difference vs plain forwards", lambda r: r["max_abs_score_diff"], "<=", 1e-3
        ),
    ),
    "run": (
        Target("run exit code (every set)", lambda r: max(abs(s["exit_code"]) for s in r.values()), "==", 0),
        Target(
            "whole run / extract of the same items (largest over the sets)",
            lambda r: max(s["run_over_extract"] for s in r.values()),
            "<=",
            4.0,
        ),
        Target(
            "random directions in the run's steering null (fewest over the sets)",
            lambda r: min(s["random_directions"] or 0 for s in r.values()),
            ">=",
            39,
        ),
    ),
    # the demo against its inputs alone (imports, model, text and CAA reads) in the same run: what the
    # checks, their nulls and the reports add; its absolute seconds are reported beside, not targeted
    "demo": (
        Target("demo / its inputs alone (checks, nulls, reports)", lambda r: r["checks_ratio"], "<=", 1.3),
        Target("demo exit code", lambda r: r["exit_code"], "==", 0),
    ),
}
_PER_DEVICE = ("pairs", "decompose")
PARTS = ("pairs", "decompose", "extract", "tiers", "sweep", "run", "demo")


def judge(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of ``TARGETS`` whose part ran: figure, device, value, bound and ``met``.

    A figure that cannot be read (missing, or None for a zero baseline) counts as missed.
    """
    rows = []
    for part, targets in TARGETS.items():
        if part not in result:
            continue
        scopes = result[part].items() if part in _PER_DEVICE else [(None, result[part])]
        for device, r in scopes:
            for t in targets:
                try:
                    value = t.read(r)
                except (KeyError, TypeError):
                    value = None
                met = value is not None and bool(_OPS[t.op](value, t.bound))
                rows.append(
                    {
                        "part": part,
                        "figure": t.figure,
                        "device": device,
                        "value": value,
                        "op": t.op,
                        "bound": t.bound,
                        "met": met,
                    }
                )
    return rows


def _parts(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in PARTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown parts {bad or text!r} (choose from {', '.join(PARTS)})")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench.json"), help="where to write the JSON figures")
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes only (seconds); implies --skip-model and --skip-tiers",
    )
    p.add_argument(
        "--skip-model",
        action="store_true",
        help="skip the Gemma 3 270M figures (extract, sweep, run, demo)",
    )
    p.add_argument("--skip-tiers", action="store_true", help="skip timing the test tiers")
    p.add_argument("--skip-large", action="store_true", help="skip the 65536-row pair search")
    p.add_argument(
        "--only",
        type=_parts,
        action="append",
        help=f"run only these parts (comma-separated, repeatable): {', '.join(PARTS)}",
    )
    p.add_argument(
        "--repeats", type=int, default=3, help="interleaved repeats of every measurement (median kept; >= 3)"
    )
    p.add_argument("--check", action="store_true", help="exit 1 when a target of TARGETS is missed")
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
    """A short Markdown table of the figures in ``result``, then one of the targets."""
    rows = ["| figure | ours | baseline | ratio |", "|---|---|---|---|"]
    for key, r in result.get("pairs", {}).items():
        sec, peak = r["seconds"], r["peak_bytes"]
        for b in r["baselines"]:
            rows.append(
                f"| pair search {r['shape'][0]}x{r['shape'][1]} ({key}), time vs dense {b} | "
                f"{_fmt_s(sec['ours'])} | {_fmt_s(sec[b])} | {_fmt_x(r['time_ratios'][b])} |"
            )
            rows.append(
                f"| pair search ({key}), peak memory vs dense {b} | {_fmt_mb(peak['ours'])} | "
                f"{_fmt_mb(peak[b])} | {_fmt_x(r['memory_ratios'][b], 3)} |"
            )
        if "large" in r:
            big = r["large"]
            rows.append(
                f"| pair search {big['shape'][0]}x{big['shape'][1]} ({key}) | "
                f"{_fmt_s(big['seconds'])}, {_fmt_mb(big['peak_bytes'])} peak | dense: "
                f"{_fmt_mb(big['dense_result_bytes'])} result | - |"
            )
    for key, r in result.get("decompose", {}).items():
        base = r["baseline"]
        for name, m in r["methods"].items():
            rows.append(
                f"| decomposition {r['n_vectors']} x {r['shape'][0]}x{r['shape'][1]}, k={r['k']} "
                f"({key}), {name} | {_fmt_s(m['seconds'])}, err {m['rel_error']:.4f} | "
                f"{_fmt_s(base['seconds'])}, err {base['rel_error']:.4f} | "
                f"{_fmt_x(m['speedup'], 1)} faster, err {_fmt_x(m['error_ratio'], 3)} |"
            )
        spread = r["scaling_spread"]
        sizes = ", ".join(f"{n}: {_fmt_s(s['seconds'])}" for n, s in r["scaling"].items())
        rows.append(
            f"| decomposition time vs vectors ({key}) | {sizes} | - | per-vector spread {_fmt_x(spread)} |"
        )
    ext = result.get("extract")
    if ext:
        for dtype in ("float32", "bfloat16"):
            for name, m in ext[dtype]["methods"].items():
                rows.append(
                    f"| extraction {ext['n_pairs']} pairs, layer {ext['layer']} ({dtype}), {name} | "
                    f"{_fmt_s(m['seconds'])} | - | "
                    f"{_fmt_x(m['speedup_vs_steering_vectors'], 1)} vs steering-vectors, "
                    f"vector diff {m['vector_rel_diff']:.1e} |"
                )
    for name, t in result.get("tiers", {}).items():
        rows.append(
            f"| test tier {name} (`{t['command']}`) | {_fmt_s(t['seconds'])} "
            f"(exit {t['exit_code']}) | - | - |"
        )
    sweep = result.get("sweep")
    if sweep:
        for spec, r in sweep["sets"].items():
            sec = r["seconds"]
            extrapolated = (
                f", extrapolated from {r['baseline_combos_timed']}" if r["baseline_extrapolated"] else ""
            )
            rows.append(
                f"| sweep {sweep['model']} layer {sweep['layer']}, {spec} ({r['n_items']} items, "
                f"{r['n_combos']} vector x multiplier), batched vs plain forwards{extrapolated} | "
                f"{_fmt_s(sec['ours'])} | {_fmt_s(sec['plain'])} | {_fmt_x(r['speedup'], 1)} faster, "
                f"score diff {r['max_abs_score_diff']:.1e} |"
            )
    for spec, r in result.get("run", {}).items():
        rows.append(
            f"| whole run {spec} ({r['repeats']} round; {r['random_directions']} random directions, "
            f"{r['steer_positions']} positions) | {_fmt_s(r['seconds'])} (exit {r['exit_code']}) | "
            f"extract of the same items {_fmt_s(r['extract_seconds'])} | {_fmt_x(r['run_over_extract'], 2)}; "
            f"sweep {_fmt_s(r['sweep_seconds'])} = {r['sweep_share']:.0%} of it |"
        )
        for phase, p in sorted(r["phases"].items(), key=lambda kv: -kv[1]["seconds"]):
            rows.append(f"| - {phase} | {_fmt_s(p['seconds'])} | - | {p['share']:.0%} of the run |")
    demo = result.get("demo")
    if demo:
        load = demo["rounds"][0]["load_average_before"]
        rows.append(
            f"| demo warm, {demo['cpu_count']} cores, load {load[0] if load else '-'} "
            f"(for reference: {demo['limit_seconds']:.0f} s) | {_fmt_s(demo['seconds'])} "
            f"(exit {demo['exit_code']}) | its inputs alone {_fmt_s(demo['inputs_seconds'])} | "
            f"{demo['checks_ratio']:.2f}x |"
        )
    rows += ["", "| target | device | value | bound | met |", "|---|---|---|---|---|"]
    for t in result.get("targets", []):
        value = t["value"]
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        rows.append(
            f"| {t['part']}: {t['figure']} | {t['device'] or '-'} | {shown} | {t['op']} {t['bound']} | "
            f"{'yes' if t['met'] else '**no**'} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected parts, write the JSON and print the table; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < 3:
        parser.error(f"--repeats must be at least 3 (a median of interleaved runs), got {args.repeats}")
    sizes = QUICK if args.quick else FULL
    parts = {n for names in args.only for n in names} if args.only else set(PARTS)
    if args.quick:
        # the sweep runs on a tiny random model instead; the whole run and the demo need Gemma
        parts -= {"extract", "run", "demo"}
    elif args.skip_model:
        parts -= {"extract", "sweep", "run", "demo"}
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
                repeats=args.repeats,
                large_n=large if dev == "cpu" else None,
                device=dev,
                seed=args.seed,
            )
            for dev in _devices()
        }
        print(f"pairs done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    if "decompose" in parts:
        result["decompose"] = {
            dev: bench_decompose.run(**sizes["decompose"], device=dev, repeats=args.repeats, seed=args.seed)
            for dev in _devices()
        }
        print(f"decompose done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    if "extract" in parts:
        import bench_extract

        result["extract"] = bench_extract.run(n_pairs=64, layer=9, batch_size=16, repeats=args.repeats)
        print(f"extract done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    if "sweep" in parts:
        import bench_sweep

        sweep_args: dict[str, Any] = (
            {"model": "tiny", "layer": 2, "max_items": 10}
            if args.quick
            else {"model": "gemma3-270m", "baseline_combos": 5}
        )
        result["sweep"] = bench_sweep.run(**sweep_args, repeats=args.repeats, seed=args.seed)
        print(f"sweep done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    if parts & {"run", "demo"}:
        import bench_run

        # one round of the whole run per set (minutes each; the JSON says so), the demo's median of repeats
        result.update(
            bench_run.run(
                datasets=bench_run.DATASETS if "run" in parts else (),
                run_repeats=1,
                demo_repeats=args.repeats if "demo" in parts else 0,
            )
        )
        print(f"run/demo done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    if "tiers" in parts:
        import bench_tiers

        result["tiers"] = bench_tiers.run(repeats=args.repeats)
    result["total_seconds"] = time.perf_counter() - start
    result["targets"] = judge(result)
    result["table"] = markdown(result)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(result["table"])
    missed = [f"{t['part']}: {t['figure']} ({t['device'] or '-'})" for t in result["targets"] if not t["met"]]
    if args.check and missed:
        print("targets missed: " + "; ".join(missed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
