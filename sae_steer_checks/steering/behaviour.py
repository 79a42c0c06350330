"""Behaviour scores under steering: A/B letter preference and free-form target log-probabilities.

An A/B task scores held-out items by the logit of the matching letter minus the other letter (and the
two-way probability of the matching letter), averaging A-matching and B-matching items with equal
weight so that a uniform shift toward one letter is not taken for steering. A free-form task scores
openings by the log-odds of positive over negative target continuations. ``sweep`` fits the
steerability slope (score per unit multiplier) with its standard error across items.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from sae_steer_checks.data.prompts import ab_prompt, tokenize
from sae_steer_checks.data.schema import ABItem, ContrastivePair, FreeformDataset, FreeformItem, swap_choices
from sae_steer_checks.lm.hooks import add_to_residual
from sae_steer_checks.lm.models import validate_layer
from sae_steer_checks.lm.readout import tokenize_pairs

__all__ = [
    "BehaviourTask",
    "Steerability",
    "SweepResult",
    "ab_task",
    "fit_slope",
    "freeform_task",
    "group_mean",
    "make_score_fn",
    "random_like",
    "relative_multipliers",
    "score_items",
    "steerability",
    "sweep",
]


@dataclass(frozen=True)
class BehaviourTask:
    """Prepared token ids for scoring a behaviour; build with ``ab_task`` or ``freeform_task``."""

    kind: str
    """``"ab"`` or ``"freeform"``."""
    prefixes: tuple[tuple[int, ...], ...]
    """Token ids of each prompt, ending right before the scored token(s)."""
    positive: tuple[tuple[tuple[int, ...], ...], ...]
    """Per prompt, the continuations that show the behaviour (A/B: the matching letter)."""
    negative: tuple[tuple[tuple[int, ...], ...], ...]
    """Per prompt, the continuations that do not (A/B: the other letter)."""
    groups: tuple[int, ...]
    """Group of each prompt; groups get equal weight (A/B: 0 = matching on A, 1 = on B)."""
    pad_id: int = field(default=0, repr=False)
    """Token id used for padding (masked out)."""

    def __post_init__(self) -> None:
        if self.kind not in ("ab", "freeform"):
            raise ValueError(f"kind must be 'ab' or 'freeform', got {self.kind!r}")
        n = len(self.prefixes)
        if n == 0 or not all(self.prefixes):
            raise ValueError("prefixes must hold at least one non-empty prompt")
        if not len(self.positive) == len(self.negative) == len(self.groups) == n:
            raise ValueError(
                f"positive, negative and groups must have one entry per prompt ({n}), got "
                f"{len(self.positive)}, {len(self.negative)}, {len(self.groups)}"
            )
        for name in ("positive", "negative"):
            if not all(conts and all(conts) for conts in getattr(self, name)):
                raise ValueError(f"{name} must give every prompt at least one non-empty continuation")

    def __len__(self) -> int:
        return len(self.prefixes)


def _pad_id(tokenizer: Any) -> int:
    value = getattr(tokenizer, "pad_token_id", None)
    return value if isinstance(value, int) else 0


def ab_task(
    tokenizer: Any,
    items: Sequence[ABItem],
    *,
    swap: bool = False,
    chat_template: bool | None = None,
) -> BehaviourTask:
    """A/B scoring task: the prompt up to ``"("`` and the matching vs other letter token.

    ``swap=True`` adds each item's choice-swapped copy. Raises ``ValueError`` unless both letters are
    matching for some item (the equal weighting needs both groups).
    """
    expanded = [x for item in items for x in ((item, swap_choices(item)) if swap else (item,))]
    if not expanded or not all(isinstance(i, ABItem) for i in expanded):
        raise ValueError("items must be a non-empty sequence of ABItem objects")
    groups = tuple(0 if i.matching == "A" else 1 for i in expanded)
    if len(set(groups)) < 2:
        raise ValueError(
            f"items must match on both letters for the equal weighting, got {sum(g == 0 for g in groups)}"
            f" A-matching and {sum(g == 1 for g in groups)} B-matching; pass swap=True"
        )
    pairs = []
    for item in expanded:
        head = ab_prompt(tokenizer, item.question, chat_template=chat_template)
        pairs.append(ContrastivePair(head + item.matching, head + item.non_matching, item.matching))
    split = tokenize_pairs(tokenizer, pairs)
    return BehaviourTask(
        kind="ab",
        prefixes=tuple(tuple(p) for p, _, _ in split),
        positive=tuple(((pos[0],),) for _, pos, _ in split),
        negative=tuple(((neg[0],),) for _, _, neg in split),
        groups=groups,
        pad_id=_pad_id(tokenizer),
    )


def freeform_task(
    tokenizer: Any,
    data: FreeformDataset | Sequence[FreeformItem] | Sequence[str],
    positive_targets: Sequence[str] | None = None,
    negative_targets: Sequence[str] | None = None,
) -> BehaviourTask:
    """Free-form task: openings scored by log-odds of positive over negative target continuations.

    ``data`` is a ``FreeformDataset`` (its targets are used unless given), free-form items or plain
    prompt strings (then both target lists are required).
    """
    if isinstance(data, FreeformDataset):
        prompts = [i.prompt for i in data.items]
        positive_targets = positive_targets or data.positive_targets
        negative_targets = negative_targets or data.negative_targets
    else:
        prompts = [d.prompt if isinstance(d, FreeformItem) else d for d in data]
    if not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError("data must give at least one non-empty prompt")
    if not positive_targets or not negative_targets:
        raise ValueError("positive_targets and negative_targets must both be non-empty")
    prefixes: list[tuple[int, ...]] = []
    pos: list[tuple[tuple[int, ...], ...]] = []
    neg: list[tuple[tuple[int, ...], ...]] = []
    for prompt in prompts:
        prefix = tokenize(tokenizer, prompt)
        prefixes.append(tuple(prefix))
        for targets, out in ((positive_targets, pos), (negative_targets, neg)):
            conts = []
            for target in targets:
                full = tokenize(tokenizer, prompt + target)
                if full[: len(prefix)] != prefix or len(full) == len(prefix):
                    raise ValueError(f"target {target!r} does not tokenise as a continuation of {prompt!r}")
                conts.append(tuple(full[len(prefix) :]))
            out.append(tuple(conts))
    return BehaviourTask(
        kind="freeform",
        prefixes=tuple(prefixes),
        positive=tuple(pos),
        negative=tuple(neg),
        groups=(0,) * len(prefixes),
        pad_id=_pad_id(tokenizer),
    )


def _continuation_logprobs(
    model: nn.Module, rows: list[tuple[int, ...]], keep: list[int], pad: int
) -> list[Tensor]:
    """Log-softmax over the vocabulary at the last ``keep[i]`` positions of each row (left-padded)."""
    device = next(model.parameters()).device
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    kwargs: dict[str, Any] = {"use_cache": False}
    n_keep = max(keep)
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = n_keep  # the head runs only where it is read
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        **kwargs,
    )
    logits = out.logits[:, -n_keep:].float().log_softmax(dim=-1)
    return [logits[i, n_keep - k :].cpu() for i, k in enumerate(keep)]


@torch.no_grad()
def score_items(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    vector: Tensor | None = None,
    *,
    batch_size: int = 16,
    progress: bool = False,
) -> Tensor:
    """Per-prompt behaviour scores ``[n_prompts]`` with ``vector`` added after block ``layer``.

    A/B: logit of the matching letter minus the other. Free-form: log of the mean probability of the
    positive continuations minus that of the negative ones. ``vector=None`` scores the plain model.
    """
    if not isinstance(task, BehaviourTask):
        raise TypeError(f"task must be a BehaviourTask, got {type(task).__name__}")
    layer = validate_layer(model, layer)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # one row per distinct (prefix + all but the last continuation token); single-token targets share
    # the bare prefix row, so a task with one-token targets costs one forward per prompt
    row_of: dict[tuple[tuple[int, ...], int], int] = {}
    for i, prefix in enumerate(task.prefixes):
        for cont in (*task.positive[i], *task.negative[i]):
            row_of.setdefault((prefix + cont[:-1], len(prefix)), len(row_of))
    rows = [row for row, _ in row_of]
    keeps = [len(row) - n_prefix + 1 for row, n_prefix in row_of]
    logprobs: list[Tensor] = []
    steering = add_to_residual(model, layer, vector) if vector is not None else nullcontext()
    with steering:
        for start in tqdm(range(0, len(rows), batch_size), desc="scoring", disable=not progress):
            chunk = slice(start, start + batch_size)
            logprobs.extend(_continuation_logprobs(model, rows[chunk], keeps[chunk], task.pad_id))
    scores = torch.empty(len(task), dtype=torch.float64)
    for i, prefix in enumerate(task.prefixes):
        sides = []
        for conts in (task.positive[i], task.negative[i]):
            per_cont = torch.empty(len(conts), dtype=torch.float64)
            for c, cont in enumerate(conts):
                lp = logprobs[row_of[(prefix + cont[:-1], len(prefix))]]
                per_cont[c] = sum(float(lp[j, tok]) for j, tok in enumerate(cont))
            # log of the mean probability over the continuations of one side
            sides.append(torch.logsumexp(per_cont, 0) - torch.log(torch.tensor(len(conts) * 1.0)))
        # for A/B the log-softmax normaliser cancels: this is the logit difference
        scores[i] = sides[0] - sides[1]
    return scores


def make_score_fn(
    model: nn.Module, task: BehaviourTask, layer: int, *, batch_size: int = 16
) -> Callable[[Tensor], float]:
    """The ``ScoreFn`` of the retention check: mean behaviour score with ``u`` added at ``layer``.

    ``u`` is the already multiplied steering vector ``[d_model]``; the score is the group-balanced mean
    of ``score_items`` (logit difference for A/B tasks, log-odds for free-form ones).
    """
    layer = validate_layer(model, layer)

    def score_fn(u: Tensor) -> float:
        return group_mean(score_items(model, task, layer, u, batch_size=batch_size), task.groups)

    return score_fn


def group_mean(values: Tensor, groups: Sequence[int]) -> float:
    """Mean of per-group means of ``values`` ``[n]`` (each group weighs the same)."""
    g = torch.tensor(list(groups))
    if g.shape[0] != values.shape[0]:
        raise ValueError(f"groups must have {values.shape[0]} entries, got {g.shape[0]}")
    means = [values[g == k].double().mean() for k in torch.unique(g)]
    return float(torch.stack(means).mean())


@dataclass(frozen=True)
class SweepResult:
    """Behaviour scores across a multiplier sweep and the fitted steerability slope."""

    multipliers: tuple[float, ...]
    """Multipliers of the vector, in sweep order."""
    scores: tuple[float, ...]
    """Group-balanced mean score at each multiplier (logit difference or log-odds)."""
    probs: tuple[float, ...]
    """Group-balanced mean two-way probability of the behaviour side (sigmoid of each item's score)."""
    slope: float
    """Steerability: least-squares slope of score against multiplier (mean of per-item slopes)."""
    slope_se: float
    """Standard error of ``slope`` across items (``nan`` when a group has a single item)."""
    intercept: float
    """Least-squares intercept of the group-balanced mean score."""
    item_scores: Tensor = field(repr=False)
    """Per-item scores ``[n_multipliers, n_items]``."""

    def to_dict(self) -> dict[str, Any]:
        """The sweep as a JSON-ready dict (without per-item scores)."""
        return {
            "multipliers": list(self.multipliers),
            "scores": list(self.scores),
            "probs": list(self.probs),
            "slope": self.slope,
            "slope_se": self.slope_se,
            "intercept": self.intercept,
        }


def relative_multipliers(
    vector_norm: float,
    activation_norm: float,
    fractions: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0),
) -> tuple[float, ...]:
    """Multipliers ``m`` with ``||m v|| = |f| * activation_norm`` for each fraction ``f`` (signed)."""
    if not vector_norm > 0 or not activation_norm > 0:
        raise ValueError(
            f"vector_norm and activation_norm must be > 0, got {vector_norm} and {activation_norm}"
        )
    return tuple(float(f) * activation_norm / vector_norm for f in fractions)


def fit_slope(
    multipliers: Sequence[float], item_scores: Tensor, groups: Sequence[int]
) -> tuple[float, float, float]:
    """``(slope, slope_se, intercept)`` of ``item_scores [n_mult, n_items]`` against multipliers.

    Each item gets its own least-squares slope; the slope is their group-balanced mean and its
    standard error comes from their spread within groups.
    """
    x = torch.tensor(list(multipliers), dtype=torch.float64)
    if x.ndim != 1 or x.shape[0] < 2 or float(x.std()) == 0.0:
        raise ValueError(f"multipliers must hold at least two distinct values, got {list(multipliers)}")
    y = item_scores.double()
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"item_scores must be [{x.shape[0]}, n_items], got {list(y.shape)}")
    xc = x - x.mean()
    slopes = (xc[:, None] * (y - y.mean(dim=0))).sum(dim=0) / (xc**2).sum()
    g = torch.tensor(list(groups))
    means, variances = [], []
    for k in torch.unique(g):
        s = slopes[g == k]
        means.append(s.mean())
        variances.append(s.var() / s.shape[0] if s.shape[0] > 1 else torch.tensor(float("nan")))
    slope = float(torch.stack(means).mean())
    se = float(torch.stack(variances).sum().sqrt()) / len(means)
    balanced = torch.stack([y[:, g == k].mean(dim=1) for k in torch.unique(g)]).mean(dim=0)
    intercept = float(balanced.mean() - slope * x.mean())
    return slope, se, intercept


def sweep(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    vector: Tensor,
    multipliers: Sequence[float],
    *,
    batch_size: int = 16,
    progress: bool = False,
) -> SweepResult:
    """Score ``task`` with ``m * vector`` added at ``layer`` for each multiplier and fit the slope."""
    rows = []
    for m in tqdm(list(multipliers), desc="multiplier sweep", disable=not progress):
        u = None if m == 0 else float(m) * vector
        rows.append(score_items(model, task, layer, u, batch_size=batch_size))
    item_scores = torch.stack(rows)
    slope, se, intercept = fit_slope(multipliers, item_scores, task.groups)
    return SweepResult(
        multipliers=tuple(float(m) for m in multipliers),
        scores=tuple(group_mean(r, task.groups) for r in item_scores),
        probs=tuple(group_mean(torch.sigmoid(r), task.groups) for r in item_scores),
        slope=slope,
        slope_se=se,
        intercept=intercept,
        item_scores=item_scores,
    )


def random_like(vector: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """A random direction (Gaussian, drawn on the CPU) with the norm, dtype and device of ``vector``."""
    direction = torch.randn(vector.shape, generator=generator, dtype=torch.float64)
    scaled = direction / direction.norm() * float(vector.double().norm())
    return scaled.to(dtype=vector.dtype, device=vector.device)


@dataclass(frozen=True)
class Steerability:
    """A vector's sweep beside sweeps of random vectors of equal norm."""

    vector: SweepResult
    """Sweep of the steering vector."""
    null: tuple[SweepResult, ...]
    """Sweeps of random vectors with the same norm."""
    null_slope: float
    """Mean slope of the random vectors."""
    null_slope_se: float
    """Standard error of ``null_slope`` (item spread plus spread across random directions)."""
    z: float
    """``(slope - null_slope) / sqrt(slope_se^2 + null_slope_se^2)``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of both sweeps and the comparison."""
        return {
            "vector": self.vector.to_dict(),
            "null": [n.to_dict() for n in self.null],
            "null_slope": self.null_slope,
            "null_slope_se": self.null_slope_se,
            "z": self.z,
        }


def steerability(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    vector: Tensor,
    multipliers: Sequence[float],
    *,
    n_random: int = 1,
    generator: torch.Generator | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> Steerability:
    """Sweep ``vector`` and ``n_random`` random vectors of equal norm; compare their slopes."""
    if n_random < 1:
        raise ValueError(f"n_random must be >= 1, got {n_random}")
    main = sweep(model, task, layer, vector, multipliers, batch_size=batch_size, progress=progress)
    null = tuple(
        sweep(
            model,
            task,
            layer,
            random_like(vector, generator=generator),
            multipliers,
            batch_size=batch_size,
            progress=progress,
        )
        for _ in range(n_random)
    )
    slopes = torch.tensor([n.slope for n in null], dtype=torch.float64)
    ses = torch.tensor([n.slope_se for n in null], dtype=torch.float64)
    null_var = float((ses**2).sum()) / n_random**2
    if n_random > 1:
        null_var += float(slopes.var()) / n_random
    null_slope = float(slopes.mean())
    denom = (main.slope_se**2 + null_var) ** 0.5
    return Steerability(
        vector=main,
        null=null,
        null_slope=null_slope,
        null_slope_se=null_var**0.5,
        z=(main.slope - null_slope) / denom if denom > 0 else float("nan"),
    )
