"""Spurious positive coefficients of SAE(v) and sign conflicts, measured as shares of a pre-activation change.

A rare partner feature p gets a positive coefficient in SAE(v) although v has nothing to do with it
when its decoder row is anti-aligned with a negative-leaning anchor a (``cos(d_p, d_a) < threshold``)
and v writes negatively along a. The claim is quantitative: p's pre-activation change
``pre_p(v) - pre_p(0) = v . W_enc[:, p]`` is split into the part carried by v's component along the
anchor's unit decoder direction, ``(v . d_a) (d_a . W_enc[:, p])``, and the rest; the partner is
*spurious* only when that share is at least ``min_share`` (default one half: most of the push comes
from the anchor's direction). Partners with an anti-aligned anchor below that share are listed apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["SignConflict", "SpuriousCheck", "SpuriousProjection", "spurious_check"]


@dataclass(frozen=True)
class SpuriousProjection:
    """A positive SAE(v) coefficient on a rare feature, explained by an anti-aligned partner."""

    feature: int
    """The feature with the positive coefficient."""
    explained_by: int
    """The negative-leaning partner on which v projects negatively."""
    cosine: float
    """Cosine between the two decoder rows."""
    value: float
    """SAE(v) coefficient of ``feature``."""
    partner_projection: float
    """Projection of v on the partner's unit decoder row (negative)."""
    share: float = math.nan
    """Share of ``feature``'s pre-activation change carried by v's component along the partner."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "feature": self.feature,
            "explained_by": self.explained_by,
            "cosine": self.cosine,
            "value": self.value,
            "partner_projection": self.partner_projection,
            "share": self.share,
        }


@dataclass(frozen=True)
class SignConflict:
    """A feature with a positive SAE(v) coefficient although v points against it."""

    feature: int
    """Feature id."""
    value: float
    """SAE(v) coefficient (positive)."""
    projection: float
    """Projection of v on the feature's unit decoder row."""
    signed_coefficient: float
    """Coefficient in the signed decomposition (0 if not selected)."""


@dataclass(frozen=True)
class SpuriousCheck:
    """Positive SAE(v) coefficients on rare features, sorted by what explains them."""

    threshold: float
    """Cosine below which a partner counts as anti-aligned."""
    rare_rate: float
    """Features firing on at most this share of prompts count as rare."""
    spurious: tuple[SpuriousProjection, ...]
    """Rare positives whose pre-activation change comes mostly (>= ``min_share``) from an anchor."""
    bias_explained: tuple[int, ...]
    """Rare positives already on in SAE(0) that v does not push up enough through an anchor."""
    unexplained: tuple[int, ...]
    """Rare positives explained by neither."""
    sign_conflicts: tuple[SignConflict, ...]
    """Positive SAE(v) coefficients with a negative projection or signed coefficient."""
    min_share: float = 0.5
    """Share of the pre-activation change from the anchor's direction that makes a partner spurious."""
    below_share: tuple[SpuriousProjection, ...] = ()
    """Rare positives with an anti-aligned anchor whose share is below ``min_share``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "spurious": [s.to_dict() for s in self.spurious],
            "below_share": [s.to_dict() for s in self.below_share],
            "min_share": self.min_share,
            "bias_explained": list(self.bias_explained),
            "unexplained": list(self.unexplained),
            "sign_conflicts": [
                {
                    "feature": c.feature,
                    "value": c.value,
                    "projection": c.projection,
                    "signed_coefficient": c.signed_coefficient,
                }
                for c in self.sign_conflicts
            ],
            "rare_rate": self.rare_rate,
        }


def spurious_check(
    W_dec: Tensor,
    W_enc: Tensor,
    vector: Tensor,
    acts_vector: Tensor,
    acts_zero: Tensor,
    firing_rate: Tensor,
    *,
    negative: Tensor | None = None,
    signed_coefficients: Tensor | None = None,
    threshold: float = -0.5,
    rare_rate: float = 0.05,
    min_share: float = 0.5,
) -> SpuriousCheck:
    """Explain every positive SAE(v) coefficient on a rare feature, and list sign conflicts.

    A rare feature i with ``SAE(v)_i > 0`` and ``v @ W_enc[:, i] > 0`` has *candidate anchors*: every
    j with ``cos(d_i, d_j) < threshold`` that is negative-leaning (``negative[j]``, any feature if
    ``negative`` is None) and on which v projects negatively. For each, the share of i's
    pre-activation change carried by v's component along ``d_j`` is
    ``(v . d_j)(d_j . W_enc[:, i]) / (v . W_enc[:, i])``; the anchor with the largest share is named,
    and i is *spurious* when that share is at least ``min_share`` (else listed in ``below_share``).
    A rare positive not spurious is *bias-explained* when ``SAE(0)_i > 0``, else *unexplained*.

    Args:
        W_dec: Decoder ``[d_sae, d_in]``.
        W_enc: Encoder ``[d_in, d_sae]``.
        vector: Steering vector in the SAE's input space ``[d_in]``.
        acts_vector: SAE(v) ``[d_sae]``.
        acts_zero: SAE(0) ``[d_sae]``.
        firing_rate: Share of prompts on which each feature fires ``[d_sae]``.
        negative: Bool mask ``[d_sae]`` of negative-leaning features.
        signed_coefficients: Dense signed decomposition of v ``[d_sae]``, for sign conflicts.
        threshold: Decoder cosine below which a pair is anti-aligned.
        rare_rate: Features firing on at most this share of prompts are rare.
        min_share: Share in [0, 1] that makes a partner spurious (0: every anchored partner).

    Returns:
        A :class:`SpuriousCheck`; every list is sorted by feature id, conflicts by projection.
    """
    if not (0.0 <= min_share <= 1.0):
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")
    v = vector.detach().to(torch.float32).cpu()
    U = torch.nn.functional.normalize(W_dec.detach().to(torch.float32).cpu(), dim=1)
    enc = W_enc.detach().to(torch.float32).cpu()
    proj = U @ v
    pre_change = v @ enc
    f_v, f_0 = acts_vector.detach().float().cpu(), acts_zero.detach().float().cpu()
    eligible = proj < 0 if negative is None else negative.cpu() & (proj < 0)
    candidates = torch.nonzero((f_v > 0) & (firing_rate.cpu() <= rare_rate)).flatten().tolist()
    spurious, weak, bias_explained, unexplained = [], [], [], []
    for i in candidates:
        found = None
        if float(pre_change[i]) > 0:
            cos = U @ U[i]
            ok = eligible & (cos < threshold)
            ok[i] = False
            if bool(ok.any()):
                ids = torch.nonzero(ok).flatten()
                shares = proj[ids] * (U[ids] @ enc[:, i]) / pre_change[i]
                best = int(torch.argmax(shares))
                j = int(ids[best])
                found = SpuriousProjection(
                    i, j, float(cos[j]), float(f_v[i]), float(proj[j]), float(shares[best])
                )
        if found is not None and found.share >= min_share:
            spurious.append(found)
            continue
        if found is not None:
            weak.append(found)
        if float(f_0[i]) > 0:
            bias_explained.append(i)
        else:
            unexplained.append(i)
    signed = torch.zeros_like(f_v) if signed_coefficients is None else signed_coefficients.float().cpu()
    conflict = torch.nonzero((f_v > 0) & ((proj < 0) | (signed < 0))).flatten()
    order = torch.argsort(proj[conflict], stable=True)
    conflicts = tuple(
        SignConflict(int(i), float(f_v[i]), float(proj[i]), float(signed[i]))
        for i in conflict[order].tolist()
    )
    return SpuriousCheck(
        threshold=float(threshold),
        rare_rate=float(rare_rate),
        spurious=tuple(spurious),
        bias_explained=tuple(bias_explained),
        unexplained=tuple(unexplained),
        sign_conflicts=conflicts,
        min_share=float(min_share),
        below_share=tuple(weak),
    )
