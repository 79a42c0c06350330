"""Negative-leaning features: features that fire more on the negative prompts than the positive.

The steering vector writes negatively along such features, and an SAE, whose coefficients are
non-negative, cannot express that. Every figure stands against a null measured in the same run.

**Per feature**, the paired differences ``D = SAE(pos) - SAE(neg)`` ``[n_items, d_sae]`` (the item
is the unit: choice-swapped copies are averaged first) get a within-pair sign-flip test over a
Tarone-restricted *tested family* (:mod:`~sae_steer_checks.diagnostics.signflip`: exact where they
can be, refined near each feature's bound elsewhere); Holm and BH run over that family. A feature is
also left out of it when it cannot reach the minimum effect whatever the signs
(``mean_i |d_ij| < min_effect * typical_j``); like Tarone's rule this reads ``|D|`` only, which sign
flips leave unchanged, so the family is fixed under the null.

**The fraction** of active features leaning negative comes with a bootstrap interval over items and
its null distribution from whole-item sign flips (labels carry no information), reported as a
percentile. Features unrelated to the behaviour split evenly by noise, so the raw fraction sits near
one half whatever the truth; the null says how far from it noise alone goes.

**Minimum effect:** with many items every crosstalk-level difference becomes significant, so the
fraction is also given among features with ``|mean d_j| >= min_effect * typical_j``, where
``typical_j`` is feature j's mean activation over the prompts (both sets) on which it fires.

The *flagged* features are in the tested family, significant at FDR ``alpha``, lean negative, pass
the minimum effect and get 0 in SAE(v); the *candidates* are every negative-leaning feature past the
minimum effect with 0 in SAE(v), whatever its p-value. The flagged count has

- an **interval**: its lower end is the number of flagged features that also pass Holm's step-down
  test at family-wise level ``alpha`` (with probability at least ``1 - alpha`` all of those are real,
  so it is a ``1 - alpha`` lower confidence bound on the real ones); its upper end is the number of
  candidates;
- a **null**: the confirmed count (flagged and passing Holm, the figure the verdict reads) on
  ``n_null_tests`` copies of the data with each item's labels flipped at random: the same family (it
  depends on ``|D|`` only), the same p-value machinery on the same sign vectors (read as flips of each
  copy), refined only for the features that could be flagged in that copy and only to about
  ``4 m' / alpha`` flips, and the eligibility recomputed per copy: the minimum effect and the sign on
  the flipped means, and 0 in SAE(v) for the flipped steering vector when ``null_vector_codes`` gives
  its codes (:func:`leaning_check` builds them; without them the observed SAE(v) = 0 mask stands in).

**Verdict** (:attr:`LeaningCheck.status`): ``problem`` when at least one flagged feature passes
Holm's test and the number that pass exceeds the null's 95th percentile: under the complete null
Holm rejects anything with probability at most ``alpha``, so noise alone says ``problem`` at most
at that rate. ``fine`` only when there is no candidate at all (no feature that leans negative past
the minimum effect is dropped by SAE(v)): a candidate the test did not find significant is not shown
to be kept, so the verdict is then ``inconclusive``, as it is when features are flagged but too few
survive Holm or the null, or when a candidate could never have been tested (too few non-zero
differences for the family's bound, e.g. with few items or at a wide SAE).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from sae_steer_checks import stats
from sae_steer_checks._validate import validate_batch, validate_fraction
from sae_steer_checks.diagnostics.judged import Judged, Verdict
from sae_steer_checks.diagnostics.signflip import (
    NULL_RESOLUTION,
    FdrMethod,
    benjamini_hochberg,
    clean_differences,
    flip_budget,
    flip_pvalues,
    flip_schedule,
    flipped_t_pvalues,
    min_attainable,
    paired_t_pvalues,
    tarone_family,
)
from sae_steer_checks.diagnostics.space import SaeSpace, sae_space
from sae_steer_checks.sae.protocol import SAELike, as_float32, encode_activations, validate_sae

__all__ = [
    "FdrMethod",
    "LeaningCheck",
    "LeaningTest",
    "flipped_vector_codes",
    "leaning_check",
    "leaning_from_acts",
]

LeaningTest = Literal["sign_flip", "t"]

# Tolerance of the minimum-effect rule of the family against rounding of the float32 means.
_EFFECT_RTOL = 1e-6


@dataclass(frozen=True)
class LeaningCheck(Judged):
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
    """BH (or BY) adjusted p-values over the tested family ``[d_sae]`` (1 outside it)."""
    alpha: float
    """False-discovery-rate level (and the family-wise level of Holm's bound)."""
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
    """Sign vectors every feature that could still be significant receives (0 for the t-test)."""
    max_perm: int = 0
    """Most random sign vectors any feature received (exact counts not included; 0 for the t-test)."""
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
    """Features of the tested family rejected by Holm's step-down test at level ``alpha`` ``[d_sae]``."""
    vector_zero: Tensor | None = None
    """Features with coefficient 0 in SAE(v) ``[d_sae]`` (None when SAE(v) was not given)."""
    flagged_null: stats.NullSummary | None = None
    """The confirmed count (flagged and passing Holm) on whole-item label-flipped copies of the data."""
    tested: Tensor | None = None
    """The tested family ``[d_sae]`` (bool): the features Holm and BH run over (None: unknown)."""

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
    def untested_candidates(self) -> tuple[int, ...]:
        """Candidates outside the tested family: no outcome of the data could have flagged them."""
        if self.tested is None:
            return self.candidates
        return tuple(i for i in self.candidates if not bool(self.tested[i]))

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

    def _judge(self) -> tuple[Verdict, str]:
        confirmed = len(self.confirmed)
        if self.confirmed and confirmed > self.flagged_bound:
            return "problem", (
                f"{confirmed} flagged feature(s) pass Holm, more than the label-flip null's 95th percentile"
            )
        # a candidate leans negative past the minimum effect and is dropped by SAE(v): not finding it
        # significant is no evidence that it is not lost
        if self.flagged:
            return "inconclusive", "too few flagged features pass Holm and the label-flip null"
        if self.candidates:
            return "inconclusive", (
                "features that lean negative past the minimum effect get 0 in SAE(v), but none leans "
                "significantly"
            )
        return "fine", "SAE(v) drops no feature that leans negative past the minimum effect"

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
            "n_tested": int(self.tested.sum()) if self.tested is not None else n_active,
            "n_untested_candidates": len(self.untested_candidates),
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
            "verdict": self.status,
            "reason": self.reason,
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
    max_perm: int | None = None,
    n_null: int = 1000,
    n_boot: int = 1000,
    min_effect: float = 0.1,
    n_null_tests: int = 50,
    null_vector_codes: Callable[[Tensor], Tensor] | None = None,
    exact_nnz: int = 12,
    generator: torch.Generator | int | None = None,
) -> LeaningCheck:
    """Leaning of every feature from paired feature activations ``[n_pairs, d_sae]`` each.

    Args:
        acts_pos: SAE codes of the positive prompts ``[n_pairs, d_sae]``.
        acts_neg: SAE codes of the negative prompts, row i paired with row i of ``acts_pos``.
        alpha: False-discovery-rate level (and Holm's family-wise level).
        vector_acts: SAE(v) ``[d_sae]``, to list the negative-leaning features it drops.
        test: ``"sign_flip"`` (default) or ``"t"`` (paired t-test, liberal on zero-inflated codes).
        fdr_method: ``"bh"`` or ``"by"``.
        item_ids: Item of each row ``[n_pairs]``: rows sharing an item (choice-swapped copies) are
            averaged into one item before any test, interval or null.
        n_perm: Sign vectors every feature that may still be significant receives (see
            :func:`sign_flip_pvalues`); the label-flip null refines from its first screen on.
        max_perm: Most sign vectors a feature receives (None: about ``20 m' / alpha`` for a family
            of ``m'``, the resolution Holm's first bound needs).
        n_null: Whole-item sign vectors of the fraction's null.
        n_boot: Bootstrap draws of the fraction's interval.
        min_effect: Minimum effect as a share of each feature's mean activation where it fires.
        n_null_tests: Label-flipped copies of the data on which the flagged count is recomputed
            (its null; 0 skips it).
        null_vector_codes: Maps item sign vectors ``[B, n_items]`` (float64, +-1, rows in the order
            of the sorted item ids) to the SAE codes ``[B, d_sae]`` of the correspondingly
            label-flipped steering vectors, so that each null copy recomputes which features
            SAE(v) drops. Without it (codes only) every copy uses the observed SAE(v) = 0 mask.
            Only used with ``vector_acts``.
        exact_nnz: Features with at most this many non-zero item differences get exact p-values.
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
    if n_perm < 1 or (max_perm is not None and max_perm < 1):
        raise ValueError(f"n_perm and max_perm must be >= 1, got {n_perm} and {max_perm}")
    pos, neg = acts_pos.detach().cpu().to(torch.float64), acts_neg.detach().cpu().to(torch.float64)
    fires = torch.cat([pos, neg]) > 0
    firing = fires.sum(dim=0).to(torch.float32) / (2 * pos.shape[0])
    active = firing > 0
    typical = torch.cat([pos, neg]).clamp_min(0).sum(0) / fires.sum(0).clamp_min(1)
    if item_ids is not None:
        _, pos = stats.cluster_mean(pos, item_ids)
        _, neg = stats.cluster_mean(neg, item_ids)
    diffs = (pos - neg)[:, active]
    n_items, d_sae = pos.shape
    # float32 means as before the item-level rewrite: float64 would split rounding-level ties.
    mean_pos, mean_neg = pos.to(torch.float32).mean(dim=0), neg.to(torch.float32).mean(dim=0)
    lean = mean_pos - mean_neg
    large = active & (lean.abs() >= min_effect * typical)
    gen = stats.as_generator(generator)
    p_values = torch.ones(d_sae, dtype=torch.float64)
    q_values = torch.ones(d_sae, dtype=torch.float64)
    tested = torch.zeros(d_sae, dtype=torch.bool)
    holm = torch.zeros(d_sae, dtype=torch.bool)
    used, interval, null, flagged_null = 0, None, None, None
    zero = None if vector_acts is None else (vector_acts.detach().to(torch.float32).cpu() <= 0)
    if n_items >= 2 and diffs.shape[1]:
        act = torch.nonzero(active).flatten()
        clean = clean_differences(diffs)
        nnz = (clean != 0).sum(0)
        # the family: features that could reach the minimum effect (and, for sign flips, significance)
        family = clean.abs().mean(0) * (1 + _EFFECT_RTOL) >= min_effect * typical[act]
        if test == "sign_flip":
            family &= tarone_family(torch.where(family, min_attainable(nnz), 2.0), alpha, fdr_method)
        fam, rest = torch.nonzero(family).flatten(), torch.nonzero(~family).flatten()
        tested[act[fam]] = True
        copies = torch.ones(1 + n_null_tests, n_items, dtype=torch.float64)
        if n_null_tests:
            copies[1:] = stats.label_flips(n_null_tests, n_items, gen)
        # Eligibility of each label-flipped copy: negative and past the minimum effect on its own
        # means, and dropped by SAE(v) of its own flipped vector.
        flip_lean = copies[1:] @ diffs[:, fam] / n_items
        eligible = (flip_lean < 0) & (flip_lean.abs() >= min_effect * typical[act[fam]])
        if zero is not None:
            if null_vector_codes is not None and n_null_tests:
                codes = null_vector_codes(copies[1:]).detach().cpu()
                if tuple(codes.shape) != (n_null_tests, d_sae):
                    raise ValueError(
                        f"null_vector_codes must return [{n_null_tests}, {d_sae}] codes, "
                        f"got {list(codes.shape)}"
                    )
                eligible &= codes[:, act[fam]].to(torch.float32) <= 0
            else:
                eligible &= zero[act[fam]]
        if test == "sign_flip":
            budget = flip_budget(fam.numel(), alpha, fdr_method, n_perm, max_perm)
            # the null's cheaper aim: about 4 flips as extreme at the smallest bound
            null_budget = min(budget, flip_budget(fam.numel(), alpha, fdr_method, 1, None, NULL_RESOLUTION))
            refine = torch.ones(1 + n_null_tests, fam.numel(), dtype=torch.bool)
            refine[1:] = eligible
            min_flips = torch.zeros(1 + n_null_tests, dtype=torch.long)
            min_flips[0] = n_perm
            caps = torch.full((1 + n_null_tests,), null_budget, dtype=torch.long)
            caps[0] = budget
            p_fam, flips = flip_pvalues(
                clean[:, fam],
                copies,
                stages=flip_schedule(n_perm, budget, alpha, (null_budget,)),
                min_flips=min_flips,
                exact_nnz=exact_nnz,
                refine=refine,
                generator=gen,
                caps=caps,
            )
            p_rest, flips_rest = flip_pvalues(
                clean[:, rest],
                copies[:1],
                stages=flip_schedule(n_perm, n_perm, alpha),
                min_flips=min_flips[:1],
                exact_nnz=exact_nnz,
                refine=None,
                generator=gen,
            )
            used = max(
                int(flips[0].max()) if fam.numel() else 0, int(flips_rest.max()) if rest.numel() else 0
            )
        else:
            p_fam = torch.cat(
                [paired_t_pvalues(diffs[:, fam])[None], flipped_t_pvalues(diffs[:, fam], copies[1:])]
            )
            p_rest = paired_t_pvalues(diffs[:, rest])[None]
        p_act = torch.ones(act.numel(), dtype=torch.float64)
        p_act[fam], p_act[rest] = p_fam[0], p_rest[0]
        p_values[act] = p_act
        q_values[act[fam]] = benjamini_hochberg(p_fam[0], fdr_method)
        if fam.numel():
            holm[act[fam]] = stats.holm(p_fam[0], alpha)
        interval = stats.bootstrap_items(diffs, _negative_share, n_boot=n_boot, generator=gen)
        null = stats.fraction_null(diffs, _negative_share, n_perm=n_null, generator=gen)
        if n_null_tests:
            counts = torch.zeros(n_null_tests, dtype=torch.float64)
            for b in range(n_null_tests):
                if fam.numel():
                    # the verdict's statistic: flagged (BH) features that also pass Holm
                    q = benjamini_hochberg(p_fam[1 + b], fdr_method)
                    confirmed = (q <= alpha) & stats.holm(p_fam[1 + b], alpha) & eligible[b]
                    counts[b] = float(confirmed.sum())
            mask = (q_values <= alpha) & (lean < 0) & large & tested & holm
            if zero is not None:
                mask &= zero
            flagged_null = stats.summarize_null(float(mask.sum()), counts)
    dropped: tuple[int, ...] = ()
    if vector_acts is not None:
        mask = active & (q_values <= alpha) & (lean < 0) & (vector_acts.detach().to(torch.float32).cpu() <= 0)
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
        large_effect=large,
        vector_given=vector_acts is not None,
        holm_rejected=holm,
        vector_zero=zero,
        flagged_null=flagged_null,
        tested=tested,
    )


def flipped_vector_codes(
    sae: SAELike | SaeSpace,
    item_diffs: Tensor,
    sample: Tensor | None = None,
    *,
    batch_size: int = 4096,
) -> Callable[[Tensor], Tensor]:
    """The ``null_vector_codes`` map of :func:`leaning_from_acts` for an SAE.

    A sign vector ``s [n_items]`` stands for the steering vector of the label-flipped data,
    ``sum_i s_i item_diffs[i] / n_items`` (model space), which is mapped into the SAE's input space
    (:func:`vector_to_sae_space`, with the scale ``sample`` receives) and encoded with the SAE's own
    decoder-bias convention (:func:`encode_in_sae_space`), as SAE(v) is.

    Args:
        sae: The SAE, or the run's :class:`SaeSpace` (then ``sample`` and ``batch_size`` are not read).
        item_diffs: Per-item differences ``pos - neg`` in model space ``[n_items, d_in]`` (rows in
            the order of the sorted item ids).
        sample: Activations that set the input normalisation's scale (if the SAE has one).
        batch_size: Vectors encoded at once.

    Returns:
        A function from sign vectors ``[B, n_items]`` to SAE codes ``[B, d_sae]`` (float32, CPU).
    """
    space = sae_space(sae, sample, batch_size=batch_size)
    diffs = item_diffs.detach().to(torch.float64).cpu()

    def codes(signs: Tensor) -> Tensor:
        vectors = (signs.to(torch.float64).cpu() @ diffs / diffs.shape[0]).to(torch.float32)
        return space.encode(space.to_sae(vectors))

    return codes


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
    max_perm: int | None = None,
    n_null: int = 1000,
    n_boot: int = 1000,
    min_effect: float = 0.1,
    n_null_tests: int = 50,
    activations: Tensor | None = None,
    exact_nnz: int = 12,
    generator: torch.Generator | int | None = None,
) -> LeaningCheck:
    """Encode paired positive and negative activations ``[n_pairs, d_in]`` and compare features.

    The options after ``batch_size`` are those of :func:`leaning_from_acts`. With ``vector_acts``
    (SAE(v)), the label-flip null encodes each copy's flipped steering vector, the mean of the
    sign-flipped per-item differences ``pos - neg`` (:func:`flipped_vector_codes`), scaled into the
    SAE's input space as ``activations`` are (``pos`` and ``neg`` together when None).

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
    sample = (
        torch.cat([pos, neg]) if activations is None else validate_batch(activations, d_in, "activations")
    )
    sae = as_float32(sae)
    acts_pos = encode_activations(sae, pos, batch_size=batch_size)
    acts_neg = encode_activations(sae, neg, batch_size=batch_size)
    codes = None
    if vector_acts is not None and n_null_tests:
        item_diffs = pos.detach().to(torch.float64) - neg.detach().to(torch.float64)
        if item_ids is not None:
            _, item_diffs = stats.cluster_mean(item_diffs, item_ids)
        codes = flipped_vector_codes(sae, item_diffs, sample, batch_size=batch_size)
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
        null_vector_codes=codes,
        exact_nnz=exact_nnz,
        generator=generator,
    )
