"""Behaviour tasks: the token ids a behaviour score reads, for A/B items or free-form openings.

An A/B task scores each prompt by the logit of the matching letter minus the other letter; a
free-form task scores each opening by the log-odds of positive over negative target continuations.
A task remembers which prompts are copies of one item (an A/B item and its choice-swapped copy), so
per-item scores average the copies and the item stays the unit of every test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sae_steer_checks.data.prompts import PromptFormat, ab_pairs, expand_ab_items, tokenize
from sae_steer_checks.data.schema import ABItem, FreeformDataset, FreeformItem
from sae_steer_checks.lm.readout import pad_token_id, tokenize_pairs

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["BehaviourTask", "ab_task", "behaviour_task", "completion_task", "freeform_task", "training_task"]

Tokens = tuple[int, ...]


@dataclass(frozen=True)
class BehaviourTask:
    """Prepared token ids for scoring a behaviour; build with ``ab_task`` or ``freeform_task``."""

    kind: str
    """``"ab"`` or ``"freeform"``."""
    prefixes: tuple[Tokens, ...]
    """Token ids of each prompt, ending right before the scored token(s)."""
    positive: tuple[tuple[Tokens, ...], ...]
    """Per prompt, the continuations that show the behaviour (A/B: the matching letter)."""
    negative: tuple[tuple[Tokens, ...], ...]
    """Per prompt, the continuations that do not (A/B: the other letter)."""
    groups: tuple[int, ...]
    """Group of each prompt; groups get equal weight (A/B: 0 = matching on A, 1 = on B)."""
    pad_id: int = field(default=0, repr=False)
    """Token id used for padding (masked out)."""
    item_ids: tuple[int, ...] = ()
    """Item of each prompt (a choice-swapped copy shares its original's); empty: one item per prompt."""

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
        if self.item_ids and len(self.item_ids) != n:
            raise ValueError(
                f"item_ids must have one entry per prompt ({n}) or none, got {len(self.item_ids)}"
            )

    def __len__(self) -> int:
        return len(self.prefixes)

    @property
    def units(self) -> tuple[int, ...]:
        """Item of each prompt (``item_ids``, or ``0..n-1`` when every prompt is its own item)."""
        return self.item_ids or tuple(range(len(self.prefixes)))

    @property
    def n_items(self) -> int:
        """Number of distinct items (the unit of every standard error)."""
        return len(set(self.units))

    @property
    def item_groups(self) -> tuple[int, ...] | None:
        """Group of each item (sorted by item id), or None when items need no group weighting.

        None when there is one group, or when every item's copies cover every group (an A/B item with
        its swapped copy is balanced by itself, so the plain mean over items is already balanced).
        """
        by_item: dict[int, set[int]] = {}
        for unit, group in zip(self.units, self.groups, strict=True):
            by_item.setdefault(unit, set()).add(group)
        all_groups = set(self.groups)
        if len(all_groups) < 2 or all(g == all_groups for g in by_item.values()):
            return None
        if any(len(g) > 1 for g in by_item.values()):
            raise ValueError("items must either cover every group with their copies or sit in one group")
        return tuple(next(iter(by_item[i])) for i in sorted(by_item))


def ab_task(
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[ABItem],
    *,
    swap: bool = False,
    prompt_format: PromptFormat = "auto",
    chat_template: bool | None = None,
) -> BehaviourTask:
    """A/B scoring task: the prompt up to ``"("`` and the matching vs other letter token.

    ``swap=True`` adds each item's choice-swapped copy (same item id). Prompt formats as in
    ``data.prompts``. Raises ``ValueError`` unless both letters are matching for some prompt (the
    equal weighting needs both groups).
    """
    if not items or not all(isinstance(i, ABItem) for i in items):
        raise ValueError("items must be a non-empty sequence of ABItem objects")
    expanded, ids = expand_ab_items(items, swap=swap)
    groups = tuple(0 if i.matching == "A" else 1 for i in expanded)
    if len(set(groups)) < 2:
        raise ValueError(
            f"items must match on both letters for the equal weighting, got {sum(g == 0 for g in groups)}"
            f" A-matching and {sum(g == 1 for g in groups)} B-matching; pass swap=True"
        )
    pairs = ab_pairs(items, tokenizer, swap=swap, prompt_format=prompt_format, chat_template=chat_template)
    split = tokenize_pairs(tokenizer, pairs)
    return BehaviourTask(
        kind="ab",
        prefixes=tuple(tuple(p) for p, _, _ in split),
        positive=tuple(((pos[0],),) for _, pos, _ in split),
        negative=tuple(((neg[0],),) for _, _, neg in split),
        groups=groups,
        pad_id=pad_token_id(tokenizer),
        item_ids=ids,
    )


def freeform_task(
    tokenizer: PreTrainedTokenizerBase,
    data: FreeformDataset | Sequence[FreeformItem] | Sequence[str],
    positive_targets: Sequence[str] | None = None,
    negative_targets: Sequence[str] | None = None,
) -> BehaviourTask:
    """Free-form task: openings scored by log-odds of positive over negative target continuations.

    ``data`` is a ``FreeformDataset`` (its targets are used unless given), free-form items or plain
    prompt strings (then both target lists are required). Each opening is one item.
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
    prefixes: list[Tokens] = []
    pos: list[tuple[Tokens, ...]] = []
    neg: list[tuple[Tokens, ...]] = []
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
        pad_id=pad_token_id(tokenizer),
    )


def completion_task(
    tokenizer: PreTrainedTokenizerBase, data: FreeformDataset | Sequence[FreeformItem]
) -> BehaviourTask:
    """Free-form openings scored by the log-odds of each one's own positive over its negative completion.

    The completions are the extraction pairs' (``FreeformItem.positive``/``negative``), not the
    dataset's target words, so a task built from training items shares no scored word with the
    held-out :func:`freeform_task`. Each opening is one item.
    """
    items = data.items if isinstance(data, FreeformDataset) else tuple(data)
    if not items or not all(isinstance(i, FreeformItem) for i in items):
        raise ValueError("data must be a FreeformDataset or a non-empty sequence of FreeformItem objects")
    prefixes: list[Tokens] = []
    pos: list[tuple[Tokens, ...]] = []
    neg: list[tuple[Tokens, ...]] = []
    for item in items:
        prefix = tokenize(tokenizer, item.prompt)
        prefixes.append(tuple(prefix))
        for completion, out in ((item.positive, pos), (item.negative, neg)):
            full = tokenize(tokenizer, item.prompt + completion)
            if full[: len(prefix)] != prefix or len(full) == len(prefix):
                raise ValueError(
                    f"completion {completion!r} does not tokenise as a continuation of {item.prompt!r}"
                )
            out.append((tuple(full[len(prefix) :]),))
    return BehaviourTask(
        kind="freeform",
        prefixes=tuple(prefixes),
        positive=tuple(pos),
        negative=tuple(neg),
        groups=(0,) * len(prefixes),
        pad_id=pad_token_id(tokenizer),
    )


def training_task(
    tokenizer: PreTrainedTokenizerBase,
    data: FreeformDataset | Sequence[ABItem],
    *,
    prompt_format: PromptFormat = "auto",
) -> BehaviourTask:
    """The task a steering vector is trained on, from the extraction (training) items.

    A/B items give :func:`ab_task` with each item's choice-swapped copy, as held-out items are scored;
    a ``FreeformDataset`` gives :func:`completion_task` (its own completions, the held-out target
    words kept apart, as extraction keeps them).
    """
    if isinstance(data, FreeformDataset):
        return completion_task(tokenizer, data)
    return ab_task(tokenizer, data, swap=True, prompt_format=prompt_format)


def behaviour_task(
    tokenizer: PreTrainedTokenizerBase,
    data: FreeformDataset | Sequence[ABItem],
    *,
    prompt_format: PromptFormat = "auto",
) -> BehaviourTask:
    """The behaviour task of held-out ``data`` of either format, as a full check scores it.

    A ``FreeformDataset`` gives :func:`freeform_task`; A/B items give :func:`ab_task` with each item's
    choice-swapped copy (``swap=True``), so both letters are matching and the item stays the unit.
    """
    if isinstance(data, FreeformDataset):
        return freeform_task(tokenizer, data)
    return ab_task(tokenizer, data, swap=True, prompt_format=prompt_format)
