"""A steering vector learned in the SAE basis, described beside the CAA vector it is compared with.

The vector is learned elsewhere (``steering.learned``; diagnostics never import steering) and arrives
as anything with a ``vector`` and its ``coefficients`` over the decoder rows (:class:`LearnedLike`).
Its steerability is measured by the retention sweep, as one more named vector (``learned``) against
the same random directions, so its share of CAA's slope comes with the same kind of interval as
SAE(v)'s. This module adds what the coefficients show: how many features the vector uses, how many
of them with a negative coefficient (directions no SAE code can write), which ones, how many of them
SAE(v) and the signed fit of v also use, its cosine with v, and where its norm sits among ordinary
activation norms (the out-of-distribution question).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from sae_steer_checks._validate import validate_vector
from sae_steer_checks.diagnostics.norms import _mid_rank

__all__ = ["LearnedLike", "LearnedSummary", "learned_summary", "validate_learned"]


class LearnedLike(Protocol):
    """A steering vector over decoder rows, as ``steering.learned.LearnedVector`` is."""

    @property
    def vector(self) -> Tensor:
        """The vector ``[d_in]`` in model space."""
        ...

    @property
    def coefficients(self) -> Tensor:
        """Its signed coefficients over the decoder rows ``[d_sae]`` (zero off the support)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """How it was learned, JSON-ready."""
        ...


@dataclass(frozen=True)
class LearnedSummary:
    """What a learned vector's coefficients and geometry show (its slope is in the retention section)."""

    n_support: int
    """Features with a non-zero coefficient."""
    n_negative: int
    """Of those, the ones with a negative coefficient."""
    cosine: float
    """Cosine with the steering vector v."""
    norm: float
    """``||u||``."""
    vector_norm: float
    """``||v||``."""
    norm_percentile: float
    """Percentile of ``||u||`` among ordinary activation norms (mid-rank, 0-100)."""
    top_features: tuple[tuple[int, float], ...]
    """The largest coefficients by magnitude, signed, as ``(feature, coefficient)``."""
    in_sae: int | None
    """Support features that SAE(v) also activates (None when not given)."""
    in_signed: int | None
    """Support features that the signed fit of v also uses (None when not given)."""
    training: dict[str, Any] = field(default_factory=dict)
    """How the vector was learned (the learner's ``to_dict()``)."""

    def to_dict(self) -> dict[str, Any]:
        """The report's ``learned`` section (stable keys)."""
        return {
            "n_support": self.n_support,
            "n_negative": self.n_negative,
            "cosine": self.cosine,
            "norm": self.norm,
            "vector_norm": self.vector_norm,
            "norm_percentile": self.norm_percentile,
            "top_features": [{"feature": f, "value": c} for f, c in self.top_features],
            "in_sae": self.in_sae,
            "in_signed": self.in_signed,
            "training": dict(self.training),
        }


def validate_learned(learned: Any, d_in: int, d_sae: int) -> Tensor:
    """``learned.vector`` as float32 ``[d_in]`` after checking it and its ``[d_sae]`` coefficients.

    Raises:
        TypeError: when ``learned`` has no vector, coefficients or ``to_dict``.
        ValueError: on a width that does not match the SAE's, or a non-finite entry.
    """
    if not all(hasattr(learned, name) for name in ("vector", "coefficients", "to_dict")):
        raise TypeError(
            f"learned must have vector, coefficients and to_dict() (a steering.LearnedVector), "
            f"got a {type(learned).__name__}"
        )
    u = validate_vector(learned.vector, d_in, "learned.vector")
    c = learned.coefficients
    if not isinstance(c, Tensor) or c.shape != (d_sae,):
        shape = list(c.shape) if isinstance(c, Tensor) else type(c).__name__
        raise ValueError(f"learned.coefficients must have shape [{d_sae}] (one per feature), got {shape}")
    if not bool(torch.isfinite(c).all()):
        raise ValueError("learned.coefficients must be finite, found NaN or infinite entries")
    return u


def learned_summary(
    learned: LearnedLike,
    vector: Tensor,
    activation_norms: Tensor,
    *,
    sae_active: Tensor | None = None,
    signed_support: Tensor | None = None,
    top: int = 10,
) -> LearnedSummary:
    """Support, signs, cosine with ``vector [d_in]`` and norm percentile of a learned vector.

    Args:
        learned: the learned vector (:class:`LearnedLike`).
        vector: the steering vector v ``[d_in]`` it is compared with.
        activation_norms: norms of ordinary activations ``[n]``.
        sae_active: features SAE(v) activates ``[d_sae]`` (bool), or None.
        signed_support: features the signed fit of v uses ``[k]`` (long; -1 entries ignored), or None.
        top: how many of the largest coefficients to list.

    Raises:
        ValueError: when the learned vector's width or its coefficients' do not match.
    """
    u = learned.vector.detach().to(torch.float64).cpu().reshape(-1)
    v = vector.detach().to(torch.float64).cpu().reshape(-1)
    c = learned.coefficients.detach().to(torch.float64).cpu().reshape(-1)
    if u.shape != v.shape:
        raise ValueError(
            f"learned.vector must have shape {list(v.shape)} like the vector, got {list(u.shape)}"
        )
    if sae_active is not None and sae_active.numel() != c.numel():
        raise ValueError(
            f"learned.coefficients must have one entry per feature ({sae_active.numel()}), got {c.numel()}"
        )
    support = c.nonzero().flatten()
    order = support[c[support].abs().argsort(descending=True)][:top]
    norms = activation_norms.detach().to(torch.float64).cpu().reshape(-1)
    u_norm, v_norm = float(u.norm()), float(v.norm())
    cosine = float(u @ v) / (u_norm * v_norm) if u_norm > 0 and v_norm > 0 else 0.0
    in_sae = None if sae_active is None else int(sae_active.cpu()[support].sum())
    in_signed = None
    if signed_support is not None:
        used = set(int(i) for i in signed_support.reshape(-1).tolist() if i >= 0)
        in_signed = sum(int(i) in used for i in support.tolist())
    return LearnedSummary(
        n_support=int(support.numel()),
        n_negative=int((c < 0).sum()),
        cosine=cosine,
        norm=u_norm,
        vector_norm=v_norm,
        norm_percentile=_mid_rank(norms, u_norm),
        top_features=tuple((int(i), float(c[i])) for i in order.tolist()),
        in_sae=in_sae,
        in_signed=in_signed,
        training=dict(learned.to_dict()),
    )
