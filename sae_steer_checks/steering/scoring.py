"""Behaviour scores under steering, one per prompt and per item, for many steering vectors at once.

A/B: the logit of the matching letter minus the other (the log-softmax normaliser cancels). Free-form:
the log of the mean probability of the positive continuations minus that of the negative ones.

A sweep scores the same prompts under many added vectors (vectors x multipliers). Steering at block
``L`` leaves blocks ``0..L`` unchanged, so :func:`score_grid` runs them once per batch of prompts and
replays only the later blocks for each vector (``lm.hooks.replay_from_layer``), stacking several
vectors into the batch dimension with one per-row steering hook. Identical added vectors (multiplier 0
of every vector) are scored once. When every continuation is a single token (A/B tasks, one-token
targets) all of a prompt's continuations are read at one position, so the log-softmax normaliser
cancels from the score: the output head then computes only the target tokens' logits, not the whole
vocabulary (262k columns on Gemma).
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal, cast, overload

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from sae_steer_checks.lm.hooks import _hidden, _like, replay_from_layer, run_to_layer
from sae_steer_checks.lm.models import decoder_layers, model_d_model, validate_layer
from sae_steer_checks.lm.readout import left_pad
from sae_steer_checks.stats import cluster_mean
from sae_steer_checks.stats import group_mean as stats_group_mean
from sae_steer_checks.steering.tasks import BehaviourTask

__all__ = [
    "STEER_POSITIONS",
    "STEER_POSITIONS_RULES",
    "ItemScoreFn",
    "SteerPositions",
    "group_mean",
    "item_scores",
    "make_score_fn",
    "score_grid",
    "score_items",
    "validate_positions",
]


@dataclass(frozen=True)
class _Plan:
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


def _plan(task: BehaviourTask) -> _Plan:
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
    return _Plan(
        rows=[k[0] for k in keys],
        keeps=[len(k[0]) - k[1] + 1 for k in keys],
        entries=list(entry_of),
        cont_entries=torch.tensor(pairs, dtype=torch.long).T,
        sides=sides_t,
        n_conts=n_conts,
    )


def _prompt_scores(plan: _Plan, values: Tensor) -> Tensor:
    """Scores ``[k, n_prompts]`` from gathered log-probs ``values [k, n_entries]``."""
    cont = values.new_zeros(values.shape[0], plan.n_conts)
    cont.index_add_(1, plan.cont_entries[0], values[:, plan.cont_entries[1]])
    idx = plan.sides.clamp(min=0)
    lp = cont[:, idx].masked_fill(plan.sides[None] < 0, -math.inf)  # [k, n_prompts, 2, max_conts]
    counts = (plan.sides >= 0).sum(-1).to(values.dtype)  # [n_prompts, 2]
    side = torch.logsumexp(lp, dim=-1) - counts.log()
    return side[..., 0] - side[..., 1]


@contextmanager
def _head_columns(model: nn.Module, columns: Tensor) -> Iterator[None]:
    """Inside the block the output head computes only ``columns`` (token ids ``[c]``) of the vocabulary.

    Element-wise post-processing of the logits (Gemma's soft-capping) still applies to them.
    """
    get_head: Any = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if not isinstance(head, nn.Linear):
        raise TypeError(f"the output head must be an nn.Linear, got {type(head).__name__}")
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


def _forward(model: nn.Module, n_keep: int, **inputs: Any) -> Any:
    kwargs: dict[str, Any] = {"use_cache": False, **inputs}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = n_keep  # the head runs only where it is read
    return model(**kwargs)


def _cache_argument(model: nn.Module) -> str:
    """The keyword of a key/value cache: ``cache`` (transformers >= 5.25) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _forward_logits(model: nn.Module, n_keep: int, **inputs: Any) -> Tensor:
    logits: Tensor = _forward(model, n_keep, **inputs).logits
    return logits[:, -n_keep:]


#: Where an added vector is steered: ``answer`` (CAA's convention: from the last prompt token on, the
#: positions whose outputs are read; for an A/B prompt only its last position) or ``all`` (every position).
SteerPositions = Literal["answer", "all"]
STEER_POSITIONS: tuple[str, ...] = ("answer", "all")
#: Each convention in words, for provenance and reports.
STEER_POSITIONS_RULES: dict[str, str] = {
    "answer": "the vector is added from each prompt's last token on (the position whose output is the scored "
    "answer, and the continuation's), as in CAA; earlier positions are not steered",
    "all": "the vector is added at every position of each prompt",
}


def validate_positions(positions: str) -> SteerPositions:
    """``positions`` if it is one of :data:`STEER_POSITIONS`, else a ValueError naming it."""
    if positions not in STEER_POSITIONS:
        raise ValueError(f"positions must be one of {list(STEER_POSITIONS)}, got {positions!r}")
    return cast(SteerPositions, positions)


@contextmanager
def _steer_rows(model: nn.Module, layer: int, deltas: Tensor, mask: Tensor | None) -> Iterator[None]:
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


class _Rows:
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
        out = _forward(self.model, 1, use_cache=True, **head)
        # transformers >= 5.25 names the cache ``cache``; earlier releases ``past_key_values``
        cache = out.get("cache", out.get("past_key_values"))
        return cache if hasattr(cache, "batch_repeat_interleave") else None

    def _tail(self, inputs: dict[str, Tensor], cache: Any) -> dict[str, Any]:
        """The forward's arguments for the positions after the cached prefix."""
        tail: dict[str, Any] = {k: t[:, self.prefix :] for k, t in inputs.items() if k != "attention_mask"}
        tail[_cache_argument(self.model)] = cache
        return {"attention_mask": inputs["attention_mask"], "use_cache": True, **tail}

    def logits(self, chunk: Tensor, columns: Tensor | None) -> Tensor:
        """Logits ``[c, rows, n_keep, vocab or columns]`` with each vector of ``chunk [c, d]`` added."""
        c, b = chunk.shape[0], self.inputs["input_ids"].shape[0]
        deltas = chunk.repeat(b, 1)
        big = {k: t.repeat_interleave(c, dim=0) for k, t in self.inputs.items()}
        narrow = _head_columns(self.model, columns) if columns is not None else nullcontext()
        if self.hidden is None:  # one full forward per chunk
            mask = None if self.mask is None else self.mask.repeat_interleave(c, dim=0)
            with _steer_rows(self.model, self.layer, deltas, mask), narrow:
                logits = _forward_logits(self.model, self.n_keep, **big)
        else:
            hidden = self.hidden.repeat_interleave(c, dim=0)
            if self.mask is None:
                replaced = hidden + deltas.to(hidden.dtype)[:, None, :]
            else:
                mask = self.mask[:, self.prefix :].repeat_interleave(c, dim=0)
                replaced = hidden + deltas.to(hidden.dtype)[:, None, :] * mask[:, :, None].to(hidden.dtype)
            if self.cache is not None:
                cache = copy.deepcopy(self.cache)
                cache.batch_repeat_interleave(c)
                big = self._tail(big, cache)
            with replay_from_layer(self.model, self.layer, replaced), narrow:
                logits = _forward_logits(self.model, self.n_keep, **big)
        logits = logits.float().reshape(b, c, self.n_keep, -1)
        return logits.transpose(0, 1)


@torch.no_grad()
def score_grid(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    vectors: Tensor | None = None,
    *,
    positions: SteerPositions = "answer",
    batch_size: int = 16,
    vectors_per_batch: int = 8,
    reuse_prefix: bool = True,
    full_vocab: bool = False,
    progress: bool = False,
    label: str | None = None,
) -> Tensor:
    """Per-prompt scores with each of ``vectors`` added after block ``layer``, ``[k, n_prompts]`` float64.

    Args:
        model: a causal LM.
        task: the prompts and continuations to score.
        layer: decoder block whose output is steered.
        vectors: added vectors ``[k, d_model]`` (already multiplied); None scores the plain model (k = 1).
        positions: ``"answer"`` steers from each prompt's last token on (CAA's convention; for an A/B
            prompt its last position, for a free-form one the opening's last token and the
            continuation), ``"all"`` every position (:data:`STEER_POSITIONS`).
        batch_size: prompt rows per batch.
        vectors_per_batch: vectors stacked into one forward (``batch_size * vectors_per_batch`` rows).
        reuse_prefix: compute what no vector changes once per batch and run only the rest per vector
            (``answer``: the unsteered prefix's keys and values; ``all``: blocks ``0..layer``); the same
            values as full forwards, to float tolerance. False runs every forward in full.
        full_vocab: compute the whole vocabulary's logits even where only the targets' are needed.
        progress: show a progress bar (vectors x prompts, with the time left).
        label: what the vectors are, for the progress bar (default: "<k> vectors").
    """
    if not isinstance(task, BehaviourTask):
        raise TypeError(f"task must be a BehaviourTask, got {type(task).__name__}")
    layer = validate_layer(model, layer)
    positions = validate_positions(positions)
    if batch_size < 1 or vectors_per_batch < 1:
        raise ValueError(
            f"batch_size and vectors_per_batch must be >= 1, got {batch_size}, {vectors_per_batch}"
        )
    d_model = model_d_model(model)
    if vectors is None:
        vectors = torch.zeros(1, d_model)
    if vectors.ndim != 2 or vectors.shape[1] != d_model or vectors.shape[0] == 0:
        raise ValueError(f"vectors must be [k >= 1, {d_model}], got shape {list(vectors.shape)}")
    unique, inverse = torch.unique(vectors.detach().float().cpu(), dim=0, return_inverse=True)
    unique = unique.to(next(model.parameters()).device)
    plan = _plan(task)
    values = torch.empty(unique.shape[0], len(plan.entries), dtype=torch.float64)
    entries = torch.tensor(plan.entries, dtype=torch.long).reshape(-1, 3)
    keeps = torch.tensor(plan.keeps, dtype=torch.long)
    # one-token continuations are all read at the prompt's last position: the normaliser cancels
    single = not full_vocab and all(k == 1 for k in plan.keeps) and all(j == 0 for _, j, _ in plan.entries)
    columns = torch.unique(entries[:, 2]) if single else None
    bar = tqdm(
        total=unique.shape[0] * len(plan.rows),
        desc=f"steering {label or f'{unique.shape[0]} vectors'} x {len(plan.rows)} prompts ({positions})",
        unit="row",
        disable=not progress,
    )
    for start in range(0, len(plan.rows), batch_size):
        stop = min(start + batch_size, len(plan.rows))
        reuse = reuse_prefix and unique.shape[0] > 1
        batch = _Rows(model, layer, task, plan.rows[start:stop], plan.keeps[start:stop], positions, reuse)
        # the entries read from these rows: batch row, kept position and token
        sel = ((entries[:, 0] >= start) & (entries[:, 0] < stop)).nonzero().flatten()
        e_row = entries[sel, 0] - start
        e_pos, e_tok = batch.n_keep - keeps[entries[sel, 0]] + entries[sel, 1], entries[sel, 2]
        if columns is not None:
            e_tok = torch.searchsorted(columns, e_tok)
        for v0 in range(0, unique.shape[0], vectors_per_batch):
            chunk = unique[v0 : v0 + vectors_per_batch]
            logits = batch.logits(chunk, columns)
            picked = logits[:, e_row, e_pos, e_tok]
            if columns is None:
                picked = picked - logits.logsumexp(dim=-1)[:, e_row, e_pos]
            values[v0 : v0 + chunk.shape[0], sel] = picked.double().cpu()
            bar.update(chunk.shape[0] * (stop - start))
    bar.close()
    return _prompt_scores(plan, values)[inverse]


def item_scores(task: BehaviourTask, prompt_scores: Tensor) -> Tensor:
    """Average the copies of each item: ``[k, n_prompts]`` -> ``[k, n_items]`` (items sorted by id)."""
    _, merged = cluster_mean(prompt_scores.T, torch.tensor(task.units))
    return merged.T.contiguous()


def score_items(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    vector: Tensor | None = None,
    *,
    positions: SteerPositions = "answer",
    batch_size: int = 16,
    progress: bool = False,
) -> Tensor:
    """Per-prompt behaviour scores ``[n_prompts]`` (float64) with ``vector [d_model]`` added after ``layer``.

    One plain (full) forward per batch of prompts, steering ``positions`` (see :func:`score_grid`);
    ``vector=None`` scores the plain model.
    """
    vectors = None if vector is None else vector.reshape(1, -1)
    grid = score_grid(
        model,
        task,
        layer,
        vectors,
        positions=positions,
        batch_size=batch_size,
        reuse_prefix=False,
        progress=progress,
    )
    return grid[0]


def group_mean(values: Tensor, groups: Sequence[int]) -> float:
    """Mean of per-group means of ``values`` ``[n]`` (each group weighs the same)."""
    if len(groups) != values.shape[0]:
        raise ValueError(f"groups must have {values.shape[0]} entries, got {len(groups)}")
    return float(stats_group_mean(values.double(), groups))


@dataclass(frozen=True)
class ItemScoreFn:
    """The per-item score function of the retention check (``diagnostics.retention.ScoreFn``).

    Called with an added vector ``u [d_model]`` it returns one score per item ``[n_items]`` (copies
    averaged); ``score_batch(us [k, d_model])`` scores several vectors in shared forwards.
    """

    model: nn.Module = field(repr=False)
    """The causal LM."""
    task: BehaviourTask = field(repr=False)
    """The held-out prompts."""
    layer: int
    """Decoder block whose output is steered."""
    batch_size: int = 16
    """Prompt rows per batch."""
    vectors_per_batch: int = 8
    """Vectors stacked into one forward."""
    progress: bool = False
    """Show a progress bar per batched call."""
    positions: SteerPositions = "answer"
    """Steered positions: ``answer`` (from each prompt's last token on) or ``all`` (:func:`score_grid`)."""

    def __post_init__(self) -> None:
        validate_positions(self.positions)

    @property
    def item_groups(self) -> tuple[int, ...] | None:
        """Group of each item for group-balanced means, or None (see ``BehaviourTask.item_groups``)."""
        return self.task.item_groups

    def score_batch(self, us: Tensor, *, label: str | None = None) -> Tensor:
        """Per-item scores ``[k, n_items]`` (float64) with each of ``us [k, d_model]`` added.

        ``label`` names what is scored in the progress bar (e.g. "40 random directions x 5 multipliers").
        """
        grid = score_grid(
            self.model,
            self.task,
            self.layer,
            us,
            positions=self.positions,
            batch_size=self.batch_size,
            vectors_per_batch=self.vectors_per_batch,
            progress=self.progress,
            label=label,
        )
        return item_scores(self.task, grid)

    def __call__(self, u: Tensor) -> Tensor:
        """Per-item scores ``[n_items]`` with ``u [d_model]`` added."""
        return self.score_batch(u.reshape(1, -1))[0]


@overload
def make_score_fn(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    *,
    positions: SteerPositions = ...,
    batch_size: int = ...,
    per_item: Literal[True] = ...,
    vectors_per_batch: int = ...,
    progress: bool = ...,
) -> ItemScoreFn: ...
@overload
def make_score_fn(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    *,
    positions: SteerPositions = ...,
    batch_size: int = ...,
    per_item: Literal[False],
    vectors_per_batch: int = ...,
    progress: bool = ...,
) -> Callable[[Tensor], float]: ...
def make_score_fn(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    *,
    positions: SteerPositions = "answer",
    batch_size: int = 16,
    per_item: bool = True,
    vectors_per_batch: int = 8,
    progress: bool = False,
) -> Callable[[Tensor], float] | ItemScoreFn:
    """The ``ScoreFn`` of the retention check with ``u`` (the multiplied vector ``[d_model]``) added.

    By default an :class:`ItemScoreFn`: one score per held-out item (the item is the unit of the slopes'
    standard errors and the ratio intervals) and batched scoring of many vectors over a prefix computed
    once. ``positions`` are the steered positions (:func:`score_grid`; ``answer`` is CAA's convention).
    ``per_item=False`` returns the group-balanced mean score as a float instead (no interval can be
    drawn from it, so the retention check then reports no verdict).
    """
    layer = validate_layer(model, layer)
    positions = validate_positions(positions)
    if per_item:
        return ItemScoreFn(
            model,
            task,
            layer,
            batch_size=batch_size,
            vectors_per_batch=vectors_per_batch,
            progress=progress,
            positions=positions,
        )

    def score_fn(u: Tensor) -> float:
        scores = score_items(model, task, layer, u, positions=positions, batch_size=batch_size)
        return group_mean(scores, task.groups)

    return score_fn
