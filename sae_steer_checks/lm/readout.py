"""Batched residual reads at the last token of contrastive prompts, sharing their common prefix.

A contrastive pair differs only at its end (the answer letter, or the completion word), so the common
token prefix is computed once. Where the architecture takes a custom attention mask (sdpa or eager
attention on Llama, Qwen, Mistral and Gemma families), each pair is one packed row ``prefix,
positive ending, negative ending`` whose mask hides each ending from the other, with positions that
restart after the prefix: one forward per batch, no key-value cache. Elsewhere the prefix runs with a
cache and both endings continue from it. Every forward stops after the target block: later blocks and
the output head never run. Rows are padded by this module with explicit ``position_ids``, so each row
reads the same values it would alone, whatever the tokenizer's ``padding_side``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from sae_steer_checks.data.prompts import tokenize
from sae_steer_checks.data.schema import ContrastivePair
from sae_steer_checks.lm.hooks import capture_residual, run_to_layer
from sae_steer_checks.lm.models import validate_layer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "left_pad",
    "pad_token_id",
    "positions_from_mask",
    "read_last_token",
    "read_last_token_layers",
    "read_pairs",
    "read_pairs_layers",
    "tokenize_pairs",
]

TokenPair = tuple[list[int], list[int], list[int]]


def tokenize_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[ContrastivePair]) -> list[TokenPair]:
    """Split each pair into ``(shared prefix, positive ending, negative ending)`` token ids.

    The ids are those of tokenising each full prompt (``data.prompts.tokenize``); the prefix is their longest
    common start, shortened so that both endings keep at least one token.
    """
    out = []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, ContrastivePair):
            raise TypeError(f"pairs[{index}] must be a ContrastivePair, got {type(pair).__name__}")
        pos, neg = tokenize(tokenizer, pair.positive), tokenize(tokenizer, pair.negative)
        if pos == neg:
            raise ValueError(f"pairs[{index}]: positive and negative tokenise identically: {pos}")
        shared = 0
        for a, b in zip(pos, neg, strict=False):
            if a != b:
                break
            shared += 1
        shared = min(shared, len(pos) - 1, len(neg) - 1)
        out.append((pos[:shared], pos[shared:], neg[shared:]))
    return out


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id to pad with: the tokenizer's pad token, else its EOS token, else 0.

    Padded positions are masked out, so the choice never changes a read or a score.
    """
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    return 0


def left_pad(
    rows: Sequence[Sequence[int]], pad: int, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor, Tensor]:
    """Left-pad token-id rows to one width.

    Returns ``(input_ids, attention_mask, position_ids)``, each ``[n_rows, width]`` long on ``device``.
    Positions count real tokens only, so a left-padded row sees the positions it would see alone.
    """
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(list(row), dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device), positions_from_mask(mask).to(device)


def positions_from_mask(mask: Tensor) -> Tensor:
    """Position ids ``[batch, seq]`` that count the real (mask 1) tokens of each row from 0."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def _cache_kwarg(model: nn.Module) -> str:
    # transformers >= 5.2x names the argument ``cache``; earlier releases ``past_key_values``
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def read_last_token(
    model: nn.Module,
    rows: Sequence[list[int]],
    layer: int,
    *,
    pad_id: int = 0,
    batch_size: int = 16,
    progress: bool = False,
) -> Tensor:
    """Residual after block ``layer`` at the last token of each row of token ids, ``[n, d_model]`` f32.

    Rows are left-padded with explicit positions; blocks after ``layer`` and the head are skipped
    (:func:`read_last_token_layers` with one layer).
    """
    layer = validate_layer(model, layer)
    read = read_last_token_layers(
        model, rows, [layer], pad_id=pad_id, batch_size=batch_size, progress=progress
    )
    return read[layer]


@torch.no_grad()
def read_last_token_layers(
    model: nn.Module,
    rows: Sequence[list[int]],
    layers: Sequence[int],
    *,
    pad_id: int = 0,
    batch_size: int = 16,
    progress: bool = False,
) -> dict[int, Tensor]:
    """:func:`read_last_token` at several blocks from one forward per batch: ``layer -> [n, d_model]`` f32.

    The forward stops after the last of ``layers``; each layer's values are those a one-layer read gives.
    """
    wanted = sorted({validate_layer(model, layer) for layer in layers})
    if not wanted:
        raise ValueError("layers must name at least one decoder block, got none")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("rows must be a non-empty list of non-empty token-id lists")
    device = _device(model)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = {layer: [torch.empty(0)] * len(rows) for layer in wanted}
    starts = range(0, len(rows), batch_size)
    for start in tqdm(starts, desc=f"reading layers {wanted}", disable=not progress):
        chunk = order[start : start + batch_size]
        ids, mask, positions = left_pad([rows[i] for i in chunk], pad_id, device)
        with capture_residual(model, wanted, stop_after_last=True) as captured:
            model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
        for layer in wanted:
            hidden = captured[layer][0]
            for j, i in enumerate(chunk):
                out[layer][i] = hidden[j, -1].float().cpu()
    return {layer: torch.stack(acts) for layer, acts in out.items()}


@torch.no_grad()
def read_pairs_layers(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[ContrastivePair],
    layers: Sequence[int],
    *,
    batch_size: int = 16,
    progress: bool = False,
) -> dict[int, tuple[Tensor, Tensor]]:
    """:func:`read_pairs` (``share_prefix=False``) at several blocks, one forward per batch for all of them.

    Returns ``layer -> (positive, negative)``, each ``[n_pairs, d_model]`` float32 on the CPU.
    """
    if not pairs:
        raise ValueError("pairs must hold at least one ContrastivePair, got none")
    rows = [p + e for p, pos, neg in tokenize_pairs(tokenizer, pairs) for e in (pos, neg)]
    pad = pad_token_id(tokenizer)
    acts = read_last_token_layers(
        model, rows, layers, pad_id=pad, batch_size=2 * batch_size, progress=progress
    )
    return {layer: (a[0::2].contiguous(), a[1::2].contiguous()) for layer, a in acts.items()}


@torch.no_grad()
def read_pairs(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[ContrastivePair],
    layer: int,
    *,
    batch_size: int = 16,
    share_prefix: bool = True,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """Residual after block ``layer`` at the last token of both prompts of every pair.

    Returns ``(positive, negative)``, each ``[n_pairs, d_model]`` float32 on the CPU. With
    ``share_prefix`` (default) the common prefix of a pair runs once: both endings are packed after it
    in one row (see the module notes) or continue from its cache; otherwise all ``2 * n_pairs``
    prompts run in full (same values to float tolerance). ``batch_size`` is pairs per forward.
    """
    layer = validate_layer(model, layer)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not pairs:
        raise ValueError("pairs must hold at least one ContrastivePair, got none")
    tokenized = tokenize_pairs(tokenizer, pairs)
    pad = pad_token_id(tokenizer)
    if not share_prefix or any(not prefix for prefix, _, _ in tokenized):
        rows = [p + e for p, pos, neg in tokenized for e in (pos, neg)]
        acts = read_last_token(model, rows, layer, pad_id=pad, batch_size=2 * batch_size, progress=progress)
        return acts[0::2].contiguous(), acts[1::2].contiguous()
    if _can_pack(model, tokenized):
        return _read_packed(model, tokenized, layer, pad, batch_size, progress)
    return _read_shared(model, tokenized, layer, pad, batch_size, progress)


# families whose decoder takes a prepared 4D mask as-is (transformers' masking utilities)
_PACKABLE = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text"})
_PACKABLE_ATTENTION = frozenset({"sdpa", "eager"})


def _can_pack(model: nn.Module, tokenized: list[TokenPair]) -> bool:
    # text-only causal LMs of these families; multimodal wrappers build their masks differently
    text: Any = getattr(model, "config", None)
    if text is None:
        return False
    if getattr(text, "model_type", None) not in _PACKABLE:
        return False
    if getattr(text, "_attn_implementation", None) not in _PACKABLE_ATTENTION:
        return False
    # one mask serves every layer, so a sliding window must cover the longest packed row
    window = getattr(text, "sliding_window", None)
    width = max(len(p) + len(a) + len(b) for p, a, b in tokenized)
    return window is None or width <= window


def _packed_batch(
    chunk: Sequence[TokenPair], pad: int, dtype: torch.dtype, eager: bool, device: torch.device
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Inputs of one packed forward and the read index of each row's positive and negative ending.

    Row ``[pad.., prefix, positive ending, negative ending]`` (left-padded to the batch width); an
    ending token sees the prefix and the earlier tokens of its own ending only, at the positions it
    would have in its own prompt. Returns ``(inputs, pos_index [b], neg_index [b])``.
    """
    width = max(len(p) + len(a) + len(b) for p, a, b in chunk)
    ids = torch.full((len(chunk), width), pad, dtype=torch.long)
    segment = torch.zeros((len(chunk), width), dtype=torch.long)  # 0 pad, 1 prefix, 2 pos, 3 neg
    positions = torch.zeros((len(chunk), width), dtype=torch.long)
    pos_index = torch.empty(len(chunk), dtype=torch.long)
    for r, (prefix, pos, neg) in enumerate(chunk):
        start = width - len(prefix) - len(pos) - len(neg)
        ids[r, start:] = torch.tensor(prefix + pos + neg, dtype=torch.long)
        segment[r, start:] = torch.tensor([1] * len(prefix) + [2] * len(pos) + [3] * len(neg))
        n = len(prefix)
        positions[r, start:] = torch.tensor([*range(n + len(pos)), *range(n, n + len(neg))], dtype=torch.long)
        pos_index[r] = width - len(neg) - 1
    key, query = segment[:, None, :], segment[:, :, None]
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    allowed = causal & (key != 0) & ((key == 1) | (key == query))
    # a padded query sees itself, so its (unread) row stays finite
    allowed |= torch.eye(width, dtype=torch.bool) & (query == 0)
    mask = allowed[:, None]
    if eager:  # eager attention adds the mask to the scores
        mask = torch.zeros(mask.shape, dtype=dtype).masked_fill_(~mask, torch.finfo(dtype).min)
    inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    inputs["position_ids"] = positions.to(device)
    return inputs, pos_index, torch.full_like(pos_index, width - 1)


def _read_packed(
    model: nn.Module,
    tokenized: list[TokenPair],
    layer: int,
    pad: int,
    batch_size: int,
    progress: bool,
) -> tuple[Tensor, Tensor]:
    device = _device(model)
    config: Any = getattr(model, "config", None)
    eager = config._attn_implementation == "eager"
    dtype = next(model.parameters()).dtype
    order = sorted(range(len(tokenized)), key=lambda i: sum(map(len, tokenized[i])))
    pos_out: Tensor | None = None
    neg_out: Tensor | None = None
    starts = range(0, len(tokenized), batch_size)
    for start in tqdm(starts, desc=f"reading layer {layer}", disable=not progress):
        chunk = order[start : start + batch_size]
        inputs, pos_index, neg_index = _packed_batch([tokenized[i] for i in chunk], pad, dtype, eager, device)
        hidden = run_to_layer(model, layer, use_cache=False, **inputs)
        if pos_out is None or neg_out is None:
            pos_out = torch.empty((len(tokenized), hidden.shape[-1]), dtype=torch.float32)
            neg_out = torch.empty_like(pos_out)
        rows = torch.arange(len(chunk), device=hidden.device)
        index = torch.tensor(chunk, dtype=torch.long)
        pos_out[index] = hidden[rows, pos_index.to(hidden.device)].float().cpu()
        neg_out[index] = hidden[rows, neg_index.to(hidden.device)].float().cpu()
    if pos_out is None or neg_out is None:
        raise RuntimeError("no batch was read")
    return pos_out, neg_out


def _read_shared(
    model: nn.Module,
    tokenized: list[TokenPair],
    layer: int,
    pad: int,
    batch_size: int,
    progress: bool,
) -> tuple[Tensor, Tensor]:
    from transformers import DynamicCache

    device = _device(model)
    config = getattr(model, "config", None)
    cache_arg = _cache_kwarg(model)
    order = sorted(range(len(tokenized)), key=lambda i: len(tokenized[i][0]))
    pos_out: list[Tensor] = [torch.empty(0)] * len(tokenized)
    neg_out: list[Tensor] = [torch.empty(0)] * len(tokenized)
    starts = range(0, len(tokenized), batch_size)
    for start in tqdm(starts, desc=f"reading layer {layer}", disable=not progress):
        chunk = order[start : start + batch_size]
        prefix_ids, prefix_mask, prefix_positions = left_pad([tokenized[i][0] for i in chunk], pad, device)
        # the cache is made here, not by the model, because the stopped forward returns nothing
        cache = DynamicCache(config=config) if config is not None else DynamicCache()
        run_to_layer(
            model,
            layer,
            input_ids=prefix_ids,
            attention_mask=prefix_mask,
            position_ids=prefix_positions,
            use_cache=True,
            **{cache_arg: cache},
        )
        cache.batch_repeat_interleave(2)
        endings = [tokenized[i][k] for i in chunk for k in (1, 2)]
        width = max(len(e) for e in endings)
        end_ids = torch.full((len(endings), width), pad, dtype=torch.long)
        end_mask = torch.zeros((len(endings), width), dtype=torch.long)
        for r, ending in enumerate(endings):
            end_ids[r, : len(ending)] = torch.tensor(ending, dtype=torch.long)
            end_mask[r, : len(ending)] = 1
        full_mask = torch.cat([prefix_mask.repeat_interleave(2, dim=0), end_mask.to(device)], dim=1)
        start_pos = prefix_mask.sum(dim=1, keepdim=True).repeat_interleave(2, dim=0)
        hidden = run_to_layer(
            model,
            layer,
            input_ids=end_ids.to(device),
            attention_mask=full_mask,
            position_ids=start_pos + torch.arange(width, device=device),
            use_cache=True,
            **{cache_arg: cache},
        )
        for j, i in enumerate(chunk):
            pos_out[i] = hidden[2 * j, len(endings[2 * j]) - 1].float().cpu()
            neg_out[i] = hidden[2 * j + 1, len(endings[2 * j + 1]) - 1].float().cpu()
    return torch.stack(pos_out), torch.stack(neg_out)
