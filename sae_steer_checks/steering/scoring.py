"""Behaviour scores under steering, one per prompt and per item, for many steering vectors at once.

A/B: the logit of the matching letter minus the other (the log-softmax normaliser cancels). Free-form:
the log of the mean probability of the positive continuations minus that of the negative ones.

A sweep scores the same prompts under many added vectors (vectors x multipliers), steered at the
``answer`` positions (from each prompt's last token on, CAA's convention) or at ``all`` positions.
Steering at block ``L`` leaves blocks ``0..L`` unchanged, and with ``answer`` every earlier position
too, so :func:`score_grid` computes that once per batch of prompts (``steering.batching``) and replays
only the later blocks at the steered positions for each vector, stacking several vectors into the batch
dimension. Identical added vectors (multiplier 0
of every vector) are scored once. When every continuation is a single token (A/B tasks, one-token
targets) all of a prompt's continuations are read at one position, so the log-softmax normaliser
cancels from the score: the output head then computes only the target tokens' logits, not the whole
vocabulary (262k columns on Gemma).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast, overload

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from sae_steer_checks.lm.models import model_d_model, validate_layer
from sae_steer_checks.stats import cluster_mean
from sae_steer_checks.stats import group_mean as stats_group_mean
from sae_steer_checks.steering.batching import Rows as _Rows

# the sweep's building blocks under their former names, for callers within the package
from sae_steer_checks.steering.batching import forward_logits as _forward_logits  # noqa: F401
from sae_steer_checks.steering.batching import head_columns as _head_columns  # noqa: F401
from sae_steer_checks.steering.batching import plan_rows as _plan
from sae_steer_checks.steering.batching import prompt_scores as _prompt_scores
from sae_steer_checks.steering.batching import steer_rows as _steer_rows  # noqa: F401
from sae_steer_checks.steering.tasks import BehaviourTask

__all__ = [
    "STEER_POSITIONS",
    "STEER_POSITIONS_RULES",
    "ItemScoreFn",
    "SteerPositions",
    "chunk_size",
    "group_mean",
    "item_scores",
    "make_score_fn",
    "score_grid",
    "score_items",
    "validate_positions",
]


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


@torch.no_grad()
def score_grid(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    vectors: Tensor | None = None,
    *,
    positions: SteerPositions = "answer",
    batch_size: int = 16,
    vectors_per_batch: int | None = None,
    reuse_prefix: bool = True,
    full_vocab: bool = False,
    progress: bool = False,
    label: str | None = None,
    prefixes: dict[tuple[int, int], _Rows] | None = None,
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
        vectors_per_batch: vectors stacked into one forward (``batch_size * vectors_per_batch`` rows); None
            chooses per batch (:func:`chunk_size`: up to 512 rows and 16,384 held positions).
        reuse_prefix: compute what no vector changes once per batch and run only the rest per vector
            (``answer``: the unsteered prefix's keys and values; ``all``: blocks ``0..layer``); the same
            values as full forwards, to float tolerance. False runs every forward in full.
        full_vocab: compute the whole vocabulary's logits even where only the targets' are needed.
        progress: show a progress bar (vectors x prompts, with the time left).
        label: what the vectors are, for the progress bar (default: "<k> vectors").
        prefixes: a store of each batch's work done once (the prefix cache and blocks ``0..layer``), kept
            between calls on the same model, task, layer, positions and ``batch_size`` so a later sweep
            does not recompute it (``ItemScoreFn`` keeps one); None computes it afresh.
    """
    if not isinstance(task, BehaviourTask):
        raise TypeError(f"task must be a BehaviourTask, got {type(task).__name__}")
    layer = validate_layer(model, layer)
    positions = validate_positions(positions)
    if batch_size < 1 or (vectors_per_batch is not None and vectors_per_batch < 1):
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
        reuse = reuse_prefix and (unique.shape[0] > 1 or prefixes is not None)
        batch = None if prefixes is None or not reuse else prefixes.get((start, stop))
        if batch is None:
            batch = _Rows(model, layer, task, plan.rows[start:stop], plan.keeps[start:stop], positions, reuse)
            if prefixes is not None and reuse:
                prefixes[(start, stop)] = batch
        # the entries read from these rows: batch row, kept position and token
        sel = ((entries[:, 0] >= start) & (entries[:, 0] < stop)).nonzero().flatten()
        e_row = entries[sel, 0] - start
        e_pos, e_tok = batch.n_keep - keeps[entries[sel, 0]] + entries[sel, 1], entries[sel, 2]
        if columns is not None:
            e_tok = torch.searchsorted(columns, e_tok)
        per_chunk = vectors_per_batch or chunk_size(stop - start, batch.tokens_per_row)
        for v0 in range(0, unique.shape[0], per_chunk):
            chunk = unique[v0 : v0 + per_chunk]
            logits = batch.logits(chunk, columns)
            picked = logits[:, e_row, e_pos, e_tok]
            if columns is None:
                picked = picked - logits.logsumexp(dim=-1)[:, e_row, e_pos]
            values[v0 : v0 + chunk.shape[0], sel] = picked.double().cpu()
            bar.update(chunk.shape[0] * (stop - start))
    bar.close()
    return _prompt_scores(plan, values)[inverse]


def chunk_size(rows: int, tokens: int, *, max_rows: int = 512, max_tokens: int = 16_384) -> int:
    """Vectors per forward for a batch of ``rows`` prompt rows, each vector holding ``tokens`` per row.

    A forward runs ``rows * c`` rows. Each holds ``tokens`` positions: over a cached prefix, its own copy
    of the prefix's keys and values in the blocks after the steered layer; without one, the whole row.
    ``c`` is the largest value with at most ``max_rows`` rows and ``max_tokens`` positions held in all (at
    least 1, at most 64). On a CPU a forward of a few hundred single-token rows runs its matrix products
    near full speed and smaller ones do not; the token bound keeps a chunk's memory in check.
    """
    return max(1, min(64, max_rows // max(rows, 1), max_tokens // max(rows * tokens, 1)))


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
    vectors_per_batch: int | None = None
    """Vectors stacked into one forward (None: chosen per batch, :func:`chunk_size`)."""
    progress: bool = False
    """Show a progress bar per batched call."""
    positions: SteerPositions = "answer"
    """Steered positions: ``answer`` (from each prompt's last token on) or ``all`` (:func:`score_grid`)."""
    _prefixes: dict[tuple[int, int], _Rows] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Each batch's work done once (prefix cache, blocks ``0..layer``), shared by every call: the model and
    task are fixed for the function's lifetime (memory: one prefix cache per batch of prompts)."""

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
            prefixes=self._prefixes,
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
    vectors_per_batch: int | None = ...,
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
    vectors_per_batch: int | None = ...,
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
    vectors_per_batch: int | None = None,
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
