"""Negatively aligned decoder pairs, found block by block without the full d_sae x d_sae matrix.

Only the upper triangle of the cosine matrix is visited, one ``block_size x block_size`` tile at a
time, so the working memory is about ``5 * block_size**2 + 8 * block_size * d_in`` bytes whatever
the width (Gemma Scope's 65k included). Diagonal tiles are computed as a staircase of row strips,
so the arithmetic is close to half of the dense ``W @ W.T``; off-diagonal tiles multiply the raw
rows and scale the tile's columns, so no normalised copy of the dictionary is made. Pairs are
reported separately for live features (that fire on an activation sample) and dead ones, since
strongly anti-aligned pairs often sit among dead features that never affect a reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from sae_steer_checks._validate import validate_positive_int

__all__ = [
    "AlignedPairs",
    "SignConflict",
    "SpuriousCheck",
    "SpuriousProjection",
    "find_aligned_pairs",
    "row_norms",
    "spurious_check",
    "unit_rows",
]


def row_norms(W: Tensor, *, chunk: int = 8192) -> Tensor:
    """L2 norms ``[n]`` (float32) of the rows of ``W [n, d]``, converted chunk by chunk."""
    parts = [W[s : s + chunk].detach().to(torch.float32).norm(dim=1) for s in range(0, W.shape[0], chunk)]
    return torch.cat(parts) if parts else torch.zeros(0)


def unit_rows(W: Tensor) -> Tensor:
    """``W [n, d]`` in float32 with unit rows (zero rows stay zero)."""
    W32 = W.detach().to(torch.float32)
    norms = W32.norm(dim=1, keepdim=True)
    return torch.where(norms > 0, W32 / norms.clamp_min(1e-30), torch.zeros_like(W32))


@dataclass(frozen=True)
class AlignedPairs:
    """Decoder pairs ``(first < second)`` whose cosine is below a threshold, most negative first."""

    threshold: float
    """Cosine threshold; pairs strictly below it are kept."""
    first: Tensor
    """Smaller feature id of each pair ``[m]`` (int64)."""
    second: Tensor
    """Larger feature id of each pair ``[m]`` (int64)."""
    cosine: Tensor
    """Cosine of each pair ``[m]`` (float32)."""
    live: Tensor | None = None
    """Features that fire on the activation sample ``[d_sae]`` (bool), if known."""

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine in [-1, 1], got {self.threshold}")
        if not (self.first.shape == self.second.shape == self.cosine.shape):
            raise ValueError("first, second and cosine must have the same shape")

    def __len__(self) -> int:
        return int(self.cosine.numel())

    @property
    def pairs(self) -> tuple[tuple[int, int, float], ...]:
        """``(first, second, cosine)`` triples, most negative first."""
        return tuple(
            (int(i), int(j), float(c))
            for i, j, c in zip(self.first.tolist(), self.second.tolist(), self.cosine.tolist(), strict=True)
        )

    def status(self) -> list[str]:
        """Per pair: ``"live"`` (both fire), ``"dead"`` (neither), ``"mixed"`` or ``"unknown"``."""
        if self.live is None:
            return ["unknown"] * len(self)
        a, b = self.live[self.first], self.live[self.second]
        return [
            "live" if x and y else "dead" if not (x or y) else "mixed"
            for x, y in zip(a.tolist(), b.tolist(), strict=True)
        ]

    def to_dict(self, max_listed: int = 1000) -> dict[str, Any]:
        """JSON-ready summary: counts by status and the (at most ``max_listed``) pairs."""
        status = self.status()
        listed = [
            {"feature": i, "partner": j, "cosine": c, "status": s}
            for (i, j, c), s in zip(self.pairs[:max_listed], status[:max_listed], strict=True)
        ]
        return {
            "threshold": self.threshold,
            "n_pairs": len(self),
            "n_live": status.count("live"),
            "n_dead": status.count("dead"),
            "n_mixed": status.count("mixed"),
            "pairs": listed,
            "truncated": len(self) > max_listed,
        }


def find_aligned_pairs(
    W_dec: Tensor,
    threshold: float = -0.5,
    *,
    live: Tensor | None = None,
    block_size: int = 2048,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> AlignedPairs:
    """All pairs of decoder rows with cosine strictly below ``threshold``.

    Args:
        W_dec: decoder ``[d_sae, d_in]`` in any float dtype (each tile is computed in float32).
        threshold: cosine threshold in ``[-1, 1]``.
        live: optional bool mask ``[d_sae]`` of features that fire on real activations.
        block_size: tile side; bounds the working memory (see the module docstring).
        device: where the tiles are multiplied (defaults to ``W_dec``'s device).
        progress: show a progress bar over row blocks.

    Returns:
        :class:`AlignedPairs` sorted by cosine, then by feature ids. Zero rows have no direction
        and are never paired.
    """
    if not isinstance(W_dec, Tensor) or W_dec.ndim != 2:
        raise ValueError(f"W_dec must be a 2-D tensor [d_sae, d_in], got {type(W_dec).__name__}")
    if not -1.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a cosine in [-1, 1], got {threshold}")
    block_size = validate_positive_int(block_size, "block_size")
    n = W_dec.shape[0]
    if live is not None and (live.shape != (n,) or live.dtype != torch.bool):
        raise ValueError(f"live must be a bool tensor of shape [{n}], got {list(live.shape)} {live.dtype}")
    dev = torch.device(device) if device is not None else W_dec.device
    norms = row_norms(W_dec)
    if not bool(torch.isfinite(norms).all()):
        raise ValueError("W_dec must be finite, found NaN or infinite entries")
    inv = torch.where(norms > 0, 1.0 / norms.clamp_min(1e-30), torch.zeros_like(norms)).to(dev)

    def rows(start: int, stop: int) -> Tensor:
        # A view (no copy) when the decoder is already float32 on ``dev``.
        return W_dec[start:stop].detach().to(device=dev, dtype=torch.float32)

    buf = torch.empty(min(block_size, n) ** 2, device=dev)
    found: list[tuple[Tensor, Tensor, Tensor]] = []

    def scan(S: Tensor, row0: int, col0: int, diagonal: bool) -> None:
        # Most tiles hold no pair at all: one reduction avoids building a mask.
        if not S.numel() or float(S.min()) >= threshold:
            return
        mask = threshold > S
        if diagonal:
            mask = mask.triu(diagonal=1)
        ij = mask.nonzero()
        found.append((ij[:, 0].cpu() + row0, ij[:, 1].cpu() + col0, S[ij[:, 0], ij[:, 1]].cpu()))

    # Height of the strips a diagonal tile is cut into: each strip meets only the columns on or
    # right of its own rows, so a diagonal tile costs (q + 1) / (2 q) of a full one.
    strip = max(1, block_size // 4)
    max_inv = [float(inv[s : s + block_size].max()) for s in range(0, n, block_size)]
    with torch.no_grad():
        for bi in tqdm(range(0, n, block_size), disable=not progress, desc="pair search"):
            stop = min(bi + block_size, n)
            A = rows(bi, stop) * inv[bi:stop, None]
            for r in range(0, stop - bi, strip):
                h = min(strip, stop - bi - r)
                S = torch.mm(A[r : r + h], A[r:].T, out=buf[: h * (stop - bi - r)].view(h, -1))
                scan(S, bi + r, bi + r, True)
            for bj in range(stop, n, block_size):
                end = min(bj + block_size, n)
                S = torch.mm(A, rows(bj, end).T, out=buf[: (stop - bi) * (end - bj)].view(stop - bi, -1))
                # S holds unit rows against raw columns. For a negative threshold, the most negative
                # raw entry times the largest column scale bounds every cosine from below, so
                # tiles without a pair skip the scaling pass.
                if threshold < 0 and S.numel() and float(S.min()) * max_inv[bj // block_size] >= threshold:
                    continue
                scan(S.mul_(inv[None, bj:end]), bi, bj, False)
    found_i = [f[0] for f in found]
    found_j = [f[1] for f in found]
    found_c = [f[2] for f in found]
    first = torch.cat(found_i) if found_i else torch.zeros(0, dtype=torch.int64)
    second = torch.cat(found_j) if found_j else torch.zeros(0, dtype=torch.int64)
    cosine = torch.cat(found_c) if found_c else torch.zeros(0)
    # Sort by (cosine, first, second) with stable sorts, least significant key first.
    order = torch.argsort(second, stable=True)
    for key in (first, cosine):
        order = order[torch.argsort(key[order], stable=True)]
    return AlignedPairs(
        threshold=float(threshold),
        first=first[order],
        second=second[order],
        cosine=cosine[order],
        live=None if live is None else live.cpu(),
    )


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
    """Rare positives explained by a negative projection on an anti-aligned partner."""
    bias_explained: tuple[int, ...]
    """Rare positives already on in SAE(0) that v does not push up."""
    unexplained: tuple[int, ...]
    """Rare positives explained by neither."""
    sign_conflicts: tuple[SignConflict, ...]
    """Positive SAE(v) coefficients with a negative projection or signed coefficient."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "spurious": [
                {
                    "feature": s.feature,
                    "explained_by": s.explained_by,
                    "cosine": s.cosine,
                    "value": s.value,
                    "partner_projection": s.partner_projection,
                }
                for s in self.spurious
            ],
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
) -> SpuriousCheck:
    """Explain every positive SAE(v) coefficient on a rare feature, and list sign conflicts.

    A rare feature i with ``SAE(v)_i > 0`` is *spurious* when v raises its pre-activation
    (``v @ W_enc[:, i] > 0``) and some partner j with ``cos(d_i, d_j) < threshold`` is
    negative-leaning (``negative[j]``, any feature if ``negative`` is None) and v projects
    negatively on it; the most anti-aligned such partner is named. Otherwise it is
    *bias-explained* when ``SAE(0)_i > 0``, else *unexplained*.

    Args:
        W_dec, W_enc: decoder ``[d_sae, d_in]`` and encoder ``[d_in, d_sae]``.
        vector: steering vector in the SAE's input space ``[d_in]``.
        acts_vector, acts_zero: SAE(v) and SAE(0) ``[d_sae]``.
        firing_rate: share of prompts on which each feature fires ``[d_sae]``.
        negative: bool mask ``[d_sae]`` of negative-leaning features.
        signed_coefficients: dense signed decomposition of v ``[d_sae]``, for sign conflicts.

    Returns:
        A :class:`SpuriousCheck`; every list is sorted by feature id, conflicts by projection.
    """
    v = vector.to(torch.float32)
    U = unit_rows(W_dec)
    proj = U @ v
    pre_change = v @ W_enc.detach().to(torch.float32)
    f_v, f_0 = acts_vector.to(torch.float32), acts_zero.to(torch.float32)
    eligible = proj < 0 if negative is None else negative & (proj < 0)
    candidates = torch.nonzero((f_v > 0) & (firing_rate <= rare_rate)).flatten().tolist()
    spurious, bias_explained, unexplained = [], [], []
    for i in candidates:
        partner = None
        if float(pre_change[i]) > 0:
            cos = U @ U[i]
            ok = eligible & (cos < threshold)
            ok[i] = False
            if bool(ok.any()):
                ids = torch.nonzero(ok).flatten()
                j = int(ids[torch.argmin(cos[ids])])
                partner = SpuriousProjection(i, j, float(cos[j]), float(f_v[i]), float(proj[j]))
        if partner is not None:
            spurious.append(partner)
        elif float(f_0[i]) > 0:
            bias_explained.append(i)
        else:
            unexplained.append(i)
    signed = torch.zeros_like(f_v) if signed_coefficients is None else signed_coefficients.float()
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
    )
