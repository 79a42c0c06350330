"""Negative-leaning features: features that fire more on the negative prompts than the positive.

The steering vector writes negatively along such features, and an SAE, whose coefficients are
non-negative, cannot express that. Every figure stands against a null measured in the same run:

- **Per feature**, the paired differences ``D = SAE(pos) - SAE(neg)`` ``[n_items, d_sae]`` (the item
  is the unit: choice-swapped copies are averaged first) get a within-pair sign-flip permutation test,
  exact for paired designs and robust to zero-inflated codes, with Benjamini-Hochberg (or -Yekutieli)
  false-discovery-rate control over the active features. Features whose Monte Carlo p-value sits at
  the floor of the first ``n_perm`` flips get more flips (up to ``max_perm`` in all), so a wide SAE
  can still reject: see :func:`sign_flip_pvalues`. The paired t-test remains available (``test="t"``).
- **The fraction** of active features leaning negative comes with a bootstrap interval over items
  and its null distribution from whole-item sign flips (labels carry no information), reported as a
  percentile. Features unrelated to the behaviour split evenly by noise, so the raw fraction sits near
  one half whatever the truth; the null says how far from it noise alone goes.
- **Minimum effect:** with many items every crosstalk-level difference becomes significant, so the
  fraction is also given among features with ``|mean d_j| >= min_effect * typical_j``, where
  ``typical_j`` is feature j's mean activation over the prompts (both sets) on which it fires.

The *flagged* features are significant at FDR ``alpha``, lean negative, pass the minimum effect and
get 0 in SAE(v). Their count has
- an **interval**: its lower end is the number of flagged features that also pass Holm's step-down
  test at family-wise level ``alpha`` (with probability at least ``1 - alpha`` all of those are real,
  so it is a ``1 - alpha`` lower confidence bound on the real ones); its upper end is every candidate
  (negative, past the minimum effect, 0 in SAE(v), whatever its p-value);
- a **null**: the same count, by the same test and FDR control, on ``n_null_tests`` copies of the
  data with each item's labels flipped at random (what the procedure flags when labels mean nothing).

The verdict (:meth:`LeaningCheck.verdict`) says ``problem`` only when the interval's lower end is at
least one and above the null's 95th percentile: under the complete null (no feature leans) Holm
rejects anything with probability at most alpha, so noise alone says ``problem`` at most at rate
alpha. ``inconclusive`` when features are flagged but too few survive that bound, or when no feature
leans significantly (the contrast separates nothing); else ``fine``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy import stats as scipy_stats
from torch import Tensor

from sae_steer_checks import stats
from sae_steer_checks._validate import validate_batch, validate_fraction
from sae_steer_checks.sae.protocol import SAELike, as_float32, encode_activations, validate_sae

__all__ = [
    "FdrMethod",
    "LeaningCheck",
    "LeaningTest",
    "benjamini_hochberg",
    "leaning_check",
    "leaning_from_acts",
    "paired_t_pvalues",
    "sign_flip_pvalues",
]

LeaningTest = Literal["sign_flip", "t"]
FdrMethod = Literal["bh", "by"]
Verdict = Literal["problem", "fine", "inconclusive"]

# Features with at most this many flips as extreme as observed in the first round get refined.
_REFINE_HITS = 9
# Sign vectors per refinement round (a [B, n_items] float64 matrix).
_REFINE_ROUND = 16_000
# Flips of the same numbers can tie |T(s)| with |T| up to rounding; such ties count as "as extreme".
_TIE_RTOL = 1e-9
# Sparse columns tested exactly per batch ([chunk, 2**exact_nnz] float64).
_EXACT_CHUNK = 1024


@dataclass(frozen=True)
class LeaningCheck:
    """Per-feature leaning toward the positive or the negative prompt set, with its nulls."""

    mean_pos: Tensor
    """Mean activation on the positive prompts ``[d_sae]`` (mean over items)."""
    mean_neg: Tensor
    """Mean activation on the negative prompts ``[d_sae]`` (mean over items)."""
    firing_rate: Tensor
    """Share of all prompts (both sets) on which each feature fires ``[d_sae]``."""
    p_values: Tensor
    """Two-sided per-feature p-values ``[d_sae]`` (float64; 1 for inactive features)."""
    q_values: Tensor
    """BH (or BY) adjusted p-values over the active features ``[d_sae]`` (1 if inactive)."""
    alpha: float
    """False-discovery-rate level."""
    n_pairs: int
    """Number of (positive, negative) rows, choice-swapped copies counted."""
    dropped_by_encoder: tuple[int, ...]
    """Significant negative-leaning features with coefficient 0 in SAE(v), most negative first."""
    test: str = "t"
    """Per-feature test: ``"sign_flip"`` (permutation) or ``"t"`` (paired t-test)."""
    fdr_method: str = "bh"
    """``"bh"`` (Benjamini-Hochberg) or ``"by"`` (Benjamini-Yekutieli, any dependence)."""
    n_items: int = 0
    """Number of items (the unit of every test); 0 means ``n_pairs``."""
    n_perm: int = 0
    """Sign vectors of the first round of the per-feature test (0 for the t-test)."""
    max_perm: int = 0
    """Most sign vectors any feature received after refinement (0 for the t-test)."""
    fraction_interval: stats.Interval | None = None
    """Bootstrap interval over items of the negative-leaning fraction."""
    fraction_null: stats.NullDistribution | None = None
    """Whole-item sign-flip null of the negative-leaning fraction."""
    min_effect: float = 0.0
    """Minimum effect, as a share of each feature's typical (firing) activation."""
    large_effect: Tensor | None = None
    """Active features with ``|mean_pos - mean_neg| >= min_effect * typical`` ``[d_sae]`` (bool)."""
    vector_given: bool = False
    """Whether SAE(v) was given, so that ``dropped_by_encoder`` is meaningful."""
    holm_rejected: Tensor | None = None
    """Active features rejected by Holm's step-down test at family-wise level ``alpha`` ``[d_sae]``."""
    vector_zero: Tensor | None = None
    """Features with coefficient 0 in SAE(v) ``[d_sae]`` (None when SAE(v) was not given)."""
    flagged_null: stats.NullSummary | None = None
    """The flagged count on whole-item label-flipped copies of the data (same test and FDR control)."""

    def __post_init__(self) -> None:
        validate_fraction(self.alpha, "alpha")
        if self.n_pairs < 1:
            raise ValueError(f"n_pairs must be >= 1, got {self.n_pairs}")
        if not (math.isfinite(self.min_effect) and self.min_effect >= 0):
            raise ValueError(f"min_effect must be a finite number >= 0, got {self.min_effect}")

    @property
    def active(self) -> Tensor:
        """Features firing on at least one prompt of either set ``[d_sae]`` (bool)."""
        return self.firing_rate > 0

    @property
    def negative(self) -> Tensor:
        """Active features more active on the negative set ``[d_sae]`` (bool)."""
        return self.active & (self.mean_neg > self.mean_pos)

    @property
    def significant(self) -> Tensor:
        """Active features whose leaning is significant at FDR ``alpha`` ``[d_sae]`` (bool)."""
        return self.active & (self.q_values <= self.alpha)

    @property
    def flagged(self) -> tuple[int, ...]:
        """The features behind a ``problem`` verdict.

        Significant negative-leaning features that pass the minimum effect and that SAE(v) drops
        (all of them when SAE(v) was not given).
        """
        large = self.active if self.large_effect is None else self.large_effect
        if self.vector_given:
            return tuple(i for i in self.dropped_by_encoder if bool(large[i]))
        ids = torch.nonzero(self.significant & self.negative & large).flatten()
        return tuple(int(i) for i in ids.tolist())

    @property
    def candidates(self) -> tuple[int, ...]:
        """Negative-leaning features past the minimum effect that SAE(v) drops, whatever their p-value."""
        large = self.active if self.large_effect is None else self.large_effect
        mask = large & self.negative
        if self.vector_zero is not None:
            mask = mask & self.vector_zero
        return tuple(int(i) for i in torch.nonzero(mask).flatten().tolist())

    @property
    def confirmed(self) -> tuple[int, ...]:
        """Flagged features that also pass Holm's test (all real with probability >= 1 - alpha)."""
        if self.holm_rejected is None:
            return ()
        return tuple(i for i in self.flagged if bool(self.holm_rejected[i]))

    @property
    def flagged_bound(self) -> float:
        """What the interval's lower end must exceed for ``problem``: the null's 95th percentile (>= 0)."""
        return max(0.0, self.flagged_null.q95) if self.flagged_null is not None else 0.0

    def verdict(self) -> Verdict:
        """``problem`` / ``fine`` / ``inconclusive`` as defined in the module docstring."""
        if self.confirmed and len(self.confirmed) > self.flagged_bound:
            return "problem"
        if self.flagged:
            return "inconclusive"
        return "fine" if bool(self.significant.any()) else "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with the stable keys of the report's ``negative_leaning`` section."""
        n_active = int(self.active.sum())
        n_negative = int(self.negative.sum())
        sig = self.significant
        n_sig = int(sig.sum())
        n_sig_neg = int((sig & self.negative).sum())
        large = self.active if self.large_effect is None else self.large_effect
        n_large, n_large_neg = int(large.sum()), int((large & self.negative).sum())
        out: dict[str, Any] = {
            "fraction": n_negative / n_active if n_active else 0.0,
            "n_active": n_active,
            "n_negative": n_negative,
            "significant_fraction": n_sig_neg / n_sig if n_sig else 0.0,
            "n_significant": n_sig,
            "n_significant_negative": n_sig_neg,
            "alpha": self.alpha,
            "n_pairs": self.n_pairs,
            "dropped_by_encoder": list(self.dropped_by_encoder),
            "test": self.test,
            "fdr_method": self.fdr_method,
            "n_items": self.n_items or self.n_pairs,
            "n_perm": self.n_perm,
            "max_perm": self.max_perm,
            "min_effect": self.min_effect,
            "min_effect_definition": "|mean_pos - mean_neg| >= min_effect * mean activation where firing",
            "n_min_effect": n_large,
            "n_min_effect_negative": n_large_neg,
            "min_effect_fraction": n_large_neg / n_large if n_large else None,
            "fraction_interval": None,
            "fraction_null": None,
            "flagged": list(self.flagged),
            "flagged_interval": {
                "low": len(self.confirmed),
                "high": len(self.candidates),
                "level": 1 - self.alpha,
                "method": f"Holm (FWER {self.alpha:g}) lower bound; upper end: every candidate",
            },
            "confirmed": list(self.confirmed),
            "flagged_null": None,
            "flagged_bound": self.flagged_bound,
            "verdict": self.verdict(),
        }
        if self.flagged_null is not None:
            out["flagged_null"] = self.flagged_null.to_dict()
        if self.fraction_interval is not None:
            iv = self.fraction_interval
            out["fraction_interval"] = {
                "low": iv.ci_low,
                "high": iv.ci_high,
                "level": iv.level,
                "n_boot": iv.n_boot,
            }
        if self.fraction_null is not None:
            nd = self.fraction_null
            out["fraction_null"] = {
                "percentile": nd.percentile,
                "mean": nd.null_mean,
                "q05": nd.null_q05,
                "q95": nd.null_q95,
                "n_perm": int(nd.draws.numel()),
                "exact": nd.exact,
            }
        return out


def paired_t_pvalues(diffs: Tensor) -> Tensor:
    """Two-sided paired t-test p-values ``[d]`` (float64) per column of ``diffs [n_pairs, d]``.

    A column of identical differences gives p = 1 when they are zero and p = 0 otherwise; with a
    single pair nothing can be tested and every p-value is 1.
    """
    d = diffs.to(torch.float64)
    n = d.shape[0]
    if n < 2:
        return torch.ones(d.shape[1], dtype=torch.float64)
    mean = d.mean(dim=0)
    sd = d.std(dim=0, unbiased=True)
    p = torch.ones_like(mean)
    varying = sd > 0
    t = (mean[varying] / (sd[varying] / n**0.5)).abs().numpy()
    p[varying] = torch.from_numpy(2.0 * scipy_stats.t.sf(t, n - 1)).clamp(max=1.0)
    p[~varying & (mean != 0)] = 0.0
    return p


def sign_flip_pvalues(
    diffs: Tensor,
    *,
    n_perm: int = 4000,
    max_perm: int = 50_000,
    alpha: float = 0.05,
    exact_nnz: int = 12,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, int]:
    """Per-column two-sided sign-flip p-values ``[d]``: exact for sparse columns, refined near the floor.

    Only the non-zero differences of a column move under sign flips, so a column with at most
    ``exact_nnz`` of them gets the exact p-value over all ``2**nnz`` flips (most SAE features fire on
    few prompts). The other columns get ``n_perm`` random flips (:func:`stats.sign_flip_test`) giving
    p1. When the Monte Carlo floor ``1 / (n_perm + 1)`` is above the smallest BH cut-off
    ``alpha / m`` (m columns), columns with at most 9 flips as extreme get more flips, up to
    ``min(max_perm, 2 m / alpha)`` in all, and the pooled ``(1 + hits) / (1 + flips)``. Still valid: for
    t below the refinement cut-off only refined columns can reach t, and their pooled p is that of
    one long run; above it every refined column already had ``p1 <= t``; so ``P(p <= t) <= t``.

    Args:
        diffs: Per-item paired differences ``[n_items, d]``, ``n_items >= 2``.
        n_perm: Random sign vectors in the first round.
        max_perm: Most sign vectors a refined column gets.
        alpha: The FDR level the p-values are meant for (sets how far refinement goes).
        exact_nnz: Columns with at most this many non-zero differences are tested exactly.
        generator: Generator (seed 0 when None).

    Returns:
        P-values ``[d]`` (float64) and the most random sign vectors any column received (0 when
        every column was tested exactly).
    """
    d = diffs.to(torch.float64)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    nnz = (d != 0).sum(0)
    p = torch.ones(d.shape[1], dtype=torch.float64, device=d.device)
    sparse = torch.nonzero((nnz > 0) & (nnz <= exact_nnz)).flatten()
    if sparse.numel():
        width = int(nnz[sparse].max())
        bits = (torch.arange(2**width, device=d.device)[:, None] >> torch.arange(width, device=d.device)) & 1
        signs = (1 - 2 * bits).to(torch.float64).T
        for start in range(0, sparse.numel(), _EXACT_CHUNK):
            cols = sparse[start : start + _EXACT_CHUNK]
            # Each column's non-zero values, zero-padded to ``width``: a zero flips to itself, so the
            # 2**width flips hold every flip of the non-zero values equally often and p is unchanged.
            vals = d[:, cols].T.abs().topk(width, dim=1).indices
            vals = d[:, cols].T.gather(1, vals)
            flipped = (vals @ signs).abs_()
            observed = vals.sum(1).abs() - _TIE_RTOL * width * vals.abs().amax(1)
            p[cols] = (flipped >= observed[:, None]).sum(1).to(torch.float64) / 2**width
    dense = torch.nonzero(nnz > exact_nnz).flatten()
    if not dense.numel():
        return p, 0
    first = stats.sign_flip_test(d[:, dense], n_perm=n_perm, generator=gen)
    p[dense] = first.p_values
    total = min(max_perm, math.ceil(2 * d.shape[1] / alpha))
    if first.exact or total <= first.n_perm or 1 / (first.n_perm + 1) <= alpha / d.shape[1]:
        return p, first.n_perm
    hits = torch.round(first.p_values * (1 + first.n_perm) - 1)
    refine = dense[hits <= _REFINE_HITS]
    if not refine.numel():
        return p, first.n_perm
    more = hits[hits <= _REFINE_HITS].clone()
    extra, sub = 0, d[:, refine]
    # Rounds of a bounded size keep the [B, n] sign matrix small.
    while extra < total - first.n_perm:
        b = min(_REFINE_ROUND, total - first.n_perm - extra)
        r = stats.sign_flip_test(sub, n_perm=b, generator=gen)
        more += torch.round(r.p_values * (1 + b) - 1)
        extra += b
    p[refine] = (1 + more) / (1 + first.n_perm + extra)
    return p, first.n_perm + extra


def benjamini_hochberg(p_values: Tensor, method: FdrMethod = "bh") -> Tensor:
    """BH (``"bh"``) or BY (``"by"``) adjusted p-values (q-values) ``[m]`` float64 of ``p_values [m]``."""
    if method not in ("bh", "by"):
        raise ValueError(f"method must be 'bh' or 'by', got {method!r}")
    if p_values.numel() == 0:
        return p_values.to(torch.float64)
    q = scipy_stats.false_discovery_control(p_values.to(torch.float64).numpy(), method=method)
    return torch.from_numpy(np.asarray(q, dtype=np.float64))


def _negative_share(active_means: Tensor) -> Tensor:
    """Share of the non-zero columns of ``[B, m]`` mean differences (pos - neg) below 0 ``[B]``.

    Zero columns are left out: a feature firing in a few items drops out of a bootstrap draw that
    misses them, and counting it as "not negative" would pull the interval below the estimate.
    """
    nonzero = (active_means != 0).sum(1).clamp_min(1)
    return (active_means < 0).sum(1).to(torch.float64) / nonzero


def leaning_from_acts(
    acts_pos: Tensor,
    acts_neg: Tensor,
    *,
    alpha: float = 0.05,
    vector_acts: Tensor | None = None,
    test: LeaningTest = "sign_flip",
    fdr_method: FdrMethod = "bh",
    item_ids: Tensor | None = None,
    n_perm: int = 4000,
    max_perm: int = 50_000,
    n_null: int = 1000,
    n_boot: int = 1000,
    min_effect: float = 0.1,
    n_null_tests: int = 50,
    generator: torch.Generator | int | None = None,
) -> LeaningCheck:
    """Leaning of every feature from paired feature activations ``[n_pairs, d_sae]`` each.

    Args:
        acts_pos: SAE codes of the positive prompts ``[n_pairs, d_sae]``.
        acts_neg: SAE codes of the negative prompts, row i paired with row i of ``acts_pos``.
        alpha: False-discovery-rate level.
        vector_acts: SAE(v) ``[d_sae]``, to list the negative-leaning features it drops.
        test: ``"sign_flip"`` (default) or ``"t"`` (paired t-test, liberal on zero-inflated codes).
        fdr_method: ``"bh"`` or ``"by"``.
        item_ids: Item of each row ``[n_pairs]``: rows sharing an item (choice-swapped copies) are
            averaged into one item before any test, interval or null.
        n_perm: First-round sign vectors of the per-feature test (see :func:`sign_flip_pvalues`).
        max_perm: Sign vectors in all for features refined near the p-value floor.
        n_null: Whole-item sign vectors of the fraction's null.
        n_boot: Bootstrap draws of the fraction's interval.
        min_effect: Minimum effect as a share of each feature's mean activation where it fires.
        n_null_tests: Label-flipped copies of the data on which the flagged count is recomputed
            (its null; 0 skips it).
        generator: Generator or integer seed of every random draw (seed 0 when None).

    Returns:
        A :class:`LeaningCheck`.
    """
    if acts_pos.shape != acts_neg.shape or acts_pos.ndim != 2:
        raise ValueError(
            f"acts_pos and acts_neg must both have shape [n_pairs, d_sae], got "
            f"{list(acts_pos.shape)} and {list(acts_neg.shape)}"
        )
    alpha = validate_fraction(alpha, "alpha")
    if test not in ("sign_flip", "t"):
        raise ValueError(f"test must be 'sign_flip' or 't', got {test!r}")
    if fdr_method not in ("bh", "by"):
        raise ValueError(f"fdr_method must be 'bh' or 'by', got {fdr_method!r}")
    if not (math.isfinite(min_effect) and min_effect >= 0):
        raise ValueError(f"min_effect must be a finite number >= 0, got {min_effect}")
    if isinstance(n_null_tests, bool) or not isinstance(n_null_tests, int) or n_null_tests < 0:
        raise ValueError(f"n_null_tests must be an integer >= 0, got {n_null_tests!r}")
    pos, neg = acts_pos.to(torch.float64), acts_neg.to(torch.float64)
    fires = torch.cat([pos, neg]) > 0
    firing = fires.sum(dim=0).to(torch.float32) / (2 * pos.shape[0])
    active = firing > 0
    typical = torch.cat([pos, neg]).clamp_min(0).sum(0) / fires.sum(0).clamp_min(1)
    if item_ids is not None:
        _, pos = stats.cluster_mean(pos, item_ids)
        _, neg = stats.cluster_mean(neg, item_ids)
    diffs = (pos - neg)[:, active]
    n_items = pos.shape[0]
    # float32 means as before the item-level rewrite: float64 would split rounding-level ties.
    mean_pos, mean_neg = pos.to(torch.float32).mean(dim=0), neg.to(torch.float32).mean(dim=0)
    lean = mean_pos - mean_neg
    gen = stats.as_generator(generator)
    p_values = torch.ones(pos.shape[1], dtype=torch.float64)
    q_values = torch.ones(pos.shape[1], dtype=torch.float64)
    used, interval, null, flagged_null = 0, None, None, None
    holm = torch.zeros(pos.shape[1], dtype=torch.bool)
    zero = None if vector_acts is None else (vector_acts.to(torch.float32).cpu() <= 0)
    # where a flagged feature may be: past the minimum effect and, with SAE(v), dropped by it
    eligible = (lean.abs() >= min_effect * typical)[active]
    if zero is not None:
        eligible &= zero[active]

    def pvalues(d: Tensor) -> tuple[Tensor, int]:
        if test == "sign_flip":
            return sign_flip_pvalues(d, n_perm=n_perm, max_perm=max_perm, alpha=alpha, generator=gen)
        return paired_t_pvalues(d), 0

    if n_items >= 2 and diffs.shape[1]:
        p_values[active], used = pvalues(diffs)
        q_values[active] = benjamini_hochberg(p_values[active], fdr_method)
        holm[active] = stats.holm(p_values[active], alpha)
        interval = stats.bootstrap_items(diffs, _negative_share, n_boot=n_boot, generator=gen)
        null = stats.fraction_null(diffs, _negative_share, n_perm=n_null, generator=gen)
        if n_null_tests:
            counts = torch.empty(n_null_tests, dtype=torch.float64)
            for b in range(n_null_tests):
                flips = torch.randint(0, 2, (n_items, 1), generator=gen, dtype=torch.float64) * 2 - 1
                flipped = diffs * flips
                q = benjamini_hochberg(pvalues(flipped)[0], fdr_method)
                counts[b] = float(((q <= alpha) & (flipped.mean(0) < 0) & eligible).sum())
            observed = float(((q_values[active] <= alpha) & (lean[active] < 0) & eligible).sum())
            flagged_null = stats.summarize_null(observed, counts)
    dropped: tuple[int, ...] = ()
    if vector_acts is not None:
        mask = active & (q_values <= alpha) & (lean < 0) & (vector_acts.to(torch.float32) <= 0)
        ids = torch.nonzero(mask).flatten()
        order = torch.sort(lean[ids], stable=True).indices
        dropped = tuple(int(i) for i in ids[order].tolist())
    return LeaningCheck(
        mean_pos=mean_pos,
        mean_neg=mean_neg,
        firing_rate=firing,
        p_values=p_values,
        q_values=q_values,
        alpha=alpha,
        n_pairs=int(acts_pos.shape[0]),
        dropped_by_encoder=dropped,
        test=test,
        fdr_method=fdr_method,
        n_items=n_items,
        n_perm=n_perm if test == "sign_flip" else 0,
        max_perm=used,
        fraction_interval=interval,
        fraction_null=null,
        min_effect=float(min_effect),
        large_effect=active & (lean.abs() >= min_effect * typical),
        vector_given=vector_acts is not None,
        holm_rejected=holm,
        vector_zero=zero,
        flagged_null=flagged_null,
    )


def leaning_check(
    sae: SAELike,
    pos: Tensor,
    neg: Tensor,
    *,
    alpha: float = 0.05,
    vector_acts: Tensor | None = None,
    batch_size: int = 4096,
    test: LeaningTest = "sign_flip",
    fdr_method: FdrMethod = "bh",
    item_ids: Tensor | None = None,
    n_perm: int = 4000,
    max_perm: int = 50_000,
    n_null: int = 1000,
    n_boot: int = 1000,
    min_effect: float = 0.1,
    n_null_tests: int = 50,
    generator: torch.Generator | int | None = None,
) -> LeaningCheck:
    """Encode paired positive and negative activations ``[n_pairs, d_in]`` and compare features.

    The options after ``batch_size`` are those of :func:`leaning_from_acts`.

    Returns:
        A :class:`LeaningCheck`; row i of ``pos`` and of ``neg`` must come from the same pair.
    """
    d_in, _ = validate_sae(sae)
    pos = validate_batch(pos, d_in, "pos")
    neg = validate_batch(neg, d_in, "neg")
    if pos.shape[0] != neg.shape[0]:
        raise ValueError(
            f"pos and neg must hold the same number of paired rows, got {pos.shape[0]} and {neg.shape[0]}"
        )
    sae = as_float32(sae)
    acts_pos = encode_activations(sae, pos, batch_size=batch_size)
    acts_neg = encode_activations(sae, neg, batch_size=batch_size)
    return leaning_from_acts(
        acts_pos,
        acts_neg,
        alpha=alpha,
        vector_acts=vector_acts,
        test=test,
        fdr_method=fdr_method,
        item_ids=item_ids,
        n_perm=n_perm,
        max_perm=max_perm,
        n_null=n_null,
        n_boot=n_boot,
        min_effect=min_effect,
        n_null_tests=n_null_tests,
        generator=generator,
    )
