"""Negative-leaning features: features that fire more on the negative prompts than the positive.

The steering vector writes negatively along such features, and an SAE, whose coefficients are
non-negative, cannot express that. The raw fraction of negative-leaning features is reported as
in the study, next to the fraction among features whose leaning survives a paired t-test with
Benjamini-Hochberg false-discovery-rate control: features unrelated to the behaviour split about
evenly by noise alone and pull the raw fraction toward one half whatever the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from sae_steer_checks._validate import validate_batch, validate_fraction
from sae_steer_checks.sae.protocol import SAELike, as_float32, encode_activations, validate_sae

__all__ = [
    "LeaningCheck",
    "benjamini_hochberg",
    "leaning_check",
    "leaning_from_acts",
    "paired_t_pvalues",
]


@dataclass(frozen=True)
class LeaningCheck:
    """Per-feature leaning toward the positive or the negative prompt set."""

    mean_pos: Tensor
    """Mean activation on the positive prompts ``[d_sae]``."""
    mean_neg: Tensor
    """Mean activation on the negative prompts ``[d_sae]``."""
    firing_rate: Tensor
    """Share of all prompts (both sets) on which each feature fires ``[d_sae]``."""
    p_values: Tensor
    """Two-sided paired t-test p-values ``[d_sae]`` (float64; 1 for inactive features)."""
    q_values: Tensor
    """Benjamini-Hochberg adjusted p-values over the active features ``[d_sae]`` (1 if inactive)."""
    alpha: float
    """False-discovery-rate level."""
    n_pairs: int
    """Number of (positive, negative) pairs."""
    dropped_by_encoder: tuple[int, ...]
    """Significant negative-leaning features with coefficient 0 in SAE(v), most negative first."""

    def __post_init__(self) -> None:
        validate_fraction(self.alpha, "alpha")
        if self.n_pairs < 1:
            raise ValueError(f"n_pairs must be >= 1, got {self.n_pairs}")

    @property
    def active(self) -> Tensor:
        """Features firing on at least one prompt of either set ``[d_sae]`` (bool)."""
        return self.firing_rate > 0

    @property
    def negative(self) -> Tensor:
        """Active features more active on the negative set ``[d_sae]`` (bool)."""
        return self.active & (self.mean_neg > self.mean_pos)

    @property
    def significant(self) -> Tensor:
        """Active features whose leaning is significant at FDR ``alpha`` ``[d_sae]`` (bool)."""
        return self.active & (self.q_values <= self.alpha)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with the stable keys of the report's ``negative_leaning`` section."""
        n_active = int(self.active.sum())
        n_negative = int(self.negative.sum())
        sig = self.significant
        n_sig = int(sig.sum())
        n_sig_neg = int((sig & self.negative).sum())
        return {
            "fraction": n_negative / n_active if n_active else 0.0,
            "n_active": n_active,
            "n_negative": n_negative,
            "significant_fraction": n_sig_neg / n_sig if n_sig else 0.0,
            "n_significant": n_sig,
            "n_significant_negative": n_sig_neg,
            "alpha": self.alpha,
            "n_pairs": self.n_pairs,
            "dropped_by_encoder": list(self.dropped_by_encoder),
        }


def paired_t_pvalues(diffs: Tensor) -> Tensor:
    """Two-sided paired t-test p-values ``[d]`` (float64) per column of ``diffs [n_pairs, d]``.

    A column of identical differences gives p = 1 when they are zero and p = 0 otherwise; with a
    single pair nothing can be tested and every p-value is 1.
    """
    d = diffs.to(torch.float64)
    n = d.shape[0]
    if n < 2:
        return torch.ones(d.shape[1], dtype=torch.float64)
    mean = d.mean(dim=0)
    sd = d.std(dim=0, unbiased=True)
    p = torch.ones_like(mean)
    varying = sd > 0
    t = (mean[varying] / (sd[varying] / n**0.5)).abs().numpy()
    p[varying] = torch.from_numpy(2.0 * stats.t.sf(t, n - 1)).clamp(max=1.0)
    p[~varying & (mean != 0)] = 0.0
    return p


def benjamini_hochberg(p_values: Tensor) -> Tensor:
    """Benjamini-Hochberg adjusted p-values (q-values) ``[m]`` float64 of ``p_values [m]``."""
    if p_values.numel() == 0:
        return p_values.to(torch.float64)
    q = stats.false_discovery_control(p_values.to(torch.float64).numpy(), method="bh")
    return torch.from_numpy(np.asarray(q, dtype=np.float64))


def leaning_from_acts(
    acts_pos: Tensor,
    acts_neg: Tensor,
    *,
    alpha: float = 0.05,
    vector_acts: Tensor | None = None,
) -> LeaningCheck:
    """Leaning of every feature from paired feature activations ``[n_pairs, d_sae]`` each.

    ``vector_acts [d_sae]`` (SAE(v)) is used to list the negative-leaning features it drops.
    """
    if acts_pos.shape != acts_neg.shape or acts_pos.ndim != 2:
        raise ValueError(
            f"acts_pos and acts_neg must both have shape [n_pairs, d_sae], got "
            f"{list(acts_pos.shape)} and {list(acts_neg.shape)}"
        )
    alpha = validate_fraction(alpha, "alpha")
    pos, neg = acts_pos.to(torch.float32), acts_neg.to(torch.float32)
    mean_pos, mean_neg = pos.mean(dim=0), neg.mean(dim=0)
    firing = ((pos > 0).sum(dim=0) + (neg > 0).sum(dim=0)).to(torch.float32) / (2 * pos.shape[0])
    active = firing > 0
    p_values = torch.ones(pos.shape[1], dtype=torch.float64)
    q_values = torch.ones(pos.shape[1], dtype=torch.float64)
    p_values[active] = paired_t_pvalues((pos - neg)[:, active])
    q_values[active] = benjamini_hochberg(p_values[active])
    dropped: tuple[int, ...] = ()
    if vector_acts is not None:
        lean = mean_pos - mean_neg
        mask = active & (q_values <= alpha) & (lean < 0) & (vector_acts.to(torch.float32) <= 0)
        ids = torch.nonzero(mask).flatten()
        order = torch.sort(lean[ids], stable=True).indices
        dropped = tuple(int(i) for i in ids[order].tolist())
    return LeaningCheck(
        mean_pos=mean_pos,
        mean_neg=mean_neg,
        firing_rate=firing,
        p_values=p_values,
        q_values=q_values,
        alpha=alpha,
        n_pairs=int(pos.shape[0]),
        dropped_by_encoder=dropped,
    )


def leaning_check(
    sae: SAELike,
    pos: Tensor,
    neg: Tensor,
    *,
    alpha: float = 0.05,
    vector_acts: Tensor | None = None,
    batch_size: int = 4096,
) -> LeaningCheck:
    """Encode paired positive and negative activations ``[n_pairs, d_in]`` and compare features.

    Returns:
        A :class:`LeaningCheck`; row i of ``pos`` and of ``neg`` must come from the same pair.
    """
    d_in, _ = validate_sae(sae)
    pos = validate_batch(pos, d_in, "pos")
    neg = validate_batch(neg, d_in, "neg")
    if pos.shape[0] != neg.shape[0]:
        raise ValueError(
            f"pos and neg must hold the same number of paired rows, got {pos.shape[0]} and {neg.shape[0]}"
        )
    sae = as_float32(sae)
    acts_pos = encode_activations(sae, pos, batch_size=batch_size)
    acts_neg = encode_activations(sae, neg, batch_size=batch_size)
    return leaning_from_acts(acts_pos, acts_neg, alpha=alpha, vector_acts=vector_acts)
