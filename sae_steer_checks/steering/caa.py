"""Contrastive Activation Addition: the steering vector and the activations it is made of.

Read at the answer letter, each A/B pair's difference is largely "A minus B" or "B minus A". When the
matching answers are unevenly split between the letters, the plain mean keeps part of that letter
direction. Extraction is therefore balanced by default: every A/B item is also run with its choices
swapped (``balance="swap"``), or letter groups get equal weight (``"weights"``); ``"none"`` is raw CAA.
``letter_confound`` measures how much of a vector is letter direction.

Read at the letters, an A-matching pair's difference is ``behaviour + letter`` and a B-matching one's
``behaviour - letter``, so the letter direction is half the difference of the two groups' mean
differences and the balanced behaviour half their sum; the raw mean carries ``(n_A - n_B) / n`` of the
letter direction. With ``balance="swap"`` an item and its swapped copy are one unit: ``item_ids`` ties
them, and ``item_differences()`` gives one row per item for every test and interval downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from sae_steer_checks.data.prompts import PromptFormat, ab_pairs, expand_ab_items, freeform_pairs
from sae_steer_checks.data.schema import ABItem, ContrastivePair, FreeformDataset
from sae_steer_checks.lm.models import validate_layer
from sae_steer_checks.lm.readout import read_pairs, read_pairs_layers
from sae_steer_checks.stats import cluster_mean

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "BALANCE_MODES",
    "CAAResult",
    "LetterConfound",
    "extract_caa",
    "extract_caa_layers",
    "letter_confound",
]

Balance = Literal["auto", "swap", "weights", "none"]
BALANCE_MODES = ("auto", "swap", "weights", "none")


@dataclass(frozen=True)
class LetterConfound:
    """How much of a mean-difference vector is the answer-letter direction."""

    n_a_matching: int
    """Items as given (not swapped copies) whose matching answer is (A)."""
    n_b_matching: int
    """Items as given (not swapped copies) whose matching answer is (B)."""
    letter_direction: Tensor = field(repr=False)
    """Half the A-matching minus B-matching mean pair difference: the letter effect, ``[d_model]``."""
    raw_vector: Tensor = field(repr=False)
    """Plain mean of positive minus negative over the items as given (raw CAA), ``[d_model]``."""
    balanced_vector: Tensor = field(repr=False)
    """Half the sum of the A-matching and B-matching mean differences (the behaviour), ``[d_model]``."""
    cosine_raw: float
    """Cosine of ``raw_vector`` with ``letter_direction``."""
    cosine_balanced: float
    """Cosine of ``balanced_vector`` with ``letter_direction``."""
    imbalance_norm: float
    """Norm of ``raw_vector - balanced_vector`` (the part due to the uneven letter split)."""
    imbalance_share: float
    """``imbalance_norm / ||raw_vector||``."""

    def to_dict(self) -> dict[str, float | int]:
        """Scalar fields as a JSON-ready dict."""
        return {
            "n_a_matching": self.n_a_matching,
            "n_b_matching": self.n_b_matching,
            "letter_direction_norm": float(self.letter_direction.norm()),
            "raw_norm": float(self.raw_vector.norm()),
            "balanced_norm": float(self.balanced_vector.norm()),
            "cosine_raw": self.cosine_raw,
            "cosine_balanced": self.cosine_balanced,
            "imbalance_norm": self.imbalance_norm,
            "imbalance_share": self.imbalance_share,
        }


@dataclass(frozen=True)
class CAAResult:
    """A CAA steering vector with the activations it was computed from."""

    vector: Tensor = field(repr=False)
    """The steering vector ``[d_model]`` (float32)."""
    positive: Tensor = field(repr=False)
    """Activations at the read token of the positive prompts, ``[n_pairs, d_model]``."""
    negative: Tensor = field(repr=False)
    """Activations at the read token of the negative prompts, ``[n_pairs, d_model]``."""
    layer: int
    """Decoder block whose output was read."""
    balance: str
    """Balancing used: ``"swap"``, ``"weights"`` or ``"none"``."""
    positive_letters: tuple[str | None, ...] = ()
    """Letter read on the positive side of each pair (``None`` for free-form pairs)."""
    confound: LetterConfound | None = None
    """The letter confound of the pairs, when both letters occur among them."""
    item_ids: tuple[int, ...] = ()
    """Item of each pair (a choice-swapped copy shares its original's); empty: one item per pair."""

    def __post_init__(self) -> None:
        if self.positive.shape != self.negative.shape or self.positive.ndim != 2:
            raise ValueError(
                f"positive and negative must both be [n_pairs, d_model], got "
                f"{list(self.positive.shape)} and {list(self.negative.shape)}"
            )
        if self.vector.shape != self.positive.shape[1:]:
            raise ValueError(f"vector must be [{self.positive.shape[1]}], got {list(self.vector.shape)}")
        if self.balance not in ("swap", "weights", "none"):
            raise ValueError(f"balance must be 'swap', 'weights' or 'none', got {self.balance!r}")
        if self.item_ids and len(self.item_ids) != self.positive.shape[0]:
            raise ValueError(
                f"item_ids must have one entry per pair ({self.positive.shape[0]}) or none, "
                f"got {len(self.item_ids)}"
            )

    @property
    def units(self) -> tuple[int, ...]:
        """Item of each pair (``item_ids``, or ``0..n_pairs-1``)."""
        return self.item_ids or tuple(range(self.positive.shape[0]))

    def item_tensor(self) -> Tensor:
        """:attr:`units` as a ``[n_pairs]`` long tensor (what ``run_checks(item_ids=)`` takes)."""
        return torch.tensor(self.units, dtype=torch.long)

    @property
    def n_items(self) -> int:
        """Number of distinct items: the unit of every test, standard error and interval."""
        return len(set(self.units))

    def item_differences(self) -> Tensor:
        """Pair differences with each item's copies averaged, ``[n_items, d_model]`` (items sorted by id).

        The rows are independent units for the leaning test, bootstraps and standard errors; the
        ``2 * n`` rows of a swapped set are not (an item and its copy share the question).
        """
        _, merged = cluster_mean(self.positive.float() - self.negative.float(), torch.tensor(self.units))
        return merged.to(self.positive.dtype)

    @property
    def norm(self) -> float:
        """L2 norm of the steering vector."""
        return float(self.vector.norm())

    def to_dict(self) -> dict[str, Any]:
        """Summary (no tensors) as a JSON-ready dict."""
        return {
            "layer": self.layer,
            "balance": self.balance,
            "n_pairs": int(self.positive.shape[0]),
            "n_items": self.n_items,
            "vector_norm": self.norm,
            "mean_activation_norm": float(torch.cat([self.positive, self.negative]).norm(dim=1).mean()),
            "letter_confound": None if self.confound is None else self.confound.to_dict(),
        }


def _cosine(a: Tensor, b: Tensor) -> float:
    denom = float(a.norm() * b.norm())
    return float(a @ b) / denom if denom > 0 else 0.0


def letter_confound(
    positive: Tensor,
    negative: Tensor,
    positive_letters: Sequence[str | None],
    *,
    original: Sequence[bool] | Tensor | None = None,
) -> LetterConfound:
    """Split the mean difference of A/B pairs into the behaviour, the letter direction and the imbalance.

    With ``d_A``, ``d_B`` the mean pair differences over A-matching and B-matching pairs, the letter
    direction is ``(d_A - d_B) / 2`` and the balanced vector ``(d_A + d_B) / 2``. The raw vector is the
    plain mean over the pairs flagged ``original`` (default: all): with swapped copies in the set, pass
    the items as given there, so the raw figures describe raw CAA on the data as given.

    Args:
        positive: activations of the positive prompts ``[n_pairs, d_model]``.
        negative: activations of the negative prompts ``[n_pairs, d_model]``.
        positive_letters: letter read on the positive side of each pair.
        original: which pairs are items as given (not swapped copies) ``[n_pairs]`` bool, or None.

    Returns:
        A :class:`LetterConfound`. Raises ``ValueError`` unless both letters occur among all pairs.
    """
    if positive.shape != negative.shape or positive.ndim != 2:
        raise ValueError(
            f"positive and negative must both be [n_pairs, d_model], got {list(positive.shape)} "
            f"and {list(negative.shape)}"
        )
    n = positive.shape[0]
    if len(positive_letters) != n:
        raise ValueError(f"positive_letters must have one letter per pair ({n}), got {len(positive_letters)}")
    is_a = torch.tensor([letter == "A" for letter in positive_letters])
    is_b = torch.tensor([letter == "B" for letter in positive_letters])
    if int(is_a.sum()) == 0 or int(is_b.sum()) == 0:
        raise ValueError(
            f"positive_letters must contain both 'A' and 'B', got {int(is_a.sum())} A and {int(is_b.sum())} B"
        )
    given = (
        torch.ones(n, dtype=torch.bool) if original is None else torch.as_tensor(original, dtype=torch.bool)
    )
    if given.shape != (n,) or not bool((given & (is_a | is_b)).any()):
        raise ValueError(
            f"original must flag [{n}] pairs, at least one of them lettered, got {list(given.shape)}"
        )
    diff = positive.float() - negative.float()
    mean_a, mean_b = diff[is_a].mean(dim=0), diff[is_b].mean(dim=0)
    letter = 0.5 * (mean_a - mean_b)
    balanced = 0.5 * (mean_a + mean_b)
    raw = diff[given & (is_a | is_b)].mean(dim=0)
    imbalance = raw - balanced
    raw_norm = float(raw.norm())
    return LetterConfound(
        n_a_matching=int((given & is_a).sum()),
        n_b_matching=int((given & is_b).sum()),
        letter_direction=letter,
        raw_vector=raw,
        balanced_vector=balanced,
        cosine_raw=_cosine(raw, letter),
        cosine_balanced=_cosine(balanced, letter),
        imbalance_norm=float(imbalance.norm()),
        imbalance_share=float(imbalance.norm()) / raw_norm if raw_norm > 0 else 0.0,
    )


def _as_pairs(
    data: Sequence[ABItem] | Sequence[ContrastivePair] | FreeformDataset,
    tokenizer: PreTrainedTokenizerBase,
    balance: Balance,
    prompt_format: PromptFormat,
    chat_template: bool | None,
) -> tuple[list[ContrastivePair], str, tuple[int, ...]]:
    """The pairs to read, the balancing used and each pair's item id."""
    if balance not in BALANCE_MODES:
        raise ValueError(f"balance must be one of {BALANCE_MODES}, got {balance!r}")
    if isinstance(data, FreeformDataset):
        data = freeform_pairs(data)
    if not data:
        raise ValueError("data must hold at least one item or pair, got none")
    if all(isinstance(d, ABItem) for d in data):
        mode = "swap" if balance == "auto" else balance
        ab = [d for d in data if isinstance(d, ABItem)]
        swap = mode == "swap"
        pairs = ab_pairs(ab, tokenizer, swap=swap, prompt_format=prompt_format, chat_template=chat_template)
        return pairs, mode, expand_ab_items(ab, swap=swap)[1]
    if not all(isinstance(d, ContrastivePair) for d in data):
        raise TypeError("data must be ABItem objects, ContrastivePair objects or a FreeformDataset")
    pairs = [d for d in data if isinstance(d, ContrastivePair)]
    lettered = all(p.positive_letter is not None for p in pairs)
    if balance == "swap":
        raise ValueError("balance='swap' needs ABItem data (choices to swap); use 'weights' for pairs")
    if balance == "weights" and not lettered:
        raise ValueError("balance='weights' needs every pair's positive_letter; use 'none'")
    mode = ("weights" if lettered else "none") if balance == "auto" else balance
    return pairs, mode, tuple(range(len(pairs)))


def extract_caa(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    data: Sequence[ABItem] | Sequence[ContrastivePair] | FreeformDataset,
    layer: int,
    *,
    balance: Balance = "auto",
    batch_size: int = 16,
    prompt_format: PromptFormat = "auto",
    chat_template: bool | None = None,
    share_prefix: bool = True,
    progress: bool = False,
) -> CAAResult:
    """CAA steering vector at decoder block ``layer``, read at the last token of each prompt.

    ``data`` is A/B items (prompts end in the answer letter), contrastive pairs, or a free-form set.
    ``balance="auto"`` swaps choices for A/B items, weights letters equally for lettered pairs, and
    takes the plain mean otherwise. ``prompt_format`` (``"plain"``, ``"chat"``, ``"auto"``; see
    ``data.prompts``) builds A/B prompts; ``chat_template`` is its older spelling. Returns a
    ``CAAResult`` with ``vector [d_model]``, the positive and negative activations ``[n_pairs, d_model]``
    (float32, CPU) and each pair's item id (a swapped copy shares its original's). The letter confound
    is computed with the items as given as the raw figures (see :func:`letter_confound`).
    """
    layer = validate_layer(model, layer)
    pairs, mode, item_ids = _as_pairs(data, tokenizer, balance, prompt_format, chat_template)
    positive, negative = read_pairs(
        model,
        tokenizer,
        pairs,
        layer,
        batch_size=batch_size,
        share_prefix=share_prefix,
        progress=progress,
    )
    return _caa_result(positive, negative, pairs, mode, item_ids, layer)


def extract_caa_layers(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    data: Sequence[ABItem] | Sequence[ContrastivePair] | FreeformDataset,
    layers: Sequence[int],
    *,
    balance: Balance = "auto",
    batch_size: int = 16,
    prompt_format: PromptFormat = "auto",
    progress: bool = False,
) -> dict[int, CAAResult]:
    """:func:`extract_caa` at every block of ``layers`` from one forward per prompt batch.

    Each prompt runs in full (no shared prefix) up to the last of ``layers``, and every layer is read
    from that one forward. Returns ``layer -> CAAResult``, each as ``extract_caa(..., layer,
    share_prefix=False)`` gives it.
    """
    wanted = sorted({validate_layer(model, layer) for layer in layers})
    pairs, mode, item_ids = _as_pairs(data, tokenizer, balance, prompt_format, None)
    reads = read_pairs_layers(model, tokenizer, pairs, wanted, batch_size=batch_size, progress=progress)
    return {
        layer: _caa_result(positive, negative, pairs, mode, item_ids, layer)
        for layer, (positive, negative) in reads.items()
    }


def _caa_result(
    positive: Tensor,
    negative: Tensor,
    pairs: Sequence[ContrastivePair],
    mode: str,
    item_ids: tuple[int, ...],
    layer: int,
) -> CAAResult:
    """The ``CAAResult`` of pairs read at ``layer``: the (balanced) vector and the letter confound."""
    letters = tuple(p.positive_letter for p in pairs)
    confound = None
    if "A" in letters and "B" in letters:
        # the first pair of each item is the item as given; later ones are its swapped copy
        original = [i == 0 or item_ids[i] != item_ids[i - 1] for i in range(len(item_ids))]
        confound = letter_confound(positive, negative, letters, original=original)
    if mode == "weights":
        if confound is None:
            raise ValueError("balance='weights' needs pairs matching on both letters, got one letter")
        vector = confound.balanced_vector.clone()
    else:
        vector = (positive - negative).mean(dim=0)
    return CAAResult(
        vector=vector,
        positive=positive,
        negative=negative,
        layer=layer,
        balance=mode,
        positive_letters=letters,
        confound=confound,
        item_ids=item_ids,
    )
