"""Hand-set sae-lens SAEs with known answers, shared by the diagnostics tests."""

from __future__ import annotations

import torch
from sae_lens import (
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)
from torch import Tensor

ARCHITECTURES = ("jumprelu", "relu", "topk")


def make_sae(
    W_dec: Tensor,
    b_enc: Tensor | None = None,
    *,
    architecture: str = "jumprelu",
    b_dec: Tensor | None = None,
    threshold: float = 0.0,
    k: int | None = None,
    apply_b_dec_to_input: bool | None = None,
    dtype: torch.dtype = torch.float32,
) -> JumpReLUSAE | StandardSAE | TopKSAE:
    """A real sae-lens SAE with tied encoder ``W_enc = W_dec.T`` and the given biases.

    JumpReLU defaults to Gemma Scope's convention (``b_dec`` not subtracted); ReLU and TopK to
    subtracting it.
    """
    d_sae, d_in = W_dec.shape
    common = {"d_in": d_in, "d_sae": d_sae, "dtype": "float32", "device": "cpu"}
    if architecture == "jumprelu":
        sub = False if apply_b_dec_to_input is None else apply_b_dec_to_input
        sae = JumpReLUSAE(JumpReLUSAEConfig(apply_b_dec_to_input=sub, **common))
    elif architecture == "relu":
        sub = True if apply_b_dec_to_input is None else apply_b_dec_to_input
        sae = StandardSAE(StandardSAEConfig(apply_b_dec_to_input=sub, **common))
    elif architecture == "topk":
        sub = True if apply_b_dec_to_input is None else apply_b_dec_to_input
        sae = TopKSAE(TopKSAEConfig(apply_b_dec_to_input=sub, k=k or d_sae, **common))
    else:
        raise ValueError(architecture)
    with torch.no_grad():
        sae.W_dec.copy_(W_dec)
        sae.W_enc.copy_(W_dec.T)
        sae.b_enc.copy_(torch.zeros(d_sae) if b_enc is None else b_enc)
        sae.b_dec.copy_(torch.zeros(d_in) if b_dec is None else b_dec)
        if architecture == "jumprelu":
            sae.threshold.fill_(threshold)
    sae.to(dtype=dtype)
    for p in sae.parameters():
        p.requires_grad_(False)
    return sae


def orthonormal_rows(n: int, d: int, seed: int) -> Tensor:
    """``[n, d]`` orthonormal rows (n <= d) from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return q[:, :n].T.contiguous().to(torch.float32)


def random_unit_rows(n: int, d: int, seed: int) -> Tensor:
    """``[n, d]`` random unit rows from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(n, d, generator=gen)
    return W / W.norm(dim=1, keepdim=True)
