"""The steerability sweep behind README's layer table: Gemma 3 270M, the bundled sentiment contrast.

    python bench/layer_sweep.py --out layer_sweep.json                # layers 0, 2, ..., 16 (minutes)
    python bench/layer_sweep.py --out layer_sweep.json --layers 10 12 # a part of it

Settings as README's "The embedded default" states them: the vector is pushed by -0.25, 0 and +0.25 of the
layer's mean activation norm; it is extracted from 45 pairs of the bundled sentiment set and scored on the
other 15 openings (the split ``sae-steer-checks`` uses: a quarter held out, shuffled by ``--seed``); the null
is ``--n-random`` random vectors of the same norm. Writes the sweep (``LayerSweep.to_dict()``), the
settings, the environment and README's table row as JSON, and prints the row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment

FRACTIONS = (-0.25, 0.0, 0.25)
DEFAULT_LAYERS = tuple(range(0, 17, 2))


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("layer_sweep.json"), help="where to write the JSON")
    p.add_argument(
        "--layers", type=int, nargs="+", default=list(DEFAULT_LAYERS), help="decoder blocks to sweep"
    )
    p.add_argument("--n-random", type=int, default=4, help="random vectors of the same norm (the null)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of the random vectors")
    p.add_argument("--batch-size", type=int, default=16)
    return p


def table_row(sweep: dict[str, Any]) -> str:
    """README's two table lines for ``sweep`` (``LayerSweep.to_dict()``), the best layer in bold."""
    results, best = sweep["layers"], sweep["best_layer"]

    def cell(r: dict[str, Any], text: str) -> str:
        return f"**{text}**" if r["layer"] == best else text

    layers = " | ".join(cell(r, str(r["layer"])) for r in results)
    slopes = " | ".join(cell(r, f"{r['slope']:.1f}") for r in results)
    return f"| layer | {layers} |\n| slope (log-odds per unit fraction) | {slopes} |"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep, write the JSON and print README's table row; returns the exit code."""
    args = build_parser().parse_args(argv)
    from sae_steer_checks.data.schema import load_freeform, split_items
    from sae_steer_checks.lm.models import load_model
    from sae_steer_checks.steering.layers import layer_sweep
    from sae_steer_checks.steering.tasks import freeform_task

    start = time.perf_counter()
    loaded = load_model("gemma3-270m")
    dataset = load_freeform("sentiment")
    train_items, test_items = split_items(list(dataset.items), 0.25, seed=args.seed)
    train = dataclasses.replace(dataset, items=tuple(train_items))
    task = freeform_task(loaded.tokenizer, dataclasses.replace(dataset, items=tuple(test_items)))
    sweep = layer_sweep(
        loaded.model,
        loaded.tokenizer,
        train,
        task,
        args.layers,
        fractions=FRACTIONS,
        n_random=args.n_random,
        generator=torch.Generator().manual_seed(args.seed),
        batch_size=args.batch_size,
    ).to_dict()
    result = {
        "model": "gemma3-270m",
        "dataset": "builtin:sentiment",
        "n_extraction_pairs": len(train_items),
        "n_heldout_openings": len(test_items),
        "fractions": list(FRACTIONS),
        "n_random": args.n_random,
        "seed": args.seed,
        "sweep": sweep,
        "table": table_row(sweep),
        "seconds": time.perf_counter() - start,
        "environment": environment(),
    }
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(result["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
