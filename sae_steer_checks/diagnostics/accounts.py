"""The accounts of v set side by side: SAE(v) decoded, and signed sparse fits over the same decoder.

SAE(v) can only use non-negative coefficients; OMP and gradient pursuit fit v with ``k`` decoder rows
of either sign. Each account is reconstructed in the SAE's input space and summarised against v
(cosine, relative error, support); the retention check steers with the reconstructions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sae_steer_checks.diagnostics.decompose import (
    DecompositionSummary,
    SparseCode,
    gradient_pursuit,
    omp,
    summarize_reconstruction,
)
from sae_steer_checks.diagnostics.space import SaeSpace
from sae_steer_checks.sae.protocol import decode_features

__all__ = ["METHODS", "Accounts", "account_for"]

#: The signed decompositions, by name.
METHODS = ("omp", "gradient_pursuit")


@dataclass(frozen=True)
class Accounts:
    """SAE(v) and the signed fits of v: their codes, reconstructions and summaries."""

    codes: dict[str, SparseCode]
    """Signed decompositions of v (in the SAE's input space) by method."""
    reconstructions: dict[str, Tensor]
    """``sae`` and each method -> its reconstruction of v ``[d_in]`` (SAE input space, float32, CPU)."""
    summaries: dict[str, DecompositionSummary]
    """``sae``, ``signed`` (the reported method) and each method -> reconstruction quality."""
    signed_method: str
    """The method reported as ``signed``."""

    @property
    def signed(self) -> SparseCode:
        """The signed decomposition reported as ``signed``."""
        return self.codes[self.signed_method]


def account_for(
    space: SaeSpace,
    v_sae: Tensor,
    acts_vector: Tensor,
    *,
    k: int,
    signed_method: str = "omp",
    device: str | torch.device | None = None,
) -> Accounts:
    """SAE(v) decoded beside the signed fits of v with ``k`` decoder rows.

    Args:
        space: The run's SAE space.
        v_sae: The vector in the SAE's input space ``[d_in]``.
        acts_vector: SAE(v) ``[d_sae]``.
        k: Support size of the signed fits (at most d_sae).
        signed_method: The method reported as ``signed`` (one of :data:`METHODS`).
        device: Where the fits run (default: the decoder's device).

    Returns:
        An :class:`Accounts`.
    """
    if signed_method not in METHODS:
        raise ValueError(f"signed_method must be one of {METHODS}, got {signed_method!r}")
    W_dec = space.sae.W_dec
    codes = {
        "omp": omp(W_dec, v_sae, k, device=device),
        "gradient_pursuit": gradient_pursuit(W_dec, v_sae, k, device=device),
    }
    recon = {name: code.reconstruct(space.W_dec)[0] for name, code in codes.items()}
    recon["sae"] = decode_features(space.sae, acts_vector).cpu()
    summaries = {
        name: summarize_reconstruction(v_sae, recon[name], codes[name].coefficients) for name in codes
    }
    summaries["sae"] = summarize_reconstruction(v_sae, recon["sae"], acts_vector)
    summaries["signed"] = summaries[signed_method]
    return Accounts(codes=codes, reconstructions=recon, summaries=summaries, signed_method=signed_method)
