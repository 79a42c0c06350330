"""Resampled steering vectors: the item as the unit, for the intervals and nulls of the geometric checks.

A CAA vector is a mean over items of pair differences, so its sampling noise is that of the mean:
a bootstrap over items gives draws ``v* = v + (mean* - mean)`` (the shift keeps a vector that is not
exactly the plain mean, e.g. a letter-balanced one, centred where it is), and flipping the sign of
whole items gives label-shuffled vectors, what CAA returns when the labels carry no information.
Rows sharing an item id (an A/B item and its choice-swapped copy) are averaged first. The draws are
mapped into the SAE's input space and encoded once (:func:`encode_draws`) for every check that reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sae_steer_checks import stats
from sae_steer_checks.diagnostics.space import SaeSpace

__all__ = ["SaeDraws", "VectorDraws", "encode_draws", "item_differences", "vector_draws"]


@dataclass(frozen=True)
class VectorDraws:
    """Bootstrap and label-shuffled versions of a steering vector, all in the same space."""

    bootstrap: Tensor
    """``[n_boot, d]`` vectors from items resampled with replacement."""
    shuffled: Tensor
    """``[n_shuffled, d]`` vectors from items whose labels were flipped at random, rescaled to ``||v||``."""
    n_items: int
    """Number of independent items the draws resample."""
    weights: Tensor
    """``[n_boot, n_items]`` weight of each item in each bootstrap draw (rows sum to 1; float64), so any
    per-item figure can be resampled with the same items: ``weights @ per_item``."""


def item_differences(pos: Tensor, neg: Tensor, item_ids: Tensor | None = None) -> Tensor:
    """Pair differences ``pos - neg`` averaged within items: ``[n_items, d]`` (float64).

    Args:
        pos: Positive activations ``[n_pairs, d]``.
        neg: Negative activations ``[n_pairs, d]``, paired row by row with ``pos``.
        item_ids: Item of each pair ``[n_pairs]``; None means every pair is its own item.

    Returns:
        One averaged difference per item, in the order of the sorted item ids.
    """
    diffs = pos.to(torch.float64) - neg.to(torch.float64)
    if item_ids is None:
        return diffs
    _, means = stats.cluster_mean(diffs, torch.as_tensor(item_ids, dtype=torch.long))
    return means


def vector_draws(
    vector: Tensor,
    diffs: Tensor,
    *,
    n_boot: int = 300,
    n_shuffled: int = 32,
    generator: torch.Generator | int | None = None,
) -> VectorDraws:
    """Bootstrap and label-shuffled draws of ``vector`` from the per-item differences ``diffs``.

    Args:
        vector: The steering vector ``[d]``.
        diffs: Per-item pair differences ``[n_items, d]`` (see :func:`item_differences`).
        n_boot: Bootstrap draws (items resampled with replacement).
        n_shuffled: Label-shuffled draws (each item's difference times a random sign).
        generator: Generator or integer seed (None: seed 0).

    Returns:
        A :class:`VectorDraws` in float32.
    """
    if diffs.ndim != 2 or diffs.shape[1] != vector.shape[-1]:
        raise ValueError(f"diffs must be [n_items, {vector.shape[-1]}], got {list(diffs.shape)}")
    n = int(diffs.shape[0])
    if n < 2:
        raise ValueError(f"diffs must hold at least 2 items to resample, got {n}")
    gen = stats.as_generator(generator)
    d = diffs.to(torch.float64)
    mean = d.mean(0)
    weights = stats.resample_weights(n, n_boot, gen)
    boot = vector.to(torch.float64) + (weights @ d - mean)
    shuffled = (stats.label_flips(n_shuffled, n, gen) @ d) / n
    target = float(vector.to(torch.float64).norm())
    shuffled = shuffled * (target / shuffled.norm(dim=1, keepdim=True).clamp_min(1e-30))
    return VectorDraws(
        bootstrap=boot.to(torch.float32), shuffled=shuffled.to(torch.float32), n_items=n, weights=weights
    )


@dataclass(frozen=True)
class SaeDraws:
    """:class:`VectorDraws` in the SAE's input space, with their codes under the SAE's own convention."""

    bootstrap: Tensor
    """``[n_boot, d_in]`` bootstrap draws of v in the SAE's input space."""
    bootstrap_codes: Tensor
    """``[n_boot, d_sae]`` their SAE codes (float32, CPU)."""
    shuffled: Tensor
    """``[n_shuffled, d_in]`` label-shuffled vectors of v's norm in the SAE's input space."""
    shuffled_codes: Tensor
    """``[n_shuffled, d_sae]`` their SAE codes (float32, CPU)."""
    weights: Tensor
    """``[n_boot, n_items]`` weight of each item in each bootstrap draw (see :class:`VectorDraws`)."""


def encode_draws(space: SaeSpace, draws: VectorDraws | SaeDraws) -> SaeDraws:
    """``draws`` mapped into ``space`` and encoded (an :class:`SaeDraws` is returned as it is)."""
    if isinstance(draws, SaeDraws):
        return draws
    bootstrap, shuffled = space.to_sae(draws.bootstrap), space.to_sae(draws.shuffled)
    return SaeDraws(
        bootstrap=bootstrap,
        bootstrap_codes=space.encode(bootstrap),
        shuffled=shuffled,
        shuffled_codes=space.encode(shuffled),
        weights=draws.weights,
    )
