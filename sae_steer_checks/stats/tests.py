"""Tests of "no lean" and multiple-testing control: sign flips, whole-matrix nulls, BH/BY and Holm.

Sign flips are chunked matrix products of ``[B, n_items]`` sign vectors with the data, the same sign
vectors serving every feature (which keeps the features' dependence). Enumerated exactly when
``2**n_items`` fits the budget (then p-values are ``hits / 2**n``, not ``(1 + hits) / (1 + B)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sae_steer_checks.stats.draws import GeneratorLike, as_generator
from sae_steer_checks.stats.estimates import (
    Statistic,
    _check_at_least,
    _check_unit,
    _float64,
    summarize_null,
)
from sae_steer_checks.stats.resampling import _batched_statistic

__all__ = [
    "NullDistribution",
    "SignFlipResult",
    "benjamini_hochberg",
    "fraction_null",
    "holm",
    "sign_flip_test",
]

# Sign flips of the same numbers can tie |T(s)| with |T| up to rounding; such ties count as "as extreme".
_TIE_RTOL = 1e-9


@dataclass(frozen=True)
class SignFlipResult:
    """Per-feature paired sign-flip permutation test."""

    mean: Tensor
    """Observed mean difference per feature ``[d]``."""
    p_values: Tensor
    """Two-sided p-values ``[d]``."""
    n_perm: int
    """Number of sign vectors used (``2**n_items`` when exact)."""
    exact: bool
    """True when all ``2**n_items`` sign vectors were enumerated (an exact test)."""


@dataclass(frozen=True)
class NullDistribution:
    """A whole-matrix statistic and its sign-flip null distribution."""

    observed: float
    """Statistic of the unflipped mean differences."""
    draws: Tensor
    """Statistic under each sign vector ``[B]``."""
    percentile: float
    """Mid-rank percentile of ``observed`` among ``draws`` (see :func:`null_percentile`)."""
    null_mean: float
    """Mean of the draws."""
    null_q05: float
    """5th percentile of the draws."""
    null_q95: float
    """95th percentile of the draws."""
    exact: bool
    """True when all ``2**n_items`` sign vectors were enumerated."""


def _sign_matrix(n: int, n_perm: int, generator: GeneratorLike) -> tuple[Tensor, bool]:
    """``[B, n]`` float64 signs: all ``2**n`` (identity first; exact) if at most ``n_perm``, else random."""
    gen = as_generator(generator)
    if 2**n <= n_perm:
        bits = (torch.arange(2**n, device=gen.device)[:, None] >> torch.arange(n, device=gen.device)) & 1
        return (1 - 2 * bits).to(torch.float64), True
    bits = torch.randint(0, 2, (n_perm, n), generator=gen, device=gen.device)
    return (1 - 2 * bits).to(torch.float64), False


def sign_flip_test(
    diffs: Tensor, *, n_perm: int = 4000, generator: GeneratorLike = None, chunk: int = 4096
) -> SignFlipResult:
    """Paired sign-flip permutation test of "no lean" for every feature at once.

    The same sign vectors serve all features, keeping their dependence. With B random vectors,
    ``p_j = (1 + #{b: |T_j(s_b)| >= |T_j|}) / (1 + B)``; when ``2**n_items <= n_perm`` all sign vectors are
    enumerated and ``p_j = #{s: |T_j(s)| >= |T_j|} / 2**n_items`` (exact). Values within ``1e-9`` times the
    feature's largest ``|d|`` of ``|T_j|`` count as ties.

    Args:
        diffs: Paired differences ``[n_items, d]``, one row per item, ``n_items >= 2``.
        n_perm: Number of random sign vectors.
        generator: Generator or integer seed.
        chunk: Features per matrix product ``[B, n] @ [n, chunk]``.

    Returns:
        Observed means ``[d]``, p-values ``[d]``, the number of sign vectors and whether the test was exact.
    """
    d = _float64(diffs, "diffs", "[n_items, d]", ndim=2)
    _check_at_least(n_perm, "n_perm")
    _check_at_least(chunk, "chunk")
    signs, exact = _sign_matrix(d.shape[0], n_perm, generator)
    signs = signs.to(d.device) / d.shape[0]
    mean = d.mean(0)
    threshold = mean.abs() - _TIE_RTOL * d.abs().amax(0)
    hits = torch.zeros(d.shape[1], dtype=torch.float64, device=d.device)
    for j in range(0, d.shape[1], chunk):
        hits[j : j + chunk] = ((signs @ d[:, j : j + chunk]).abs_() >= threshold[j : j + chunk]).sum(0)
    p = hits / len(signs) if exact else (1 + hits) / (1 + len(signs))
    return SignFlipResult(mean, p, len(signs), exact)


def benjamini_hochberg(
    p: Tensor, alpha: float, *, dependence: Literal["independent", "arbitrary"] = "independent"
) -> Tensor:
    """Benjamini-Hochberg step-up rejections at false-discovery rate ``alpha``.

    ``"independent"`` (BH) is valid under independence or positive dependence; ``"arbitrary"`` is
    Benjamini-Yekutieli (alpha divided by ``1 + 1/2 + ... + 1/m``), valid under any dependence.

    Args:
        p: P-values in [0, 1], any shape (m values).
        alpha: FDR level in (0, 1).
        dependence: ``"independent"`` or ``"arbitrary"``.

    Returns:
        Boolean rejections, shaped like ``p``.
    """
    _check_unit(alpha, "alpha")
    if dependence not in ("independent", "arbitrary"):
        raise ValueError(f"dependence must be 'independent' or 'arbitrary', got {dependence!r}")
    pv = torch.as_tensor(p).detach().to(torch.float64)
    if bool((pv.isnan() | (pv < 0) | (pv > 1)).any()):
        raise ValueError("p must hold p-values in [0, 1] (no NaN)")
    flat = pv.reshape(-1)
    ranks = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=pv.device)
    harmonic = float(ranks.reciprocal().sum()) if dependence == "arbitrary" else 1.0
    sorted_p, order = torch.sort(flat)
    passing = (sorted_p <= alpha * ranks / (flat.numel() * harmonic)).nonzero()
    reject = torch.zeros(flat.numel(), dtype=torch.bool, device=pv.device)
    if passing.numel():
        reject[order[: int(passing.max()) + 1]] = True
    return reject.reshape(pv.shape)


def holm(p: Tensor, alpha: float) -> Tensor:
    """Holm step-down rejections at family-wise error rate ``alpha`` (valid under any dependence).

    With probability at least ``1 - alpha`` every rejection is a true effect, so the number of
    rejections among any set of features is a ``1 - alpha`` lower confidence bound on the true effects
    in that set.

    Args:
        p: P-values in [0, 1], any shape (m values).
        alpha: FWER level in (0, 1).

    Returns:
        Boolean rejections, shaped like ``p``.
    """
    _check_unit(alpha, "alpha")
    pv = torch.as_tensor(p).detach().to(torch.float64)
    if bool((pv.isnan() | (pv < 0) | (pv > 1)).any()):
        raise ValueError("p must hold p-values in [0, 1] (no NaN)")
    flat = pv.reshape(-1)
    m = flat.numel()
    sorted_p, order = torch.sort(flat)
    cut = alpha / (m - torch.arange(m, dtype=torch.float64, device=pv.device))
    failing = (sorted_p > cut).nonzero()
    n_reject = int(failing.min()) if failing.numel() else m
    reject = torch.zeros(m, dtype=torch.bool, device=pv.device)
    reject[order[:n_reject]] = True
    return reject.reshape(pv.shape)


def fraction_null(
    diffs: Tensor,
    statistic: Statistic,
    *,
    n_perm: int = 2000,
    generator: GeneratorLike = None,
    chunk: int = 500,
) -> NullDistribution:
    """Sign-flip null of a whole-matrix statistic (e.g. the fraction of active features with mean < 0).

    Each sign vector flips whole rows (items), which is what "the labels carry no information" means.

    Args:
        diffs: Paired differences ``[n_items, d]``, ``n_items >= 2``.
        statistic: Maps mean-difference vectors ``[B, d]`` to values ``[B]``.
        n_perm: Number of sign vectors (all ``2**n_items`` are enumerated when that is fewer).
        generator: Generator or integer seed.
        chunk: Sign vectors per batch passed to ``statistic``.

    Returns:
        The observed statistic, its draws ``[B]`` and their summary.
    """
    d = _float64(diffs, "diffs", "[n_items, d]", ndim=2)
    _check_at_least(n_perm, "n_perm")
    _check_at_least(chunk, "chunk")
    signs, exact = _sign_matrix(d.shape[0], n_perm, generator)
    signs /= d.shape[0]
    # The observed means go through the same product as the draws, so the identity flip ties exactly.
    observed = float(_batched_statistic(statistic, signs.new_ones(1, d.shape[0]) / d.shape[0], d, 1)[0])
    draws = _batched_statistic(statistic, signs, d, chunk)
    s = summarize_null(observed, draws)
    return NullDistribution(observed, draws, s.percentile, s.mean, s.q05, s.q95, exact)
