"""Calibration through the shipped code: false "problem" rates, power and interval coverage per verdict.

Every world runs ``run_checks`` with the default ``CheckConfig`` (only the seed varies), on the hard
worlds of ``tests/helpers/hard_worlds.py``: an imperfect dictionary, shared context, skewed and
heavy-tailed prompt noise, choice-swapped copies counted by item id, at widths 2k and 16k. Null worlds
have no behaviour feature (labels exchangeable); effect worlds plant 40 behaviour features (40%
leaning negative, present in every item). For each verdict the table gives the false "problem" rate
on null worlds (bound ``alpha + 3 sqrt(alpha (1 - alpha) / W)``) and the power on effect worlds; for
each interval the share of worlds where it holds the figure of the population CAA vector mu.
Retention is calibrated through ``retention_check()`` on per-item linear behaviour scores with skewed and
heavy-tailed slopes (``tests/property/test_calibration_retention.py``); so is the interval of a learned
vector's slope over v's (:func:`learned_rows`: how often it holds the true ratio, 0.5 or 1.5).

The ablation of the lost projections needs a behaviour that v steers, so it is judged on effect worlds
scored per item through the planted readout: its power where the behaviour reads only the
negative-leaning features' part of v (the lost span carries all of it), its false "problem" rate where
it reads only the positive-leaning part (orthogonal to the lost span: it carries none), on as many
samples of the same worlds (``--ablation-worlds``; the null rows of label-exchangeable worlds have no
behaviour, so the ablation is never run there).

The ablation's verdict is an absolute claim about the cost against ``ablation_cost``, so it is also
calibrated at that boundary (``--boundary-worlds``, :func:`boundary_rows`): ``ablation_check`` with the
default ``CheckConfig`` settings on hand-made dictionaries (d = 64, 256 features, 4 lost features v
leans along), with a readout mixing the lost-span part of v and the rest so the TRUE cost for that v is
exactly ``ablation_cost`` (false "problem" must stay near alpha) or a stated cost (0.45: power; 0.0: the
false "problem" rate far below the boundary), and per-item noise drawn from the sample's seed: a centred
lognormal (skewed) scalar along a fixed direction plus Student-t (3 d.o.f., heavy-tailed) noise, each
scaled by 0.5 / ||v|| against a slope of 1. v is taken to steer (retention's gate is calibrated on
its own). The rows give false "problem", false "fine" and how often the cost's interval holds the
true cost.

Usage: ``python bench/calibration.py`` (the full grid; ``--quick`` for the fast tier's sizes) writes
``calibration.json`` and prints the Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.calibration import VERDICTS, one_world, truths

ALPHA = 0.05


def bound(w: int, alpha: float = ALPHA) -> float:
    """The most a calibrated verdict may say "problem" on W null worlds: alpha + 3 Monte Carlo SE."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / w)


def run_case(
    width: str, n_items: int, w_null: int, w_effect: int, n_worlds: int, w_ablation: int = 0
) -> dict[str, Any]:
    """False "problem" rates, power and coverage for one (width, items) case.

    The W samples are spread over ``n_worlds`` planted worlds (dictionaries), in blocks: a verdict's
    error rate is over samples of data for a given SAE, and several dictionaries keep it from resting
    on one. Effect worlds are scored through the readout of the negative-leaning part of v (the
    ablation's power); ``w_ablation`` more samples read the positive-leaning part (its false "problem"
    rate, in ``rows["ablation_null"]``).
    """
    rows: dict[str, Any] = {}
    for effect, w in ((False, w_null), (True, w_effect)):
        if not w:
            continue
        results, covered, counted = [], dict.fromkeys(VERDICTS, 0), dict.fromkeys(VERDICTS, 0)
        truth_cache: dict[int, dict[str, float]] = {}
        for s in range(w):
            world_seed = 1000 + s * min(n_worlds, w) // w
            if world_seed not in truth_cache:
                truth_cache[world_seed] = truths(world_seed, width, effect)
            r = one_world(width, n_items, effect, s, world_seed, readout="negative" if effect else None)
            results.append(r)
            for key, iv in r["intervals"].items():
                t = truth_cache[world_seed].get(key)
                if iv is None or t is None:
                    continue
                counted[key] += 1
                covered[key] += int(iv[0] - 1e-9 <= t <= iv[1] + 1e-9)
        kind = "effect" if effect else "null"
        rows[kind] = {
            "worlds": w,
            "problem_rate": {
                k: sum(r["statuses"].get(k) == "problem" for r in results) / w for k in VERDICTS
            },
            "coverage": {k: (covered[k] / counted[k] if counted[k] else None) for k in VERDICTS},
            "coverage_n": counted,
        }
    if w_ablation:
        statuses = [
            one_world(width, n_items, True, s, 1000 + s * min(n_worlds, w_ablation) // w_ablation,
                      readout="positive")["statuses"]["ablation"]
            for s in range(w_ablation)
        ]  # fmt: skip
        rows["ablation_null"] = {
            "worlds": w_ablation,
            "problem_rate": {"ablation": statuses.count("problem") / w_ablation},
            "fine_rate": {"ablation": statuses.count("fine") / w_ablation},
        }
    return rows


BOUNDARY_D, BOUNDARY_D_SAE, BOUNDARY_K = 64, 256, 4


def _boundary_one(
    true_cost: float, n_items: int, sample: int, n_dict: int
) -> tuple[str, tuple[float, float] | None]:
    """Status and cost interval of one sample of a boundary world (see the module notes)."""
    import torch

    from sae_steer_checks.diagnostics.ablation import ablation_check, lost_component
    from sae_steer_checks.diagnostics.run import CheckConfig
    from sae_steer_checks.diagnostics.space import sae_space
    from tests.helpers.hand_saes import make_sae
    from tests.helpers.readouts import mixed_readout

    cfg = CheckConfig(seed=sample)
    g = torch.Generator().manual_seed(2000 + sample % n_dict)  # the dictionary and v: one of n_dict
    W = torch.nn.functional.normalize(torch.randn(BOUNDARY_D_SAE, BOUNDARY_D, generator=g), dim=1)
    space = sae_space(make_sae(W, architecture="relu"))
    lost = tuple(range(BOUNDARY_K))
    v = torch.randn(BOUNDARY_D, generator=g) - 1.5 * W[:BOUNDARY_K].sum(0)
    without, removed = lost_component(space, v, lost)
    w = mixed_readout(without, removed, true_cost)  # w . v = 1
    d0 = torch.nn.functional.normalize(torch.randn(BOUNDARY_D, generator=g, dtype=torch.float64), dim=0)
    gs = torch.Generator().manual_seed(10_000 + sample)  # item noise: the sample's own seed
    vn = float(v.norm())
    skew = torch.exp(torch.randn(n_items, 1, generator=gs, dtype=torch.float64)) - math.exp(0.5)
    chi = torch.randn(n_items, 3, generator=gs, dtype=torch.float64).square().sum(1, keepdim=True)
    t = torch.randn(n_items, BOUNDARY_D, generator=gs, dtype=torch.float64) / torch.sqrt(chi / 3.0)
    readouts = w[None] + 0.5 * (skew * d0[None] + t) / vn

    class Score:
        def score_batch(self, us: torch.Tensor) -> torch.Tensor:
            return us.double() @ readouts.T

        def __call__(self, u: torch.Tensor) -> torch.Tensor:
            return self.score_batch(u[None])[0]

    a = ablation_check(
        Score(), space, v, lost, torch.ones(BOUNDARY_D_SAE, dtype=torch.bool), cfg.multipliers,
        steers=True, n_null=cfg.n_null, alpha=cfg.alpha, max_cost=cfg.ablation_cost, n_boot=cfg.n_boot,
        generator=sample,
    )  # fmt: skip
    return a.status, a.cost_interval


def boundary_rows(w: int, items: tuple[int, ...] = (12, 24, 100), n_dict: int = 10) -> dict[str, Any]:
    """The ablation at its boundary: false "problem" / "fine" and interval coverage of the true cost."""
    from sae_steer_checks.diagnostics.run import CheckConfig

    bound_cost = CheckConfig().ablation_cost
    out: dict[str, Any] = {}
    for true_cost in (0.0, bound_cost, 0.45):
        for n in items:
            runs = [_boundary_one(true_cost, n, s, n_dict) for s in range(w)]
            held = [iv for _, iv in runs if iv is not None]
            out[f"true cost {true_cost:g}, {n} items"] = {
                "worlds": w,
                "true_cost": true_cost,
                "problem_rate": sum(st == "problem" for st, _ in runs) / w,
                "fine_rate": sum(st == "fine" for st, _ in runs) / w,
                "coverage": (
                    sum(lo - 1e-9 <= true_cost <= hi + 1e-9 for lo, hi in held) / len(held) if held else None
                ),
                "coverage_n": len(held),
            }
            print(f"boundary {true_cost:g}/{n}: {json.dumps(out[f'true cost {true_cost:g}, {n} items'])}",
                  file=sys.stderr, flush=True)  # fmt: skip
    return out


def retention_rows(w: int) -> dict[str, Any]:
    """Retention's false "problem" rates (at the threshold; v not steering) and power, by noise and items."""
    from tests.property import test_calibration_retention as ret

    out: dict[str, Any] = {}
    for noise in getattr(ret, "NOISES", ("lognormal",)):
        for n in getattr(ret, "ITEM_COUNTS", (ret.N_ITEMS,)):
            kwargs: dict[str, Any] = {}
            if hasattr(ret, "NOISES"):
                kwargs = {"noise": noise, "n_items": n}
            out[f"{noise}, {n} items"] = {
                "worlds": w,
                "false_problem_rate": sum(ret._status(s, 0.8, **kwargs) == "problem" for s in range(w)) / w,
                "not_steering_problem_rate": sum(
                    ret._status(s, 0.8, steers=False, **kwargs) == "problem" for s in range(w)
                )
                / w,
                "power": sum(ret._status(s, 0.4, **kwargs) == "problem" for s in range(w)) / w,
            }
    return out


def learned_rows(w: int) -> dict[str, Any]:
    """Coverage of the learned vector's ratio interval (learned slope over v's) at its true ratio."""
    from tests.property import test_calibration_retention as ret

    out: dict[str, Any] = {}
    for noise in ret.NOISES:
        for n in ret.ITEM_COUNTS:
            for ratio in ret.LEARNED_RATIOS:
                out[f"{noise}, {n} items, true ratio {ratio:g}"] = {
                    "worlds": w,
                    "coverage": ret.learned_coverage(w, ratio, noise=noise, n_items=n),
                    "nominal": 1 - 2 * ALPHA,
                }
    return out


def main() -> None:
    """Run the grid, print the tables and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the fast tier's sizes")
    parser.add_argument("--cases", default="small:24,2k:12,2k:24,2k:100,16k:100", help="width:items,...")
    parser.add_argument("--null-worlds", type=int, default=200)
    parser.add_argument("--effect-worlds", type=int, default=50)
    parser.add_argument("--wide-worlds", type=int, default=10, help="null and effect samples at 16k")
    parser.add_argument("--dictionaries", type=int, default=10, help="planted worlds per case (16k: 1)")
    parser.add_argument("--retention-worlds", type=int, default=200)
    parser.add_argument(
        "--ablation-worlds", type=int, default=None, help="positive-readout samples (default: --null-worlds)"
    )
    parser.add_argument(
        "--boundary-worlds", type=int, default=200, help="samples per ablation boundary case (0: skip)"
    )
    parser.add_argument("--out", default="calibration.json")
    args = parser.parse_args()
    if args.quick:
        args.null_worlds, args.effect_worlds, args.wide_worlds, args.retention_worlds = 20, 10, 4, 40
    if args.ablation_worlds is None:
        args.ablation_worlds = args.null_worlds
    tic = time.perf_counter()
    cases = {}
    for case in filter(None, args.cases.split(",")):
        width, items = case.split(":")
        wide = width == "16k"
        w0 = args.wide_worlds if wide else args.null_worlds
        w1 = args.wide_worlds if wide else args.effect_worlds
        w2 = args.wide_worlds if wide else args.ablation_worlds
        cases[case] = run_case(width, int(items), w0, w1, 1 if wide else args.dictionaries, w2)
        print(f"{case}: {json.dumps(cases[case])}", file=sys.stderr, flush=True)
    out = {
        "alpha": ALPHA,
        "config": "CheckConfig() defaults, seed = world index",
        "cases": cases,
        "retention": retention_rows(args.retention_worlds) if args.retention_worlds else {},
        "learned": learned_rows(args.retention_worlds) if args.retention_worlds else {},
        "ablation_boundary": boundary_rows(args.boundary_worlds) if args.boundary_worlds else {},
        "seconds": time.perf_counter() - tic,
    }
    Path(args.out).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(
        "| case | worlds (null / effect) | verdict | false 'problem' (bound) | power "
        "| coverage null / effect |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for case, rows in cases.items():
        effect = rows.get("effect", {})
        for key, name in VERDICTS.items():
            # the ablation's null: effect worlds whose behaviour the lost span does not carry
            null = rows.get("ablation_null", {}) if key == "ablation" else rows.get("null", {})
            w0 = null.get("worlds", 0)
            fp = null.get("problem_rate", {}).get(key)
            pw = effect.get("problem_rate", {}).get(key)
            cov = [r.get("coverage", {}).get(key) for r in (null, effect)]
            fp_s = "n/a" if fp is None else f"{fp:.3f}"
            pw_s = "n/a" if pw is None else f"{pw:.2f}"
            print(
                f"| {case} | {w0} / {effect.get('worlds', 0)} | {name} | "
                f"{fp_s} ({bound(max(w0, 1)):.3f}) | {pw_s} | "
                + " / ".join("n/a" if c is None else f"{c:.2f}" for c in cov)
                + " |"
            )
    print()
    print(
        "| retention world | worlds | false 'problem' at ratio 0.8 "
        "| 'problem' when v does not steer | power at 0.4 |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, row in out["retention"].items():
        print(
            f"| {name} | {row['worlds']} | {row['false_problem_rate']:.3f} | "
            f"{row['not_steering_problem_rate']:.3f} | {row['power']:.2f} |"
        )
    print()
    print("| learned-vector world | worlds | 90% ratio interval holds the true ratio |")
    print("| --- | --- | --- |")
    for name, row in out["learned"].items():
        print(f"| {name} | {row['worlds']} | {row['coverage']:.3f} |")
    print()
    print("| ablation boundary world | worlds | 'problem' | 'fine' | interval holds the true cost |")
    print("| --- | --- | --- | --- | --- |")
    for name, row in out["ablation_boundary"].items():
        cov = "n/a" if row["coverage"] is None else f"{row['coverage']:.2f}"
        print(f"| {name} | {row['worlds']} | {row['problem_rate']:.3f} | {row['fine_rate']:.3f} | {cov} |")


if __name__ == "__main__":
    main()
