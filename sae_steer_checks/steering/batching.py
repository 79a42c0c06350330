"""The forwards of a steering sweep: which token rows run, in what batches, and over what is computed once.

:func:`plan_rows` lists the distinct token rows of a task (prefix plus all but the last continuation
token) and where each continuation's log-probs are read; :class:`Rows` runs one batch of them under a chunk
of added vectors, computing once what no vector changes (``answer`` positions: the unsteered prefix's keys
and values and blocks ``0..L`` of the steered positions; ``all``: blocks ``0..L``). The public entry point
is ``steering.scoring.score_grid``.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from sae_steer_checks.lm.hooks import _hidden, _like, replay_from_layer, run_to_layer
from sae_steer_checks.lm.models import decoder_layers
from sae_steer_checks.lm.readout import left_pad
from sae_steer_checks.steering.tasks import BehaviourTask

if TYPE_CHECKING:
    from sae_steer_checks.steering.scoring import SteerPositions

__all__ = ["Plan", "Rows", "forward_logits", "head_columns", "plan_rows", "prompt_scores", "steer_rows"]


@dataclass(frozen=True)
class Plan:
    """The rows a task runs and where each continuation's token log-probs sit in them."""

    rows: list[tuple[int, ...]]
    """Distinct token rows (prefix + all but the last continuation token), sorted by length."""
    keeps: list[int]
    """Per row, how many final positions are read."""
    entries: list[tuple[int, int, int]]
    """Distinct ``(row, read offset within the kept positions, token)`` log-probs to gather."""
    cont_entries: Tensor
    """``[2, n_pairs]``: continuation index and entry index of each (continuation, token) pair."""
    sides: Tensor
    """``[n_prompts, 2, max_conts]`` continuation indices per prompt and side (-1 pads)."""
    n_conts: int
    """Number of continuations over all prompts and sides."""


def plan_rows(task: BehaviourTask) -> Plan:
    """The distinct rows of ``task`` (sorted by length) and where each continuation's log-probs are read."""
    row_of: dict[tuple[tuple[int, ...], int], int] = {}
    for i, prefix in enumerate(task.prefixes):
        for cont in (*task.positive[i], *task.negative[i]):
            row_of.setdefault((prefix + cont[:-1], len(prefix)), len(row_of))
    # sorting by length keeps the padding of each batch small
    keys = sorted(row_of, key=lambda k: len(k[0]))
    index = {k: r for r, k in enumerate(keys)}
    entry_of: dict[tuple[int, int, int], int] = {}
    pairs: list[tuple[int, int]] = []
    side_lists: list[list[list[int]]] = []
    n_conts = 0
    for i, prefix in enumerate(task.prefixes):
        sides = []
        for conts in (task.positive[i], task.negative[i]):
            ids = []
            for cont in conts:
                r = index[(prefix + cont[:-1], len(prefix))]
                for j, tok in enumerate(cont):
                    pairs.append((n_conts, entry_of.setdefault((r, j, tok), len(entry_of))))
                ids.append(n_conts)
                n_conts += 1
            sides.append(ids)
        side_lists.append(sides)
    width = max(len(ids) for sides in side_lists for ids in sides)
    sides_t = torch.full((len(side_lists), 2, width), -1, dtype=torch.long)
    for i, sides in enumerate(side_lists):
        for s, ids in enumerate(sides):
            sides_t[i, s, : len(ids)] = torch.tensor(ids)
    return Plan(
        rows=[k[0] for k in keys],
        keeps=[len(k[0]) - k[1] + 1 for k in keys],
        entries=list(entry_of),
        cont_entries=torch.tensor(pairs, dtype=torch.long).T,
        sides=sides_t,
        n_conts=n_conts,
    )


def prompt_scores(plan: Plan, values: Tensor) -> Tensor:
    """Scores ``[k, n_prompts]`` from gathered log-probs ``values [k, n_entries]``."""
    cont = values.new_zeros(values.shape[0], plan.n_conts)
    cont.index_add_(1, plan.cont_entries[0], values[:, plan.cont_entries[1]])
    idx = plan.sides.clamp(min=0)
    lp = cont[:, idx].masked_fill(plan.sides[None] < 0, -math.inf)  # [k, n_prompts, 2, max_conts]
    counts = (plan.sides >= 0).sum(-1).to(values.dtype)  # [n_prompts, 2]
    side = torch.logsumexp(lp, dim=-1) - counts.log()
    return side[..., 0] - side[..., 1]


@contextmanager
def head_columns(model: nn.Module, columns: Tensor) -> Iterator[None]:
    """Inside the block the output head computes only ``columns`` (token ids ``[c]``) of the vocabulary.

    Element-wise post-processing of the logits (Gemma's soft-capping) still applies to them.
    """
    head = _linear_head(model)
    if head is None:
        raise TypeError(f"the output head must be an nn.Linear, got {type(_output_head(model)).__name__}")
    weight = head.weight[columns.to(head.weight.device)]
    bias = None if head.bias is None else head.bias[columns.to(head.bias.device)]
    saved = head.__dict__.get("forward")

    def forward(hidden: Tensor) -> Tensor:
        return nn.functional.linear(hidden, weight, bias)

    # an instance attribute shadows the class's forward; put back exactly what was there
    head.__dict__["forward"] = forward
    try:
        yield
    finally:
        if saved is None:
            del head.__dict__["forward"]
        else:
            head.__dict__["forward"] = saved


def _output_head(model: nn.Module) -> Any:
    get_head: Any = getattr(model, "get_output_embeddings", None)
    return get_head() if callable(get_head) else None


def _linear_head(model: nn.Module) -> nn.Linear | None:
    """The model's output head when it is an ``nn.Linear`` (the only kind ``head_columns`` narrows)."""
    head = _output_head(model)
    return head if isinstance(head, nn.Linear) else None


def _one_column(model: nn.Module) -> Any:
    """``head_columns`` with a single column, where the head allows it (a forward read for its cache)."""
    if _linear_head(model) is None:
        return nullcontext()
    return head_columns(model, torch.zeros(1, dtype=torch.long))


def forward(model: nn.Module, n_keep: int, **inputs: Any) -> Any:
    kwargs: dict[str, Any] = {"use_cache": False, **inputs}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = n_keep  # the head runs only where it is read
    return model(**kwargs)


def cache_argument(model: nn.Module) -> str:
    """The keyword of a key/value cache: ``cache`` (transformers >= 5.25) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def forward_logits(model: nn.Module, n_keep: int, **inputs: Any) -> Tensor:
    """The logits of the last ``n_keep`` positions of ``model(**inputs)`` (no cache unless given one)."""
    logits: Tensor = forward(model, n_keep, **inputs).logits
    return logits[:, -n_keep:]


@contextmanager
def steer_rows(model: nn.Module, layer: int, deltas: Tensor, mask: Tensor | None) -> Iterator[None]:
    """Add ``deltas [rows, d]`` to block ``layer``'s output, at the positions where ``mask [rows, seq]``."""
    block = decoder_layers(model)[layer]

    def hook(_module: nn.Module, _args: Any, output: Any) -> Any:
        hidden = _hidden(output)
        delta = deltas.to(device=hidden.device, dtype=hidden.dtype)[:, None, :]
        if mask is not None:
            delta = delta * mask[:, -hidden.shape[1] :, None].to(device=hidden.device, dtype=hidden.dtype)
        return _like(output, hidden + delta)

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class Rows:
    """One batch of token rows and every way of running a chunk of added vectors over it.

    Rows of a chunk of ``c`` vectors are ordered row-major: batch row ``b`` with vector ``j`` is row
    ``b * c + j``. ``answer`` steers, per row, its last ``keep`` positions; the positions before the
    batch's last ``n_keep`` are then the same for every vector, so they run once (their keys and values
    are kept in a cache), the last ``n_keep`` positions run once through blocks ``0..layer``, and each
    chunk replays only blocks ``layer + 1..`` on those positions over the cache. ``all`` steers every
    position; blocks ``0..layer`` then run once and only the later blocks are replayed per chunk.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: int,
        task: BehaviourTask,
        rows: Sequence[tuple[int, ...]],
        keeps: Sequence[int],
        positions: SteerPositions,
        reuse_prefix: bool,
    ) -> None:
        device = next(model.parameters()).device
        self.model, self.layer, self.n_keep = model, layer, max(keeps)
        ids, mask, pos = left_pad(rows, task.pad_id, device)
        self.inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
        width = ids.shape[1]
        self.mask: Tensor | None = None
        if positions == "answer":
            first = width - torch.tensor(keeps, device=device)
            self.mask = torch.arange(width, device=device)[None, :] >= first[:, None]
        self.hidden: Tensor | None = None
        self.cache: Any = None
        self.prefix = 0
        if reuse_prefix and positions == "all":
            self.hidden = run_to_layer(self.model, layer, use_cache=False, **self.inputs)
        elif reuse_prefix and width > self.n_keep:
            self.prefix = width - self.n_keep
            self.cache = self._prefix_cache()
            if self.cache is not None:
                self.hidden = run_to_layer(
                    self.model, layer, **self._tail(self.inputs, copy.deepcopy(self.cache))
                )
            else:
                self.prefix = 0

    def _prefix_cache(self) -> Any:
        head = {k: t[:, : self.prefix] for k, t in self.inputs.items()}
        # only the keys and values are kept: the output head computes one vocabulary column, not all
        with _one_column(self.model):
            out = forward(self.model, 1, use_cache=True, **head)
        # transformers >= 5.25 names the cache ``cache``; earlier releases ``past_key_values``
        cache = out.get("cache")
        if cache is None:  # reading the old name only when needed: newer releases warn on it
            cache = out.get("past_key_values")
        return cache if hasattr(cache, "batch_repeat_interleave") else None

    @property
    def tokens_per_row(self) -> int:
        """Token positions each added vector holds per row: the cached prefix, or the whole row."""
        return self.prefix if self.cache is not None else int(self.inputs["input_ids"].shape[1])

    def _chunk_cache(self, c: int) -> Any:
        """The prefix cache with each row repeated ``c`` times, for the blocks a chunk runs.

        Blocks ``0..layer`` are skipped by the replay, so their entries are shared with the stored cache
        as they are (never read or written); only the later blocks' keys and values are repeated. The
        stored cache is left unchanged: a cache's layers replace their tensors rather than write into
        them, so shallow copies of the layer objects suffice. A cache without a ``layers`` list (older
        transformers releases) is copied whole.
        """
        layers = getattr(self.cache, "layers", None)
        if not isinstance(layers, list) or len(layers) <= self.layer:
            cache = copy.deepcopy(self.cache)
            cache.batch_repeat_interleave(c)
            return cache
        cache = copy.copy(self.cache)
        cache.layers = [copy.copy(layer) for layer in layers]
        for layer in cache.layers[self.layer + 1 :]:
            layer.batch_repeat_interleave(c)
        return cache

    def _tail(self, inputs: dict[str, Tensor], cache: Any) -> dict[str, Any]:
        """The forward's arguments for the positions after the cached prefix."""
        tail: dict[str, Any] = {k: t[:, self.prefix :] for k, t in inputs.items() if k != "attention_mask"}
        tail[cache_argument(self.model)] = cache
        return {"attention_mask": inputs["attention_mask"], "use_cache": True, **tail}

    def logits(self, chunk: Tensor, columns: Tensor | None) -> Tensor:
        """Logits ``[c, rows, n_keep, vocab or columns]`` with each vector of ``chunk [c, d]`` added."""
        c, b = chunk.shape[0], self.inputs["input_ids"].shape[0]
        deltas = chunk.repeat(b, 1)
        big = {k: t.repeat_interleave(c, dim=0) for k, t in self.inputs.items()}
        narrow = head_columns(self.model, columns) if columns is not None else nullcontext()
        if self.hidden is None:  # one full forward per chunk
            mask = None if self.mask is None else self.mask.repeat_interleave(c, dim=0)
            with steer_rows(self.model, self.layer, deltas, mask), narrow:
                logits = forward_logits(self.model, self.n_keep, **big)
        else:
            hidden = self.hidden.repeat_interleave(c, dim=0)
            if self.mask is None:
                replaced = hidden + deltas.to(hidden.dtype)[:, None, :]
            else:
                mask = self.mask[:, self.prefix :].repeat_interleave(c, dim=0)
                replaced = hidden + deltas.to(hidden.dtype)[:, None, :] * mask[:, :, None].to(hidden.dtype)
            if self.cache is not None:
                big = self._tail(big, self._chunk_cache(c))
            with replay_from_layer(self.model, self.layer, replaced), narrow:
                logits = forward_logits(self.model, self.n_keep, **big)
        logits = logits.float().reshape(b, c, self.n_keep, -1)
        return logits.transpose(0, 1)
