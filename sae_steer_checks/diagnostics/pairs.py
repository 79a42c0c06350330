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

# Re-exported for callers that import them from here; they live in spurious.py.
from sae_steer_checks.diagnostics.spurious import (
    SignConflict,
    SpuriousCheck,
    SpuriousProjection,
    spurious_check,
)

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
    n_rows: int = 0
    """Number of decoder rows searched (for the random-direction null)."""
    d_in: int = 0
    """Width of the decoder rows (for the random-direction null)."""

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
            "null_expected_pairs": self.null_expected_pairs(),
        }

    def null_expected_pairs(self) -> float | None:
        """Expected number of pairs below ``threshold`` among as many random unit directions.

        For independent uniform directions in ``d_in`` dimensions the squared cosine follows
        Beta(1/2, (d_in - 1)/2), so ``P(cos < t) = (1 - I_{t^2}(1/2, (d_in - 1)/2)) / 2`` for ``t < 0``. None
        when the widths are unknown or the threshold is not negative.
        """
        if self.n_rows < 2 or self.d_in < 2 or self.threshold >= 0:
            return None
        from scipy.special import betainc

        # 1 - I_x(a, b) = I_{1-x}(b, a), accurate far in the tail
        tail = 0.5 * float(betainc((self.d_in - 1) / 2, 0.5, 1 - self.threshold**2))
        return self.n_rows * (self.n_rows - 1) / 2 * tail


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
        and are never paired, whatever the threshold (a positive threshold is allowed: "pairs
        below cosine 0.1"; zero rows, whose cosine is taken as 0, are excluded from it).
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

    nonzero = norms.to(dev) > 0
    has_zero = threshold > 0 and not bool(nonzero.all())
    buf = torch.empty(min(block_size, n) ** 2, device=dev)
    found: list[tuple[Tensor, Tensor, Tensor]] = []

    def scan(S: Tensor, row0: int, col0: int, diagonal: bool) -> None:
        # Most tiles hold no pair at all: one reduction avoids building a mask.
        if not S.numel() or float(S.min()) >= threshold:
            return
        mask = threshold > S
        if has_zero:
            # A zero row has cosine 0 with everything: with a positive threshold it would pair with all.
            mask &= nonzero[row0 : row0 + S.shape[0], None] & nonzero[None, col0 : col0 + S.shape[1]]
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
        n_rows=int(W_dec.shape[0]),
        d_in=int(W_dec.shape[1]),
    )
