"""Signed decomposition: batched OMP against scikit-learn's ``OrthogonalMatchingPursuit``, float32.

The vectors are signed sparse combinations of ``n_planted`` random atoms plus isotropic noise at 30%
of their norm (steering vectors are neither exactly sparse nor noise), decomposed at the same ``k``
by every method. Errors are the mean of ``||v - v_hat|| / ||v||`` over the vectors.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_repeats, median, ratio, timed

NOISE = 0.3


def planted_vectors(D: torch.Tensor, n_vectors: int, n_planted: int, gen: torch.Generator) -> torch.Tensor:
    """``[n_vectors, d]``: signed sums of ``n_planted`` rows of ``D`` plus 30% isotropic noise."""
    n, d = D.shape
    idx = torch.stack([torch.randperm(n, generator=gen)[:n_planted] for _ in range(n_vectors)])
    coef = torch.randn(n_vectors, n_planted, generator=gen)
    V = torch.einsum("bk,bkd->bd", coef, D[idx])
    noise = torch.randn(n_vectors, d, generator=gen)
    return V + NOISE * V.norm(dim=1, keepdim=True) * noise / noise.norm(dim=1, keepdim=True)


def rel_error(D: torch.Tensor, V: torch.Tensor, dense: torch.Tensor) -> float:
    """Mean relative reconstruction error of ``dense [b, n] @ D`` against ``V [b, d]``."""
    R = V.double() - dense.double() @ D.double()
    return float((R.norm(dim=1) / V.double().norm(dim=1)).mean())


def sklearn_omp(D: torch.Tensor, V: torch.Tensor, k: int) -> tuple[torch.Tensor, str]:
    """scikit-learn OMP (columns = atoms, no intercept); dense coefficients ``[b, n]`` and dtype."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import OrthogonalMatchingPursuit

    X = np.ascontiguousarray(D.numpy().T)
    Y = np.ascontiguousarray(V.numpy().T)
    model = OrthogonalMatchingPursuit(n_nonzero_coefs=k, fit_intercept=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="Orthogonal matching pursuit ended prematurely")
        model.fit(X, Y)
    coef = np.atleast_2d(model.coef_)
    return torch.from_numpy(np.asarray(coef, dtype=np.float32)), str(model.coef_.dtype)


def run(
    *,
    n_atoms: int,
    d: int,
    n_vectors: int,
    k: int,
    n_planted: int,
    atoms_per_step: int,
    scaling: tuple[int, ...],
    device: str,
    repeats: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Time and error of scikit-learn OMP, our exact OMP, our OMP with several atoms per step and
    gradient pursuit on the same vectors; then the time of exact OMP at each size in ``scaling``.

    Every time is the median of ``repeats`` interleaved runs.
    """
    from sae_steer_checks.diagnostics.decompose import gradient_pursuit, omp

    check_repeats(repeats)

    gen = torch.Generator().manual_seed(seed)
    D = torch.randn(n_atoms, d, generator=gen)
    D /= D.norm(dim=1, keepdim=True)
    V = planted_vectors(D, n_vectors, n_planted, gen)
    Dd, Vd = D.to(device), V.to(device)

    def ours(step: int, vectors: torch.Tensor) -> torch.Tensor:
        return omp(Dd, vectors, k, atoms_per_step=step, batch_size=vectors.shape[0]).dense()

    # First calls load kernels and libraries: keep that out of the figures.
    sklearn_omp(D, V[:2], 2)
    ours(atoms_per_step, Vd[:2])
    gradient_pursuit(Dd, Vd[:2], 2)
    methods = {
        "sklearn": lambda: sklearn_omp(D, V, k),
        f"omp_{atoms_per_step}_atoms_per_step": lambda: ours(atoms_per_step, Vd),
        "omp_exact": lambda: ours(1, Vd),
        "gradient_pursuit": lambda: gradient_pursuit(Dd, Vd, k, batch_size=n_vectors).dense(),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    results: dict[str, Any] = {}
    # interleaved: a slow spell of the machine hits every method, not one
    for _ in range(repeats):
        for name, fn in methods.items():
            seconds, results[name] = timed(fn, "cpu" if name == "sklearn" else device)
            times[name].append(seconds)
    dense_sk, sk_dtype = results.pop("sklearn")
    t_sk = median(times["sklearn"])
    e_sk = rel_error(D, V, dense_sk)
    rows: dict[str, dict[str, Any]] = {}
    for name, dense in results.items():
        err = rel_error(D, V, dense.cpu())
        rows[name] = {
            "seconds": median(times[name]),
            "seconds_all": times[name],
            "rel_error": err,
            "speedup": ratio(t_sk, median(times[name])),
            "error_ratio": ratio(err, e_sk),
            "max_l0": int((dense != 0).sum(dim=1).max()),
        }
    # The figure is exact OMP, the same algorithm as the baseline and what ``run_checks`` runs.
    fast = "omp_exact"
    scale_times: dict[int, list[float]] = {m: [] for m in scaling}
    for _ in range(repeats):
        for m in scaling:
            scale_times[m].append(timed(lambda m=m: ours(1, Vd[:m]), device)[0])
    scale = {
        str(m): {"seconds": median(ts), "seconds_per_vector": median(ts) / m} for m, ts in scale_times.items()
    }
    per_vec = [s["seconds_per_vector"] for s in scale.values()]
    out: dict[str, Any] = {
        "shape": [n_atoms, d],
        "n_vectors": n_vectors,
        "k": k,
        "n_planted": n_planted,
        "noise": NOISE,
        "dtype": "float32",
        "device": device,
        "baseline": {
            "name": "sklearn OrthogonalMatchingPursuit(n_nonzero_coefs=k, fit_intercept=False)",
            "seconds": t_sk,
            "seconds_all": times["sklearn"],
            "rel_error": e_sk,
            "coef_dtype": sk_dtype,
            # scikit-learn stops a vector early when its float32 Cholesky update meets a
            # near-dependent atom (it warns); fewer atoms means a larger error for that vector
            "min_l0": int((dense_sk != 0).sum(dim=1).min()),
            "max_l0": int((dense_sk != 0).sum(dim=1).max()),
        },
        "methods": rows,
        "fast_method": fast,
        "speedup": rows[fast]["speedup"],
        "error_ratio": rows[fast]["error_ratio"],
        "scaling": scale,
        "scaling_spread": max(per_vec) / min(per_vec) if per_vec else None,
        "repeats": repeats,
    }
    return out
