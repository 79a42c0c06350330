"""Activation extraction on Gemma 3 270M: ``extract_caa`` against ``steering-vectors`` and plain forwards.

All methods read the residual after block ``layer`` at the last token of the same ``2 * n_pairs``
prompts (A/B items without a chat template, so every tokenizer call adds BOS exactly once). The
forward baselines batch ``2 * batch_size`` prompts sorted by length, left-padded with explicit
positions; ``steering-vectors`` gets the same number of pairs per batch as ours.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_repeats, median, ratio, timed


def _batches(
    tokenizer: Any, prompts: list[str], size: int
) -> list[tuple[list[int], dict[str, torch.Tensor]]]:
    from sae_steer_checks.data.prompts import tokenize

    ids = [tokenize(tokenizer, p) for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = []
    for s in range(0, len(order), size):
        chunk = order[s : s + size]
        width = max(len(ids[i]) for i in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, i in enumerate(chunk):
            input_ids[r, width - len(ids[i]) :] = torch.tensor(ids[i])
            mask[r, width - len(ids[i]) :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        out.append((chunk, {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions}))
    return out


@torch.no_grad()
def _forward_reads(model: Any, batches: list[Any], n: int, layer: int, mode: str) -> torch.Tensor:
    from sae_steer_checks.lm.hooks import capture_residual

    out = torch.empty(n, model.config.get_text_config().hidden_size)
    for chunk, inputs in batches:
        if mode == "hidden_states":
            hidden = model(**inputs, output_hidden_states=True).hidden_states[layer + 1]
        else:
            with capture_residual(model, layer) as captured:
                model(**inputs, logits_to_keep=1)
            hidden = captured[layer][0]
        out[chunk] = hidden[:, -1].float()
    return out


def _vector(acts: torch.Tensor) -> torch.Tensor:
    return (acts[0::2] - acts[1::2]).mean(dim=0)


def run_dtype(
    dtype: torch.dtype, *, n_pairs: int, layer: int, batch_size: int, repeats: int, dataset: str
) -> dict[str, Any]:
    """Seconds and vector agreement of every method in ``dtype``; ratios against steering-vectors."""
    from steering_vectors import train_steering_vector

    from sae_steer_checks.data.prompts import ab_pairs
    from sae_steer_checks.data.schema import load_ab_items
    from sae_steer_checks.lm.models import load_model
    from sae_steer_checks.steering.caa import extract_caa

    load_seconds, loaded = timed(lambda: load_model("gemma3-270m", dtype=dtype))
    model, tok = loaded.model, loaded.tokenizer
    pairs = ab_pairs(load_ab_items(dataset)[:n_pairs], tok, chat_template=False)
    if len(pairs) < n_pairs:
        raise ValueError(f"dataset {dataset!r} has only {len(pairs)} items, need {n_pairs}")
    prompts = [p for pair in pairs for p in (pair.positive, pair.negative)]
    batches = _batches(tok, prompts, 2 * batch_size)
    n = len(prompts)
    methods = {
        "ours": lambda: extract_caa(model, tok, pairs, layer, balance="none", batch_size=batch_size).vector,
        "ours_no_prefix_sharing": lambda: (
            extract_caa(
                model, tok, pairs, layer, balance="none", batch_size=batch_size, share_prefix=False
            ).vector
        ),
        "steering_vectors": lambda: (
            train_steering_vector(
                model,
                tok,
                [(p.positive, p.negative) for p in pairs],
                layers=[layer],
                read_token_index=-1,
                batch_size=batch_size,
            )
            .layer_activations[layer]
            .float()
        ),
        "full_forward_hidden_states": lambda: _vector(
            _forward_reads(model, batches, n, layer, "hidden_states")
        ),
        "full_forward_last_logits": lambda: _vector(_forward_reads(model, batches, n, layer, "last_logits")),
    }
    check_repeats(repeats)
    times: dict[str, list[float]] = {name: [] for name in methods}
    vectors: dict[str, torch.Tensor] = {}
    # interleaved: a slow spell of the machine hits every method, not one
    for _ in range(repeats):
        for name, fn in methods.items():
            seconds, vec = timed(fn)
            times[name].append(seconds)
            vectors[name] = vec.detach().float().cpu()
    rows: dict[str, dict[str, Any]] = {
        name: {"seconds": median(ts), "seconds_all": ts} for name, ts in times.items()
    }
    ref = vectors["steering_vectors"]
    for name, row in rows.items():
        row["vector_rel_diff"] = float((vectors[name] - ref).norm() / ref.norm())
        row["speedup_vs_steering_vectors"] = ratio(rows["steering_vectors"]["seconds"], row["seconds"])
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "load_seconds": load_seconds,
        "n_prompts": n,
        "padded_tokens": sum(len(inp["input_ids"][0]) * len(chunk) for chunk, inp in batches),
        "methods": rows,
        "speedup": rows["ours"]["speedup_vs_steering_vectors"],
    }


def run(
    *, n_pairs: int, layer: int, batch_size: int, repeats: int, dataset: str = "survival_instinct"
) -> dict[str, Any]:
    """float32 and bfloat16 figures (medians of ``repeats`` interleaved runs); targets judge float32."""
    out: dict[str, Any] = {
        "model": "gemma3-270m",
        "layer": layer,
        "n_pairs": n_pairs,
        "batch_size_pairs": batch_size,
        "dataset": dataset,
        "repeats": repeats,
        "device": "cpu",
        "baseline": "steering_vectors.train_steering_vector (0.12.2), same pairs per batch",
    }
    for dtype in (torch.float32, torch.bfloat16):
        out[str(dtype).removeprefix("torch.")] = run_dtype(
            dtype, n_pairs=n_pairs, layer=layer, batch_size=batch_size, repeats=repeats, dataset=dataset
        )
    return out
