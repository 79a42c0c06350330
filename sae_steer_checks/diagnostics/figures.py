"""The numbers behind the report's figures, reduced to what fits in ``report.json``.

The plots are drawn from the report alone (``sae-steer-checks render`` redraws them from a saved
``report.json``), so whatever needs the SAE's decoder or the activation sample is reduced here,
where those live: histograms instead of samples, the plotted features instead of all of them, a
null family's mean and q95 instead of its draws. :func:`figure_data` returns the report's
``figures`` section; every value is a plain int, float, list or dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sae_steer_checks.diagnostics.bias import BiasCheck
from sae_steer_checks.diagnostics.leaning import LeaningCheck
from sae_steer_checks.diagnostics.norms import NormCheck
from sae_steer_checks.diagnostics.nulls import DecompositionNulls
from sae_steer_checks.diagnostics.pairs import AlignedPairs
from sae_steer_checks.diagnostics.retention import Retention
from sae_steer_checks.diagnostics.spurious import SpuriousCheck

__all__ = [
    "COSINE_BINS",
    "MAX_CIRCLED",
    "cosine_figure",
    "decomposition_figure",
    "figure_data",
    "leaning_figure",
    "norm_histogram",
    "retention_figure",
    "top_features_figure",
]

#: Bins of the decoder-cosine histogram: 80 of width 0.025 over [-1, 1].
COSINE_BINS = 80
#: Dropped features circled (and named) in the leaning plot, most negative first.
MAX_CIRCLED = 6
_NORM_BINS = 40


def figure_data(
    decoder: Tensor,
    sample_norms: Tensor,
    norm: NormCheck,
    bias: BiasCheck,
    leaning: LeaningCheck,
    pairs: AlignedPairs,
    spurious: SpuriousCheck,
    nulls: DecompositionNulls | None = None,
    retention: Retention | None = None,
    *,
    max_relevant: int = 3000,
    max_points: int = 1000,
    max_flagged: int = 100,
) -> dict[str, Any]:
    """The report's ``figures`` section: everything the six plots draw, and nothing more.

    Args:
        decoder: the SAE's ``W_dec [d_sae, d_in]`` (read for the cosine histogram, not kept).
        sample_norms: L2 norms ``[n]`` of the activation sample the norm check used.
        norm: the norm check (for ``||v||``).
        bias: the encoder-bias check (SAE(v) and SAE(0)).
        leaning: the leaning check (mean activations, significance, dropped features).
        pairs: the negatively aligned pairs of the whole SAE.
        spurious: the spurious check (its anchor pairs are flagged too).
        nulls: the decomposition nulls (None skips that figure).
        retention: the behaviour sweep (None skips that figure).
        max_relevant: at most this many features (the most active) enter the cosine histogram,
            besides the features of flagged and spurious pairs.
        max_points: the leaning plot shows this many most active features, and up to this many
            significant ones besides.
        max_flagged: flagged pairs listed with their cosines (all are counted).

    Returns:
        A JSON-ready dict with keys ``norms``, ``top_features``, ``leaning``, ``cosines``,
        ``decomposition`` and ``retention`` (the last two None when not computed).
    """
    return {
        "norms": norm_histogram(sample_norms, norm.steering_norm),
        "top_features": top_features_figure(bias.own.acts_vector, bias.own.acts_zero, bias.top_k),
        "leaning": leaning_figure(leaning, max_points=max_points),
        "cosines": cosine_figure(
            decoder,
            _relevant(bias, leaning, pairs, spurious, max_relevant),
            _flagged(pairs, spurious),
            threshold=pairs.threshold,
            n_total=len(pairs),
            max_flagged=max_flagged,
        ),
        "decomposition": None if nulls is None else decomposition_figure(nulls),
        "retention": None if retention is None else retention_figure(retention),
    }


def norm_histogram(norms: Tensor | np.ndarray | Sequence[float], steering_norm: float) -> dict[str, Any]:
    """Histogram of the positive activation norms ``[n]`` on 40 log-spaced bins, beside ``||v||``.

    Returns ``steering_norm``, ``edges`` (bin edges), ``counts``, ``median`` (of all norms) and
    ``percent_shorter`` (share of norms below ``||v||``, 0-100).
    """
    values = np.asarray(norms, dtype=np.float64).reshape(-1)
    positive = values[values > 0]
    lo, hi = (float(positive.min()), float(positive.max())) if positive.size else (1.0, 1.0)
    # the bins follow the activations' own spread; the plot stretches its axis to take in ||v||
    edges = np.geomspace(lo, hi * (1 + 1e-9), _NORM_BINS) if hi > lo else np.array([lo * 0.95, lo * 1.05])
    counts, _ = np.histogram(positive, bins=edges)
    return {
        "steering_norm": float(steering_norm),
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "median": float(np.median(values)) if values.size else 0.0,
        "percent_shorter": 100.0 * float(np.mean(values < steering_norm)) if values.size else 0.0,
    }


def top_features_figure(code_vector: Tensor, code_zero: Tensor, k: int) -> dict[str, Any]:
    """The top-``k`` firing features of SAE(v) and of SAE(0) ``[d_sae]``, with both codes' values there.

    Returns ``k``, ``top_vector`` and ``top_zero`` (ids, largest first, ties by id), ``features``
    (SAE(v)'s top, then SAE(0)'s not already shown) and ``vector``/``zero``: each code at ``features``.
    """
    f_v = code_vector.detach().to(torch.float64).cpu().reshape(-1)
    f_0 = code_zero.detach().to(torch.float64).cpu().reshape(-1)
    top_v, top_0 = _top(f_v, k), _top(f_0, k)
    features = top_v + [i for i in top_0 if i not in top_v]
    return {
        "k": int(k),
        "top_vector": top_v,
        "top_zero": top_0,
        "features": features,
        "vector": [float(f_v[i]) for i in features],
        "zero": [float(f_0[i]) for i in features],
    }


def leaning_figure(leaning: LeaningCheck, *, max_points: int = 1000) -> dict[str, Any]:
    """Mean activations on positive and negative prompts of the features the leaning plot shows.

    The shown features are the ``max_points`` most active (largest mean on either set), up to
    ``max_points`` significant ones besides, and the circled dropped features; the counts cover every
    active feature. Returns ``features`` (ascending ids), ``mean_pos``, ``mean_neg`` (at ``features``,
    float32 precision), ``significant`` and ``circled`` (ids among ``features``), ``n_dropped``,
    ``n_active``, ``n_negative``, ``interval`` ([low, high] of the negative share, or None) and
    ``null`` ([mean, q05, q95] of its label-flip null, or None).
    """
    pos = leaning.mean_pos.detach().to(torch.float64).cpu().reshape(-1)
    neg = leaning.mean_neg.detach().to(torch.float64).cpu().reshape(-1)
    weight = torch.maximum(pos, neg)
    active = torch.nonzero((pos > 0) | (neg > 0)).flatten()
    significant = leaning.significant.cpu() & ((pos > 0) | (neg > 0))
    circled = [int(i) for i in leaning.dropped_by_encoder[:MAX_CIRCLED]]
    shown = set(_most(active, weight, max_points)) | set(circled)
    shown |= set(_most(torch.nonzero(significant).flatten(), weight, max_points))
    features = sorted(shown)
    iv, nd = leaning.fraction_interval, leaning.fraction_null
    return {
        "features": features,
        "mean_pos": [_f32(pos[i]) for i in features],
        "mean_neg": [_f32(neg[i]) for i in features],
        "significant": [i for i in features if bool(significant[i])],
        "circled": circled,
        "n_dropped": len(leaning.dropped_by_encoder),
        "n_active": int(active.numel()),
        "n_negative": int((neg[active] > pos[active]).sum()),
        "interval": None if iv is None else [float(iv.ci_low), float(iv.ci_high)],
        "null": None if nd is None else [float(nd.null_mean), float(nd.null_q05), float(nd.null_q95)],
    }


def cosine_figure(
    decoder: Tensor,
    features: Sequence[int],
    flagged: Sequence[tuple[int, int, float]],
    *,
    threshold: float,
    n_total: int | None = None,
    max_flagged: int = 100,
    block_size: int = 1024,
) -> dict[str, Any]:
    """Histogram of the decoder cosines among ``features`` (every pair once), flagged pairs beside it.

    ``decoder`` is ``W_dec [d_sae, d_in]``; the cosines are computed in blocks of ``block_size`` rows,
    so memory stays bounded however many features there are. ``flagged`` are ``(feature, partner,
    cosine)`` pairs, listed most negative first up to ``max_flagged``. Returns ``edges`` (81 bin edges
    over [-1, 1]), ``counts``, ``threshold``, ``n_features``, ``flagged`` (``{"feature", "partner",
    "cosine"}`` entries), ``n_flagged`` and ``n_flagged_total`` (flagged pairs in the whole SAE, or None).
    """
    edges = np.linspace(-1.0, 1.0, COSINE_BINS + 1)
    counts = np.zeros(COSINE_BINS, dtype=np.int64)
    ids = torch.as_tensor(list(features), dtype=torch.long)
    rows = torch.nn.functional.normalize(decoder.detach().to(torch.float32).cpu()[ids], dim=1)
    n = int(ids.numel())
    for start in range(0, n, block_size):
        block = rows[start : start + block_size]
        sims = block @ rows[start:].T
        # every pair once: the columns after each row's own
        upper = torch.arange(n - start)[None, :] > torch.arange(block.shape[0])[:, None]
        counts += np.histogram(sims[upper].to(torch.float64).numpy(), bins=edges)[0]
    ordered = sorted(flagged, key=lambda t: t[2])
    return {
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "threshold": float(threshold),
        "n_features": n,
        "flagged": [{"feature": i, "partner": j, "cosine": float(c)} for i, j, c in ordered[:max_flagged]],
        "n_flagged": len(ordered),
        "n_flagged_total": None if n_total is None else int(n_total),
    }


def decomposition_figure(nulls: DecompositionNulls) -> dict[str, Any]:
    """The signed fit's cosine-versus-k curve ``[k_max]`` and, per null family, its mean and q95 over k.

    Returns ``curve``, ``null_mean``/``null_q95`` (family -> ``[k_max]``), ``n_null`` (family -> draws),
    ``sae_cosine`` (SAE(v)'s cosine with v, or None) and ``k`` (the verdict's support size).
    """
    curve = nulls.curve.detach().to(torch.float64).cpu().reshape(-1)
    mean, q95, n_null = {}, {}, {}
    for family, draws in sorted(nulls.null_curves.items()):
        d = draws.detach().to(torch.float64).cpu().numpy().reshape(-1, curve.numel())
        mean[family] = [_f32(x) for x in d.mean(axis=0)]
        q95[family] = [_f32(x) for x in np.quantile(d, 0.95, axis=0)]
        n_null[family] = int(d.shape[0])
    sae_cosine = nulls.cosines.get("sae")
    return {
        "curve": [_f32(x) for x in curve.tolist()],
        "null_mean": mean,
        "null_q95": q95,
        "n_null": n_null,
        "sae_cosine": None if sae_cosine is None else float(sae_cosine),
        "k": int(nulls.k),
    }


def retention_figure(retention: Retention) -> dict[str, Any]:
    """Behaviour score per multiplier of each vector, its standard errors and the random slopes.

    Returns ``multipliers``, ``scores`` and ``score_se`` (vector name -> one value per multiplier;
    ``score_se`` only where known) and ``null_slopes`` (random directions of the original's norm).
    """
    slopes = retention.slopes
    return {
        "multipliers": [float(m) for m in retention.multipliers],
        "scores": {k: [float(x) for x in s.scores] for k, s in slopes.items()},
        "score_se": {k: [float(x) for x in s.score_se] for k, s in slopes.items() if s.score_se is not None},
        "null_slopes": [] if retention.null is None else [float(b) for b in retention.null.slopes],
    }


def _relevant(
    bias: BiasCheck, leaning: LeaningCheck, pairs: AlignedPairs, spurious: SpuriousCheck, limit: int
) -> list[int]:
    # features active on either prompt set, in SAE(v) or in SAE(0) (the most active ``limit``), and
    # every feature of a flagged or spurious pair
    weight = torch.stack(
        [
            leaning.mean_pos.detach().to(torch.float32).cpu(),
            leaning.mean_neg.detach().to(torch.float32).cpu(),
            bias.own.acts_vector.detach().to(torch.float32).cpu(),
            bias.own.acts_zero.detach().to(torch.float32).cpu(),
        ]
    ).amax(dim=0)
    chosen = set(_most(torch.nonzero(weight > 0).flatten(), weight, limit))
    for i, j, _ in _flagged(pairs, spurious):
        chosen |= {i, j}
    return sorted(chosen)


def _flagged(pairs: AlignedPairs, spurious: SpuriousCheck) -> list[tuple[int, int, float]]:
    # the pair search's pairs and each spurious coefficient's anchor pair, once each
    found = {(min(i, j), max(i, j)): float(c) for i, j, c in pairs.pairs}
    for s in spurious.spurious:
        found.setdefault((min(s.feature, s.explained_by), max(s.feature, s.explained_by)), float(s.cosine))
    return [(i, j, c) for (i, j), c in found.items()]


def _top(code: Tensor, k: int) -> list[int]:
    order = torch.sort(code, descending=True, stable=True).indices[:k]
    return [int(i) for i in order.tolist() if float(code[i]) > 0]


def _most(ids: Tensor, weight: Tensor, limit: int) -> Iterable[int]:
    # the ``limit`` ids of largest weight (ties by id)
    if ids.numel() > limit:
        order = torch.sort(weight[ids], descending=True, stable=True).indices[:limit]
        ids = ids[order]
    return (int(i) for i in ids.tolist())


def _f32(x: Any) -> float:
    # the shortest decimal that reads back as the same float32: plenty for a plot, a third of the bytes
    return float(str(np.float32(float(x))))
