"""Calibration table: false "problem" rate on null worlds and power on effect worlds, per verdict.

Usage: ``python bench/calibration.py --worlds 200 --effect-worlds 50 --out calibration.json``
(the thorough tier's sizes; the property tests in ``tests/property/test_calibration_*.py`` assert the
same bounds with fewer worlds). Prints a Markdown table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.property.test_calibration_nulls import ALPHA, EFFECT, N_PAIRS, _verdicts
from tests.property.test_calibration_retention import N_ITEMS, _status


def main() -> None:
    """Run the worlds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worlds", type=int, default=200)
    parser.add_argument("--effect-worlds", type=int, default=50)
    parser.add_argument("--out", default="calibration.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tic = time.perf_counter()
    w0, w1 = args.worlds, args.effect_worlds
    null = [_verdicts(s, 0) for s in range(w0)]
    effect = [_verdicts(s, 8) for s in range(w1)]
    rows = {}
    for i, name in enumerate(("negative leaning", "signed decomposition")):
        rows[name] = {
            "false_problem_rate": sum(r[i] == "problem" for r in null) / w0,
            "null_worlds": w0,
            "power": sum(r[i] == "problem" for r in effect) / w1,
            "effect_worlds": w1,
            "effect": f"8 behaviour features, half leaning negative, lean {EFFECT}; {N_PAIRS} items",
        }
    rows["behaviour retained"] = {
        "false_problem_rate": sum(_status(s, 0.8) == "problem" for s in range(w0)) / w0,
        "null_worlds": w0,
        "not_steering_problem_rate": sum(_status(s, 0.8, steers=False) == "problem" for s in range(w0)) / w0,
        "power": sum(_status(s, 0.4) == "problem" for s in range(w0)) / w0,
        "effect_worlds": w0,
        "effect": f"SAE(v) keeps 40% of the slope (null: exactly the 80% threshold); {N_ITEMS} items",
    }
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / w0)
    out = {"alpha": ALPHA, "bound": bound, "seconds": time.perf_counter() - tic, "verdicts": rows}
    Path(args.out).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"| verdict | false 'problem' rate (W={w0}; bound {bound:.3f}) | power | effect |")
    print("| --- | --- | --- | --- |")
    for name, row in rows.items():
        print(
            f"| {name} | {row['false_problem_rate']:.3f} | {row['power']:.2f} (W={row['effect_worlds']}) "
            f"| {row['effect']} |"
        )


if __name__ == "__main__":
    main()
