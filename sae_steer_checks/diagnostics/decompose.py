"""Signed sparse decomposition of vectors over the decoder rows: batched OMP and gradient pursuit.

An SAE can only give non-negative coefficients; these decompositions may give either sign, so a
direction the steering vector writes negatively along is kept rather than dropped. Both methods
run on a batch of vectors at once in torch: each step is one ``[batch, d_in] x [d_in, d_sae]``
product (the arithmetic floor of a greedy pursuit) plus small per-vector updates on the support.
OMP keeps the support's Gram matrix and re-solves it by Cholesky; ``atoms_per_step > 1`` adds
several atoms per step (generalised OMP), dividing the number of full products.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from sae_steer_checks._validate import validate_positive_int
from sae_steer_checks.diagnostics.pairs import row_norms

__all__ = [
    "DecompositionSummary",
    "SparseCode",
    "gradient_pursuit",
    "omp",
    "summarize_reconstruction",
]


@dataclass(frozen=True)
class SparseCode:
    """Sparse signed coefficients of a batch of vectors over the rows of a dictionary."""

    indices: Tensor
    """Selected rows ``[batch, k]`` (int64; -1 marks an unused slot)."""
    coefficients: Tensor
    """Coefficient of each selected row ``[batch, k]`` (float32; 0 in unused slots)."""
    n_atoms: int
    """Number of dictionary rows."""
    residual_norms: Tensor | None = None
    """``||v - fit_t||`` after t = 1..k atoms ``[batch, k]`` (float32), when OMP ran with ``return_path``."""

    def path_cosines(self, vectors: Tensor) -> Tensor:
        """Cosine of each vector ``[batch, d]`` with its t-atom fit, t = 1..k ``[batch, k]`` (float64).

        OMP's fit is the orthogonal projection of v on its support, so ``cos_t = ||fit_t|| / ||v|| =
        sqrt(1 - (||r_t|| / ||v||)^2)``; a zero vector gets 0.
        """
        if self.residual_norms is None:
            raise ValueError("residual_norms is None: run omp(..., return_path=True) for the path")
        vnorm = (
            vectors.detach().reshape(-1, vectors.shape[-1]).to(torch.float64).norm(dim=1, keepdim=True).cpu()
        )
        ratio = self.residual_norms.to(torch.float64) / vnorm.clamp_min(1e-30)
        cos = (1.0 - ratio.clamp(0.0, 1.0) ** 2).sqrt()
        return torch.where(vnorm > 0, cos, torch.zeros_like(cos))

    def dense(self) -> Tensor:
        """Coefficients as a dense ``[batch, n_atoms]`` tensor."""
        out = torch.zeros(self.indices.shape[0], self.n_atoms + 1, device=self.coefficients.device)
        slot = torch.where(self.indices >= 0, self.indices, self.n_atoms)
        out.scatter_add_(1, slot, self.coefficients)
        return out[:, : self.n_atoms]

    def reconstruct(self, dictionary: Tensor) -> Tensor:
        """``coefficients @ dictionary[indices]`` as ``[batch, d]`` float32."""
        rows = dictionary.detach().to(torch.float32)[self.indices.clamp_min(0).to(dictionary.device)]
        coef = self.coefficients.to(rows.device)
        return torch.einsum("bk,bkd->bd", coef, rows)


def _prepare(dictionary: Tensor, vectors: Tensor, k: int, device: Any) -> tuple[Tensor, Tensor, Tensor, int]:
    if not isinstance(dictionary, Tensor) or dictionary.ndim != 2:
        raise ValueError(f"dictionary must be a 2-D tensor [n_atoms, d], got {type(dictionary).__name__}")
    if not isinstance(vectors, Tensor) or vectors.ndim not in (1, 2):
        raise ValueError("vectors must be a tensor [d] or [batch, d]")
    V = vectors.detach().reshape(-1, vectors.shape[-1]).to(torch.float32)
    n, d = dictionary.shape
    if V.shape[1] != d:
        raise ValueError(f"vectors must have width {d} to match the dictionary, got {V.shape[1]}")
    if not bool(torch.isfinite(V).all()):
        raise ValueError("vectors must be finite, found NaN or infinite entries")
    k = validate_positive_int(k, "k")
    if k > n:
        raise ValueError(f"k must be at most the number of atoms {n}, got {k}")
    dev = torch.device(device) if device is not None else dictionary.device
    D = dictionary.detach().to(device=dev, dtype=torch.float32)
    norms = row_norms(D)
    if not bool(torch.isfinite(norms).all()):
        raise ValueError("dictionary must be finite, found NaN or infinite entries")
    inv = torch.where(norms > 0, 1.0 / norms.clamp_min(1e-30), torch.zeros_like(norms))
    return D, V.to(dev), inv, k


def _select(R: Tensor, D: Tensor, inv: Tensor, taken: Tensor, s: int) -> tuple[Tensor, Tensor]:
    """Top-``s`` atoms by |normalised correlation| with the residuals ``R [b, d]``.

    ``taken`` is either a bool mask ``[b, n_atoms]`` or the ids ``[b, t]`` of atoms already
    selected; scattering over ids touches ``b * t`` entries instead of all ``b * n_atoms``.
    """
    C = torch.mm(R, D.T).abs_().mul_(inv)
    if taken.dtype == torch.bool:
        C.masked_fill_(taken, -1.0)
    elif taken.numel():
        C.scatter_(1, taken, -1.0)
    if s == 1:
        # max is a single pass; topk keeps a heap per row
        values, indices = C.max(dim=1, keepdim=True)
        return indices, values
    top = C.topk(s, dim=1)
    return top.indices, top.values


def _batches(n: int, batch_size: int, progress: bool, desc: str) -> Any:
    return tqdm(range(0, n, batch_size), disable=not progress, desc=desc)


def omp(
    dictionary: Tensor,
    vectors: Tensor,
    k: int,
    *,
    atoms_per_step: int = 1,
    tol: float = 1e-6,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
    return_path: bool = False,
) -> SparseCode:
    """Orthogonal matching pursuit of ``vectors [batch, d]`` over ``dictionary [n, d]``.

    Each step adds the ``atoms_per_step`` atoms most correlated (after normalising the rows) with
    the residual, then solves least squares on the support by Cholesky of its Gram matrix. A
    vector stops growing once its residual is below ``tol`` times its norm (a zero vector gets an
    empty code), so supports hold at most ``k`` atoms. Supports for k and k+1 are nested, so the
    error never rises with k. With ``return_path`` the residual norm after every step is kept, so one
    run gives the fit's quality for every support size 1..k (needs ``atoms_per_step == 1``).

    Returns:
        A :class:`SparseCode` with ``indices``/``coefficients`` ``[batch, k]`` on the rows as given
        (and ``residual_norms [batch, k]`` with ``return_path``).
    """
    D, V, inv, k = _prepare(dictionary, vectors, k, device)
    step = validate_positive_int(atoms_per_step, "atoms_per_step")
    if return_path and step != 1:
        raise ValueError(f"return_path needs atoms_per_step=1, got atoms_per_step={step}")
    idx_out, coef_out, path_out = [], [], []
    for start in _batches(V.shape[0], batch_size, progress, "omp"):
        idx, coef, path = _omp_batch(D, V[start : start + batch_size], inv, k, step, tol)
        idx_out.append(idx)
        coef_out.append(coef)
        path_out.append(path)
    residuals = torch.cat(path_out).cpu() if return_path else None
    return SparseCode(torch.cat(idx_out).cpu(), torch.cat(coef_out).cpu(), int(D.shape[0]), residuals)


def _omp_batch(
    D: Tensor, V: Tensor, inv: Tensor, k: int, step: int, tol: float
) -> tuple[Tensor, Tensor, Tensor]:
    b, d = V.shape
    dev = D.device
    idx = torch.zeros(b, k, dtype=torch.int64, device=dev)
    valid = torch.zeros(b, k, dtype=torch.bool, device=dev)
    atoms = torch.zeros(b, k, d, device=dev)
    gram = torch.zeros(b, k, k, device=dev)
    rhs = torch.zeros(b, k, device=dev)
    x = torch.zeros(b, k, device=dev)
    vnorm = V.norm(dim=1)
    growing = vnorm > 0
    R = V.clone()
    path = torch.zeros(b, k, device=dev)
    t = 0
    while t < k and bool(growing.any()):
        s = min(step, k - t)
        # Every selected slot is excluded, valid or not: a slot is invalid only when its vector
        # stopped or its best correlation was negligible, and either way the output is unchanged.
        new_idx, corr = _select(R, D, inv, idx[:, :t], s)
        new_valid = growing[:, None] & (corr > tol * vnorm[:, None] * 1e-3)
        new_atoms = D[new_idx]
        T = t + s
        idx[:, t:T], valid[:, t:T], atoms[:, t:T] = new_idx, new_valid, new_atoms
        block = torch.bmm(new_atoms, atoms[:, :T].transpose(1, 2))
        gram[:, t:T, :T] = block
        gram[:, :T, t:T] = block.transpose(1, 2)
        rhs[:, t:T] = torch.bmm(new_atoms, V[:, :, None])[:, :, 0]
        m = valid[:, :T]
        # Unused slots get an identity row and a zero right-hand side, hence coefficient 0.
        G = gram[:, :T, :T] * (m[:, :, None] & m[:, None, :])
        G = G + torch.diag_embed((~m).to(G.dtype))
        x[:, :T] = _spd_solve(G, rhs[:, :T] * m)
        R = V - torch.bmm(x[:, None, :T], atoms[:, :T])[:, 0]
        rnorm = R.norm(dim=1)
        path[:, t:T] = rnorm[:, None]
        growing &= rnorm > tol * vnorm
        t = T
    # A batch that stopped early keeps its last residual for the larger supports.
    if t < k:
        path[:, t:] = R.norm(dim=1)[:, None]
    x = torch.where(valid, x, torch.zeros_like(x))
    return torch.where(valid, idx, torch.full_like(idx, -1)), x, path


def _spd_solve(G: Tensor, rhs: Tensor) -> Tensor:
    """Solve ``G x = rhs`` per batch item by Cholesky; pseudo-inverse where ``G`` is singular."""
    L, info = torch.linalg.cholesky_ex(G)
    x = torch.cholesky_solve(rhs[:, :, None], L)[:, :, 0]
    bad = info != 0
    if bool(bad.any()):
        x[bad] = (torch.linalg.pinv(G[bad], hermitian=True) @ rhs[bad][:, :, None])[:, :, 0]
    return x


def gradient_pursuit(
    dictionary: Tensor,
    vectors: Tensor,
    k: int,
    *,
    tol: float = 1e-6,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> SparseCode:
    """Gradient pursuit (Blumensath & Davies 2008) of ``vectors [batch, d]`` over ``dictionary``.

    Each step adds the atom most correlated with the residual, then takes one exact line-search
    gradient step on the whole support: cheaper per step than OMP's solve, at a somewhat larger
    error.

    Returns:
        A :class:`SparseCode` with ``indices``/``coefficients`` ``[batch, k]``.
    """
    D, V, inv, k = _prepare(dictionary, vectors, k, device)
    idx_out, coef_out = [], []
    for start in _batches(V.shape[0], batch_size, progress, "gradient pursuit"):
        Vb = V[start : start + batch_size]
        b, d = Vb.shape
        idx = torch.full((b, k), -1, dtype=torch.int64, device=D.device)
        atoms = torch.zeros(b, k, d, device=D.device)
        x = torch.zeros(b, k, device=D.device)
        vnorm = Vb.norm(dim=1)
        growing = vnorm > 0
        R = Vb.clone()
        for t in range(k):
            if not bool(growing.any()):
                break
            # A growing vector has grown at every earlier step, so its slots are all set; the
            # clamped -1 slots belong to stopped vectors, whose selections are discarded.
            new_idx, _ = _select(R, D, inv, idx[:, :t].clamp_min(0), 1)
            new_idx = new_idx[:, 0]
            idx[:, t] = torch.where(growing, new_idx, idx[:, t])
            atoms[:, t] = torch.where(growing[:, None], D[new_idx], atoms[:, t])
            g = torch.bmm(atoms[:, : t + 1], R[:, :, None])[:, :, 0]
            c = torch.bmm(g[:, None, :], atoms[:, : t + 1])[:, 0]
            cc = (c * c).sum(dim=1)
            a = torch.where(growing & (cc > 0), (R * c).sum(dim=1) / cc.clamp_min(1e-30), 0.0)
            x[:, : t + 1] += a[:, None] * g
            R = R - a[:, None] * c
            growing &= R.norm(dim=1) > tol * vnorm
        idx_out.append(idx)
        coef_out.append(torch.where(idx >= 0, x, torch.zeros_like(x)))
    return SparseCode(torch.cat(idx_out).cpu(), torch.cat(coef_out).cpu(), int(D.shape[0]))


@dataclass(frozen=True)
class DecompositionSummary:
    """How well a (sparse) reconstruction matches a vector."""

    cosine: float | None
    """Cosine between vector and reconstruction (None when either is zero)."""
    rel_error: float | None
    """``||v - v_hat|| / ||v||`` (None for a zero vector)."""
    error_norm: float
    """``||v - v_hat||``."""
    l0: int
    """Number of non-zero coefficients."""
    n_negative: int
    """Number of negative coefficients."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "cosine": self.cosine,
            "rel_error": self.rel_error,
            "error_norm": self.error_norm,
            "l0": self.l0,
            "n_negative": self.n_negative,
        }


def summarize_reconstruction(
    vector: Tensor, reconstruction: Tensor, coefficients: Tensor
) -> DecompositionSummary:
    """Compare ``reconstruction [d]`` with ``vector [d]``; ``coefficients`` dense or sparse."""
    v = vector.to(torch.float64).flatten()
    r = reconstruction.to(torch.float64).flatten()
    vn, rn = float(v.norm()), float(r.norm())
    err = float((v - r).norm())
    return DecompositionSummary(
        cosine=float(v @ r) / (vn * rn) if vn > 0 and rn > 0 else None,
        rel_error=err / vn if vn > 0 else None,
        error_norm=err,
        l0=int((coefficients != 0).sum()),
        n_negative=int((coefficients < 0).sum()),
    )
