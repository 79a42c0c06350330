"""The steering sweep: batched ``ItemScoreFn.score_batch`` vs a plain forward per (vector, multiplier, row).

    python bench/bench_sweep.py '{"model": "tiny", "repeats": 3}'    # seconds, no download
    python bench/bench_sweep.py '{"model": "gemma3-270m"}'           # the figure of run.py

The sweep is the retention check's: ``make_score_fn(..., per_item=True).score_batch`` over every
(vector, multiplier) product at once. The baseline adds each product with ``add_to_residual`` and runs the
whole model with logits once per distinct token row (prefix plus all but the last continuation token; the
A/B sets have one row per prompt), then scores from those logits on its own, so the scores are compared
too. When the baseline is slow it is timed on the first ``baseline_combos`` products and scaled to all of
them (``baseline_extrapolated`` says so); its scores are compared on those products.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, check_repeats, median, ratio, timed

from sae_steer_checks.lm.hooks import add_to_residual
from sae_steer_checks.steering.scoring import SteerPositions, make_score_fn
from sae_steer_checks.steering.tasks import BehaviourTask, ab_task, freeform_task

DATASETS = ("builtin:sentiment", "builtin:corrigibility")


def _tasks(model_name: str, layer: int, max_items: int | None) -> tuple[nn.Module, dict[str, BehaviourTask]]:
    """The model and the held-out task of each set in ``DATASETS`` (the split and tasks of ``run``)."""
    from sae_steer_checks.cli.inputs import load_dataset
    from sae_steer_checks.data.schema import FreeformDataset

    if model_name == "tiny":
        sys.path.insert(0, str(ROOT))
        from tests.helpers.tiny_lm import tiny_model, word_tokenizer

        held = {spec: load_dataset(spec).split(0)[1] for spec in DATASETS}
        texts: list[str] = []
        for h in held.values():
            texts += (
                [i.prompt + " " + " ".join(h.positive_targets + h.negative_targets) for i in h.items]
                if isinstance(h, FreeformDataset)
                else [i.question for i in h]
            )
        tokenizer = word_tokenizer(texts)
        model: nn.Module = tiny_model("gemma2", len(tokenizer), n_layers=max(layer + 2, 4))
    else:
        from sae_steer_checks.lm.models import load_model

        loaded = load_model(model_name)
        model, tokenizer = loaded.model, loaded.tokenizer
        held = {spec: load_dataset(spec).split(0)[1] for spec in DATASETS}
    tasks = {}
    for spec, h in held.items():
        if isinstance(h, FreeformDataset):
            items = h.items[:max_items] if max_items else h.items
            tasks[spec] = freeform_task(tokenizer, items, h.positive_targets, h.negative_targets)
        else:
            tasks[spec] = ab_task(tokenizer, h[:max_items] if max_items else h, swap=True)
    return model.eval(), tasks


def plain_scores(
    model: nn.Module, task: BehaviourTask, layer: int, u: Tensor, positions: SteerPositions = "answer"
) -> tuple[Tensor, int]:
    """Per-item scores ``[n_items]`` (float64) with ``u [d_model]`` added, one plain forward per row.

    Written apart from ``steering.scoring`` (the reference): every distinct row
    ``prefix + continuation[:-1]`` runs alone through the whole model with logits, steered at the same
    positions (``answer``: from the prompt's last token on; ``all``: everywhere). Returns the scores and
    the number of forwards.
    """
    logprobs: dict[tuple[int, ...], Tensor] = {}
    prompt_scores = []
    for i, prefix in enumerate(task.prefixes):
        start = len(prefix) - 1 if positions == "answer" else 0
        with add_to_residual(model, layer, u, start_position=start):
            sides = []
            for conts in (task.positive[i], task.negative[i]):
                lps = []
                for cont in conts:
                    row = tuple(prefix) + tuple(cont[:-1])
                    if row not in logprobs:
                        logits = model(input_ids=torch.tensor([row]), use_cache=False).logits[0]
                        logprobs[row] = torch.log_softmax(logits.double(), dim=-1)
                    lp = logprobs[row]
                    lps.append(sum(float(lp[len(prefix) - 1 + j, tok]) for j, tok in enumerate(cont)))
                sides.append(torch.logsumexp(torch.tensor(lps, dtype=torch.float64), 0) - math.log(len(lps)))
            prompt_scores.append(sides[0] - sides[1])
    scores = torch.stack(prompt_scores)
    units = torch.tensor(task.units)
    items = torch.stack([scores[units == k].mean() for k in torch.unique(units)])  # items sorted by id
    return items, len(logprobs)


def sweep_one(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    combos: Tensor,
    *,
    repeats: int,
    baseline_combos: int,
    positions: SteerPositions = "answer",
) -> dict[str, Any]:
    """Time the batched sweep and the plain baseline on ``combos [k, d_model]``, interleaved."""
    score_fn = make_score_fn(model, task, layer, positions=positions)
    base = combos[: min(baseline_combos, combos.shape[0])]
    fast_s, plain_s = [], []
    grid = torch.empty(0)
    plain = torch.empty(0)
    n_forwards = 0
    with torch.no_grad():
        for _ in range(repeats):
            s, grid = timed(lambda: score_fn.score_batch(combos))
            fast_s.append(s)
            s, out = timed(lambda: [plain_scores(model, task, layer, u, positions) for u in base])
            plain_s.append(s * combos.shape[0] / base.shape[0])
            plain = torch.stack([o[0] for o in out])
            n_forwards = out[0][1]
    diff = float((grid[: base.shape[0]] - plain).abs().max())
    ours, baseline = median(fast_s), median(plain_s)
    return {
        "n_prompts": len(task),
        "n_items": task.n_items,
        "n_combos": int(combos.shape[0]),
        "plain_forwards_per_combo": n_forwards,
        "baseline_combos_timed": int(base.shape[0]),
        "baseline_extrapolated": base.shape[0] < combos.shape[0],
        "seconds": {"ours": ours, "plain": baseline},
        "seconds_all": {"ours": fast_s, "plain": plain_s},
        "speedup": ratio(baseline, ours),
        "max_abs_score_diff": diff,
        "score_scale": float(plain.abs().max()),
    }


def run(
    model: str = "gemma3-270m",
    layer: int = 10,
    n_vectors: int = 43,
    multipliers: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0),
    norm: float = 50.0,
    repeats: int = 3,
    baseline_combos: int = 15,
    max_items: int | None = None,
    seed: int = 0,
    positions: SteerPositions = "answer",
) -> dict[str, Any]:
    """The sweep on each held-out set of ``DATASETS``: ``n_vectors`` random directions of norm ``norm``.

    The default size is the ``run`` command's retention sweep: its 3 vectors and 40 random directions,
    times 5 multipliers, steered at ``positions`` (``answer`` by default, as ``run``).

    Returns, per set, median seconds of both sides (and every repeat), the speed-up of the batched sweep,
    the largest score difference and whether the baseline was extrapolated; ``speedup`` (the smaller of
    the sets) and ``max_abs_score_diff`` (the larger) at the top.
    """
    check_repeats(repeats)
    torch.manual_seed(seed)
    net, tasks = _tasks(model, layer, max_items)
    d = int(net.config.hidden_size)  # type: ignore[union-attr,arg-type]  # an HF config
    vectors = torch.randn(n_vectors, d)
    vectors = vectors / vectors.norm(dim=1, keepdim=True) * norm
    combos = (torch.tensor(multipliers)[None, :, None] * vectors[:, None, :]).reshape(-1, d)
    sets = {
        spec: sweep_one(
            net, task, layer, combos, repeats=repeats, baseline_combos=baseline_combos, positions=positions
        )
        for spec, task in tasks.items()
    }
    speedups = [s["speedup"] for s in sets.values()]
    return {
        "model": model,
        "layer": layer,
        "n_vectors": n_vectors,
        "steer_positions": positions,
        "multipliers": list(multipliers),
        "vector_norm": norm,
        "repeats": repeats,
        "sets": sets,
        "speedup": None if None in speedups else min(speedups),
        "max_abs_score_diff": max(s["max_abs_score_diff"] for s in sets.values()),
    }


if __name__ == "__main__":
    print(json.dumps(run(**json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})))
