"""Contrastive Activation Addition: the steering vector and the activations it is made of.

Read at the answer letter, each A/B pair's difference is largely "A minus B" or "B minus A". When the
matching answers are unevenly split between the letters, the plain mean keeps part of that letter
direction. Extraction is therefore balanced by default: every A/B item is also run with its choices
swapped (``balance="swap"``), or letter groups get equal weight (``"weights"``); ``"none"`` is raw CAA.
``letter_confound`` measures how much of a vector is letter direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from sae_steer_checks.data.prompts import ab_pairs, freeform_pairs
from sae_steer_checks.data.schema import ABItem, ContrastivePair, FreeformDataset
from sae_steer_checks.lm.models import validate_layer
from sae_steer_checks.lm.readout import read_pairs

__all__ = ["BALANCE_MODES", "CAAResult", "LetterConfound", "extract_caa", "letter_confound"]

Balance = Literal["auto", "swap", "weights", "none"]
BALANCE_MODES = ("auto", "swap", "weights", "none")


@dataclass(frozen=True)
class LetterConfound:
    """How much of a mean-difference vector is the answer-letter direction."""

    n_a_matching: int
    """Pairs whose matching answer is (A)."""
    n_b_matching: int
    """Pairs whose matching answer is (B)."""
    letter_direction: Tensor = field(repr=False)
    """Mean activation read at letter A minus that read at B, ``[d_model]``."""
    raw_vector: Tensor = field(repr=False)
    """Plain mean of positive minus negative, ``[d_model]``."""
    balanced_vector: Tensor = field(repr=False)
    """Mean with the A-matching and B-matching groups weighted equally, ``[d_model]``."""
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
            "vector_norm": self.norm,
            "mean_activation_norm": float(torch.cat([self.positive, self.negative]).norm(dim=1).mean()),
            "letter_confound": None if self.confound is None else self.confound.to_dict(),
        }


def _cosine(a: Tensor, b: Tensor) -> float:
    denom = float(a.norm() * b.norm())
    return float(a @ b) / denom if denom > 0 else 0.0


def letter_confound(
    positive: Tensor, negative: Tensor, positive_letters: Sequence[str | None]
) -> LetterConfound:
    """Split the mean difference of A/B pairs into its balanced part and the letter imbalance.

    ``positive``/``negative`` are ``[n_pairs, d_model]``; ``positive_letters[i]`` is the letter read on
    the positive side of pair ``i``. Raises ``ValueError`` unless both letters occur.
    """
    if positive.shape != negative.shape or positive.ndim != 2:
        raise ValueError(
            f"positive and negative must both be [n_pairs, d_model], got {list(positive.shape)} "
            f"and {list(negative.shape)}"
        )
    if len(positive_letters) != positive.shape[0]:
        raise ValueError(
            f"positive_letters must have one letter per pair ({positive.shape[0]}), "
            f"got {len(positive_letters)}"
        )
    is_a = torch.tensor([letter == "A" for letter in positive_letters])
    is_b = torch.tensor([letter == "B" for letter in positive_letters])
    n_a, n_b = int(is_a.sum()), int(is_b.sum())
    if n_a == 0 or n_b == 0:
        raise ValueError(f"positive_letters must contain both 'A' and 'B', got {n_a} A and {n_b} B")
    pos, neg = positive.float(), negative.float()
    diff = pos - neg
    raw = diff[is_a | is_b].mean(dim=0)
    balanced = 0.5 * diff[is_a].mean(dim=0) + 0.5 * diff[is_b].mean(dim=0)
    read_a = torch.cat([pos[is_a], neg[is_b]])
    read_b = torch.cat([neg[is_a], pos[is_b]])
    letter = read_a.mean(dim=0) - read_b.mean(dim=0)
    imbalance = raw - balanced
    raw_norm = float(raw.norm())
    return LetterConfound(
        n_a_matching=n_a,
        n_b_matching=n_b,
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
    tokenizer: Any,
    balance: Balance,
    chat_template: bool | None,
) -> tuple[list[ContrastivePair], str]:
    if balance not in BALANCE_MODES:
        raise ValueError(f"balance must be one of {BALANCE_MODES}, got {balance!r}")
    if isinstance(data, FreeformDataset):
        data = freeform_pairs(data)
    if not data:
        raise ValueError("data must hold at least one item or pair, got none")
    if all(isinstance(d, ABItem) for d in data):
        mode = "swap" if balance == "auto" else balance
        ab = [d for d in data if isinstance(d, ABItem)]
        return ab_pairs(ab, tokenizer, swap=mode == "swap", chat_template=chat_template), mode
    if not all(isinstance(d, ContrastivePair) for d in data):
        raise TypeError("data must be ABItem objects, ContrastivePair objects or a FreeformDataset")
    pairs = [d for d in data if isinstance(d, ContrastivePair)]
    lettered = all(p.positive_letter is not None for p in pairs)
    if balance == "swap":
        raise ValueError("balance='swap' needs ABItem data (choices to swap); use 'weights' for pairs")
    if balance == "weights" and not lettered:
        raise ValueError("balance='weights' needs every pair's positive_letter; use 'none'")
    mode = ("weights" if lettered else "none") if balance == "auto" else balance
    return pairs, mode


def extract_caa(
    model: nn.Module,
    tokenizer: Any,
    data: Sequence[ABItem] | Sequence[ContrastivePair] | FreeformDataset,
    layer: int,
    *,
    balance: Balance = "auto",
    batch_size: int = 16,
    chat_template: bool | None = None,
    share_prefix: bool = True,
    progress: bool = False,
) -> CAAResult:
    """CAA steering vector at decoder block ``layer``, read at the last token of each prompt.

    ``data`` is A/B items (prompts end in the answer letter), contrastive pairs, or a free-form set.
    ``balance="auto"`` swaps choices for A/B items, weights letters equally for lettered pairs, and
    takes the plain mean otherwise. Returns a ``CAAResult`` with ``vector [d_model]`` and the positive
    and negative activations ``[n_pairs, d_model]`` (float32, CPU).
    """
    layer = validate_layer(model, layer)
    pairs, mode = _as_pairs(data, tokenizer, balance, chat_template)
    positive, negative = read_pairs(
        model,
        tokenizer,
        pairs,
        layer,
        batch_size=batch_size,
        share_prefix=share_prefix,
        progress=progress,
    )
    letters = tuple(p.positive_letter for p in pairs)
    confound = None
    if "A" in letters and "B" in letters:
        confound = letter_confound(positive, negative, letters)
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
    )
