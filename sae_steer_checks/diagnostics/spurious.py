"""Spurious positive coefficients of SAE(v) and sign conflicts, measured as shares of a pre-activation change.

A rare partner feature p gets a positive coefficient in SAE(v) although v has nothing to do with it
when its decoder row is anti-aligned with a negative-leaning anchor a (``cos(d_p, d_a) < threshold``)
and v writes negatively along a. The claim is quantitative: p's pre-activation change
``pre_p(v) - pre_p(0) = v . W_enc[:, p]`` is split into the part carried by v's component along the
anchor's unit decoder direction, ``(v . d_a) (d_a . W_enc[:, p])``, and the rest; the partner is
*spurious* only when that share is at least ``min_share`` (default one half: most of the push comes
from the anchor's direction). Partners with an anti-aligned anchor below that share are listed apart.
The share is ``a / max(|a| + |r|, floor)`` with ``a`` the anchor's part and ``r`` the rest of the
change, so it stays in [0, 1] (the anchor's part of the total absolute push) even when the rest pulls
the other way, and the floor ``1e-3 ||v|| ||W_enc[:, p]||`` keeps a vanishing change from giving a
share of noise.

The key figure is the largest such share over SAE(v)'s positive rare coefficients (0 when none has an
anchor). It gets a bootstrap interval over items (SAE(v) recomputed for each resampled vector) and a
reference: the same figure for ordinary activations, inputs the SAE was trained on, where a partner
pushed up through its anchor is part of how the SAE encodes (the figure is computed on each activation
against SAE(0), as for v). Label-shuffled vectors of v's norm are reported beside it: a pair distorts
the code of any vector that points against the anchor, behaviour or not. The claim is about SAE(v)
of the vector at hand, so the verdict reads the exact figure; the bootstrap interval (each draw
re-estimating which features lean negative, the anchors' eligibility, from its resampled items;
basic, clipped to [0, 1]) says how far it moves with other items and is reported beside it. The
verdict (:attr:`SpuriousCheck.status`) says ``problem`` when the share exceeds ``min_share`` and the
reference's 95th percentile; ``fine`` when it stays at or below ``min_share``, or within the
reference's 95th percentile (ordinary activations show as much); ``inconclusive`` only when spurious
partners exist and there is no reference. :attr:`SpuriousCheck.reason` says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sae_steer_checks import stats
from sae_steer_checks.diagnostics.judged import Judged, Verdict
from sae_steer_checks.diagnostics.resample import SaeDraws
from sae_steer_checks.diagnostics.space import EncodedSample
from sae_steer_checks.stats.resampling import basic_interval

__all__ = [
    "SignConflict",
    "SpuriousCheck",
    "SpuriousProjection",
    "anchor_pairs",
    "largest_shares",
    "reference_shares",
    "spurious_check",
]


# A change smaller than this share of ||v|| ||W_enc[:, p]|| is too small to split into shares.
_FLOOR = 1e-3


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
class SpuriousCheck(Judged):
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
    max_share: float = 0.0
    """Largest anchor share over all rare positives of SAE(v) (0 when none has an anchor)."""
    share_interval: tuple[float, float] | None = None
    """95% bootstrap interval over items of ``max_share`` (None without paired activations)."""
    share_null: stats.NullSummary | None = None
    """``max_share`` of label-shuffled vectors of v's norm (None without paired activations)."""
    share_reference: stats.NullSummary | None = None
    """``max_share`` of ordinary activations (in-distribution inputs); None without them."""

    @property
    def share_bound(self) -> float:
        """What the interval's lower end must clear for ``problem``: ``min_share`` or the reference's q95."""
        q95 = self.share_reference.q95 if self.share_reference is not None else 0.0
        return max(self.min_share, q95)

    def _judge(self) -> tuple[Verdict, str]:
        share = f"{100 * self.min_share:.0f}%"
        if self.share_reference is None and self.spurious:
            return "inconclusive", "no in-distribution reference without ordinary activations"
        if self.max_share > self.share_bound:
            return "problem", (
                f"SAE(v)'s largest share exceeds {share} and the ordinary activations' 95th percentile"
            )
        if self.max_share <= self.min_share:
            return "fine", f"SAE(v)'s largest share stays at or below {share}"
        return "fine", (
            "SAE(v)'s largest share stays within the ordinary activations' 95th percentile: an anchor "
            "carries no more of the change than it does for inputs the SAE was trained on"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        null, ref = self.share_null, self.share_reference
        return {
            "max_share": self.max_share,
            "share_interval": None if self.share_interval is None else list(self.share_interval),
            "share_null": None if null is None else null.to_dict(),
            "share_reference": None if ref is None else ref.to_dict(),
            "share_bound": self.share_bound,
            "share_definition": "anchor part / (|anchor part| + |rest|) of the pre-activation change",
            "interval_method": "basic bootstrap over items (negative-leaning anchors re-estimated per draw)",
            "verdict": self.status,
            "reason": self.reason,
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
    draws: SaeDraws | None = None,
    code_diffs: Tensor | None = None,
    ordinary: EncodedSample | None = None,
) -> SpuriousCheck:
    """Explain every positive SAE(v) coefficient on a rare feature, list sign conflicts, and judge it.

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
        draws: Bootstrap draws of v and label-shuffled vectors of its norm in the SAE's input space,
            with their codes (``resample.encode_draws``): the key figure's interval and null.
        code_diffs: Per-item differences of the prompts' codes ``[n_items, d_sae]``, so that each
            bootstrap draw re-estimates from its own items which features lean negative (None:
            ``negative`` for every draw).
        ordinary: Ordinary activations with their codes: the key figure's in-distribution reference.

    Returns:
        A finished :class:`SpuriousCheck`; every list is sorted by feature id, conflicts by projection.
    """
    if not (0.0 <= min_share <= 1.0):
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")
    v = vector.detach().to(torch.float32).cpu()
    U = torch.nn.functional.normalize(W_dec.detach().to(torch.float32).cpu(), dim=1)
    enc = W_enc.detach().to(torch.float32).cpu()
    proj = U @ v
    pre_change = v @ enc
    floor = _FLOOR * float(v.norm()) * enc.norm(dim=0)
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
                part = proj[ids] * (U[ids] @ enc[:, i])
                shares = _bounded_share(part, pre_change[i] - part, floor[i])
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
    anchored = [p.share for p in (*spurious, *weak)]
    max_share = max([0.0, *anchored])
    pairs = anchor_pairs(W_dec, firing_rate, threshold=threshold, rare_rate=rare_rate)
    rule: dict[str, Any] = {"threshold": threshold, "rare_rate": rare_rate, "pairs": pairs}
    interval = null = reference = None
    if draws is not None:
        mask = negative
        if code_diffs is not None:
            # which features lean negative, re-estimated on each draw's resampled items
            mask = ((draws.weights @ code_diffs) < 0) & (firing_rate.cpu() > 0)[None, :]
        boot = largest_shares(
            W_dec, W_enc, draws.bootstrap, draws.bootstrap_codes, firing_rate, negative=mask, **rule
        )
        interval = basic_interval(max_share, boot, lower=0.0, upper=1.0)
        shuffled = largest_shares(
            W_dec, W_enc, draws.shuffled, draws.shuffled_codes, firing_rate, negative=negative, **rule
        )
        null = stats.summarize_null(max_share, shuffled)
    if ordinary is not None:
        shares = reference_shares(ordinary, W_dec, firing_rate, negative=negative, **rule)
        reference = stats.summarize_null(max_share, shares)
    return SpuriousCheck(
        max_share=max_share,
        threshold=float(threshold),
        rare_rate=float(rare_rate),
        spurious=tuple(spurious),
        bias_explained=tuple(bias_explained),
        unexplained=tuple(unexplained),
        sign_conflicts=conflicts,
        min_share=float(min_share),
        below_share=tuple(weak),
        share_interval=interval,
        share_null=null,
        share_reference=reference,
    )


def _bounded_share(part: Tensor, rest: Tensor, floor: Tensor | float) -> Tensor:
    """``part / max(|part| + |rest|, floor)``: the anchor's share of the absolute push, in [-1, 1]."""
    total = part.abs() + rest.abs()
    return part / torch.maximum(total, torch.as_tensor(floor, dtype=total.dtype)).clamp_min(1e-30)


def anchor_pairs(
    W_dec: Tensor, firing_rate: Tensor, *, threshold: float = -0.5, rare_rate: float = 0.05
) -> tuple[Tensor, Tensor]:
    """Every (rare partner i, anchor j != i) with ``cos(d_i, d_j) < threshold``, as two id tensors ``[P]``.

    Depends on the SAE and the firing rates only, so one call serves every vector of a run.
    """
    U = torch.nn.functional.normalize(W_dec.detach().to(torch.float32).cpu(), dim=1)
    rare = torch.nonzero(firing_rate.cpu() <= rare_rate).flatten()
    if not rare.numel():
        return rare, rare
    cos = U[rare] @ U.T
    cos[torch.arange(rare.numel()), rare] = 1.0
    rows, js = torch.nonzero(cos < threshold, as_tuple=True)
    return rare[rows], js


def largest_shares(
    W_dec: Tensor,
    W_enc: Tensor,
    vectors: Tensor,
    codes: Tensor,
    firing_rate: Tensor,
    *,
    negative: Tensor | None = None,
    threshold: float = -0.5,
    rare_rate: float = 0.05,
    pairs: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """The key figure of :func:`spurious_check` for many vectors at once, ``[B]`` float64.

    For each vector ``vectors[b]`` (SAE input space) with code ``codes[b]``: the largest share of a rare
    positive coefficient's pre-activation change carried by the vector's component along one
    anti-aligned, eligible anchor (0 when no positive rare coefficient has one). Equals
    ``spurious_check(...).max_share`` for a single vector. ``pairs`` is :func:`anchor_pairs` of the same
    decoder, rates, threshold and rare rate, computed here when not given.
    """
    U = torch.nn.functional.normalize(W_dec.detach().to(torch.float32).cpu(), dim=1)
    enc = W_enc.detach().to(torch.float32).cpu()
    V = vectors.detach().to(torch.float32).cpu().reshape(-1, U.shape[1])
    F = codes.detach().to(torch.float32).cpu().reshape(V.shape[0], -1)
    out = torch.zeros(V.shape[0], dtype=torch.float64)
    i_s, js = (
        anchor_pairs(W_dec, firing_rate, threshold=threshold, rare_rate=rare_rate) if pairs is None else pairs
    )
    if not i_s.numel():
        return out
    proj = V @ U[js].T  # [B, P] v along the anchor
    pre = V @ enc[:, i_s]  # [B, P] the partner's pre-activation change
    carried = (U[js] * enc[:, i_s].T).sum(dim=1)  # d_j . W_enc[:, i]
    part = proj * carried
    floor = _FLOOR * V.norm(dim=1, keepdim=True) * enc[:, i_s].norm(dim=0)[None, :]
    share = _bounded_share(part, pre - part, floor)
    valid = (F[:, i_s] > 0) & (pre > 0) & (proj < 0)
    if negative is not None:
        mask = negative.cpu()
        valid &= mask[js][None, :] if mask.ndim == 1 else mask[:, js]
    share = share.where(valid, torch.full_like(share, -torch.inf)).amax(dim=1)
    return share.clamp_min(0.0).to(torch.float64)


def reference_shares(
    ordinary: EncodedSample,
    W_dec: Tensor,
    firing_rate: Tensor,
    *,
    negative: Tensor | None = None,
    threshold: float = -0.5,
    rare_rate: float = 0.05,
    pairs: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """:func:`largest_shares` of each ordinary activation against SAE(0), as for v: ``[n]`` float64.

    Each activation is mapped into the SAE's input space as v is, with the code the SAE gives it.
    """
    if pairs is None:
        pairs = anchor_pairs(W_dec, firing_rate, threshold=threshold, rare_rate=rare_rate)
    W_enc = ordinary.space.W_enc
    rule: dict[str, Any] = {"threshold": threshold, "rare_rate": rare_rate, "pairs": pairs}
    shares = [
        largest_shares(W_dec, W_enc, rows, codes, firing_rate, negative=negative, **rule)
        for rows, codes in ordinary.chunks(in_sae_space=True)
    ]
    return torch.cat(shares)
