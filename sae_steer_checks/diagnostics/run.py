"""One call that runs every check on an SAE and a steering vector; returns a :class:`CheckResult`.

:func:`run_checks` is a pipeline: the inputs every check shares are computed once
(:func:`~sae_steer_checks.diagnostics.prepare.prepare_inputs`), then each check is one call that
returns its finished result, status and rule included. ``CheckResult.to_report()`` gives the
report's diagnostic sections; ``report.build_report`` adds the schema version, the verdicts (put into
words from those sections) and the caller's provenance (diagnostics never import ``report``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from sae_steer_checks._provenance import versions
from sae_steer_checks._validate import validate_fraction, validate_positive_int
from sae_steer_checks.diagnostics.ablation import Ablation, ablation_check
from sae_steer_checks.diagnostics.accounts import METHODS, Accounts, account_for
from sae_steer_checks.diagnostics.bias import BiasCheck, bias_check
from sae_steer_checks.diagnostics.decompose import DecompositionSummary, SparseCode
from sae_steer_checks.diagnostics.figures import figure_data
from sae_steer_checks.diagnostics.leaning import (
    FdrMethod,
    LeaningCheck,
    LeaningTest,
    flipped_vector_codes,
    leaning_from_acts,
)
from sae_steer_checks.diagnostics.learned import (
    LearnedLike,
    LearnedSummary,
    learned_summary,
    validate_learned,
)
from sae_steer_checks.diagnostics.norms import NormCheck, norm_check
from sae_steer_checks.diagnostics.nulls import DecompositionNulls, decomposition_nulls
from sae_steer_checks.diagnostics.pairs import AlignedPairs, find_aligned_pairs
from sae_steer_checks.diagnostics.prepare import SharedInputs, prepare_inputs
from sae_steer_checks.diagnostics.retention import (
    DEFAULT_MULTIPLIERS,
    DEFAULT_THRESHOLD,
    Retention,
    ScoreFn,
    retention_check,
)
from sae_steer_checks.diagnostics.spurious import SpuriousCheck, spurious_check
from sae_steer_checks.sae.protocol import SAELike

__all__ = ["CheckConfig", "CheckResult", "run_checks"]


@dataclass(frozen=True)
class CheckConfig:
    """The statistics and bounds of :func:`run_checks` (device, batch and tile sizes are its arguments)."""

    top_k: int = 5
    """Top features compared between SAE(v) and SAE(0)."""
    alpha: float = 0.05
    """Level of every test: the leaning FDR and family-wise bound, each Monte Carlo gate (steering,
    decomposition), the one-sided retention tests."""
    pair_threshold: float = -0.5
    """Decoder cosine below which a pair counts as negatively aligned."""
    rare_rate: float = 0.05
    """A feature firing on at most this share of prompts counts as rare (spurious check)."""
    signed_k: int = 32
    """Support size of the signed decompositions (capped at d_sae)."""
    signed_method: str = "omp"
    """Which signed decomposition is reported as ``signed``: "omp" or "gradient_pursuit"."""
    multipliers: tuple[float, ...] = DEFAULT_MULTIPLIERS
    """Multipliers for the retention slopes."""
    leaning_test: LeaningTest = "sign_flip"
    """Per-feature test of the leaning: within-item sign flips (exact for paired designs) or a paired t."""
    fdr_method: FdrMethod = "bh"
    """Multiple-testing control: Benjamini-Hochberg ("bh") or Benjamini-Yekutieli ("by", any dependence)."""
    leaning_n_perm: int = 4000
    """Sign flips per feature in the leaning test's first round (refined near each feature's bound).
    Not a null draw: the per-feature p-values' resolution, apart from ``n_null``'s label-flipped copies."""
    min_effect: float = 0.1
    """Minimum lean: ``|mean difference| >= min_effect *`` the feature's mean activation where it fires."""
    min_share: float = 0.5
    """A positive SAE(v) coefficient is spurious only when its anchor carries this share of its change."""
    n_null: int = 39
    """Draws of every null: random and label-shuffled vectors per decomposition family, label flips of
    the leaning test, and random directions of the steering gate (split between isotropic and
    covariance-shaped). 39 is the least that lets a Monte Carlo p-value ``(1 + #) / (1 + n)`` reach
    0.025."""
    n_boot: int = 200
    """Bootstrap draws over items of every interval (bias, spurious share, leaning fraction, the
    signed-fit gap, the retention test)."""
    k_max: int = 64
    """Longest support of the signed fit's cosine-versus-k curve."""
    min_gap: float = 0.1
    """Smallest cosine gap between the signed fit and SAE(v) that a decomposition ``problem`` needs."""
    retained: float = DEFAULT_THRESHOLD
    """Share of the original slope a reconstruction must keep; "problem" only when the one-sided test
    says the ratio lies below it."""
    norm_percentile: float = 1.0
    """Percentile of activation norms below which the vector counts as out of distribution."""
    bias_share: float = 0.5
    """Share of SAE(v)'s mass in SAE(0) above which (and above ordinary activations) the bias decides."""
    ablation_cost: float = 0.2
    """Share of v's slope the ablation's cost is judged against: ``problem`` when the cost's interval lies
    above it, ``fine`` when below (random removals are a reported baseline, not a gate)."""
    seed: int = 0
    """Seed of the run: each null, permutation and bootstrap draws from its own stream spawned from it."""

    def __post_init__(self) -> None:
        for name in ("top_k", "signed_k", "leaning_n_perm", "n_null", "k_max", "n_boot"):
            validate_positive_int(getattr(self, name), name)
        validate_fraction(self.alpha, "alpha")
        if 1 / (1 + self.n_null) > self.alpha:
            raise ValueError(
                f"n_null={self.n_null} draws cannot give a Monte Carlo p-value at or below "
                f"alpha={self.alpha}: use n_null >= {math.ceil(1 / self.alpha - 1)}"
            )
        if not 0.0 < self.norm_percentile < 100.0:
            raise ValueError(f"norm_percentile must be a percentile in (0, 100), got {self.norm_percentile}")
        validate_fraction(self.bias_share, "bias_share")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        validate_fraction(self.rare_rate, "rare_rate", open_low=False)
        validate_fraction(self.min_share, "min_share", open_low=False)
        validate_fraction(self.retained, "retained")
        validate_fraction(self.ablation_cost, "ablation_cost")
        if self.min_effect < 0:
            raise ValueError(f"min_effect must be >= 0, got {self.min_effect}")
        if not 0.0 <= self.min_gap < 2.0:
            raise ValueError(f"min_gap must be a cosine gap in [0, 2), got {self.min_gap}")
        if not -1.0 <= self.pair_threshold <= 1.0:
            raise ValueError(f"pair_threshold must be a cosine in [-1, 1], got {self.pair_threshold}")
        if self.signed_method not in METHODS:
            raise ValueError(f"signed_method must be one of {METHODS}, got {self.signed_method!r}")
        if len(set(self.multipliers)) < 2:
            raise ValueError(f"multipliers must hold two distinct values, got {self.multipliers}")


@dataclass(frozen=True)
class CheckResult:
    """Everything :func:`run_checks` found; ``to_report()`` gives the report's sections."""

    config: CheckConfig
    """The settings used."""
    provenance: dict[str, Any]
    """Library versions, SAE description, widths and activation source."""
    norm: NormCheck
    """Steering-vector norm against activation norms."""
    bias: BiasCheck
    """SAE(v) against SAE(0) under both decoder-bias conventions."""
    leaning: LeaningCheck
    """Per-feature leaning toward the positive or negative prompts."""
    pairs: AlignedPairs
    """Negatively aligned decoder pairs."""
    spurious: SpuriousCheck
    """Explanations of positive SAE(v) coefficients on rare features; sign conflicts."""
    codes: dict[str, SparseCode]
    """Signed decompositions of the vector (in SAE input space) by method."""
    decompositions: dict[str, DecompositionSummary]
    """``sae``, ``signed`` and each method -> reconstruction quality."""
    nulls: DecompositionNulls | None = field(default=None)
    """Each account's cosine with v beside random and shuffled null vectors; the cosine-vs-k curves."""
    retention: Retention | None = field(default=None)
    """Steerability slopes, when a score function was given."""
    ablation: Ablation | None = field(default=None)
    """Steering without the lost projections and with them alone, when a score function was given."""
    learned: LearnedSummary | None = field(default=None)
    """A steering vector learned in the SAE basis, when one was given (its slope is in ``retention``)."""
    figures: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The numbers the report's plots draw (histograms, plotted features), JSON-ready; see
    :func:`~sae_steer_checks.diagnostics.figures.figure_data`."""

    def to_report(self, max_listed_pairs: int = 1000) -> dict[str, Any]:
        """The report's diagnostic sections and provenance (stable keys; identical for identical inputs).

        At most ``max_listed_pairs`` aligned pairs are listed (all are counted).
        ``sae_steer_checks.report.build_report`` turns this into the full
        :class:`~sae_steer_checks.report.schema.Report` (schema version, verdicts, validation).
        """
        return {
            "provenance": dict(self.provenance),
            "norm": self.norm.to_dict(),
            "bias": self.bias.to_dict(),
            "negative_leaning": self.leaning.to_dict(),
            "aligned_pairs": {
                **self.pairs.to_dict(max_listed_pairs),
                **self.spurious.to_dict(),
            },
            "decompositions": {
                name: {**s.to_dict(), **self._method_info(name)}
                for name, s in sorted(self.decompositions.items())
            },
            "decomposition_nulls": None if self.nulls is None else self.nulls.to_dict(),
            "retention": None if self.retention is None else self.retention.to_dict(),
            "ablation": None if self.ablation is None else self.ablation.to_dict(),
            "learned": None if self.learned is None else self.learned.to_dict(),
            "figures": None if self.figures is None else dict(self.figures),
        }

    def to_dict(self) -> dict[str, Any]:
        """Deprecated alias of :meth:`to_report` (no warning yet: tests outside the report still call it)."""
        return self.to_report()

    def to_json(self) -> str:
        """The report's sections (:meth:`to_report`) as JSON text with sorted keys."""
        return json.dumps(self.to_report(), sort_keys=True, indent=2)

    def _method_info(self, name: str) -> dict[str, Any]:
        if name == "sae":
            return {"method": "sae_encoder"}
        method = self.config.signed_method if name == "signed" else name
        return {"method": method, "k": int(self.codes[method].indices.shape[1])}


def run_checks(
    sae: SAELike,
    vector: Tensor,
    pos: Tensor,
    neg: Tensor,
    activations: Tensor | None = None,
    *,
    item_ids: Tensor | None = None,
    score_fn: ScoreFn | None = None,
    learned: LearnedLike | None = None,
    config: CheckConfig = CheckConfig(),
    device: str | torch.device | None = None,
    progress: bool = False,
    batch_size: int = 4096,
    block_size: int = 2048,
) -> CheckResult:
    """Run every check on ``sae`` and the steering ``vector``.

    Args:
        sae: any :class:`SAELike` (computed in float32 whatever its dtype).
        vector: steering vector ``[d_in]`` (a zero vector is valid).
        pos: positive activations ``[n_pairs, d_in]`` at the answer token.
        neg: negative activations ``[n_pairs, d_in]``, paired row by row with ``pos``.
        activations: ordinary activations ``[n, d_in]`` at the same layer; without them the
            positive and negative activations stand in (norms, live features, delta view).
        item_ids: the item of each pair ``[n_pairs]`` (int): rows sharing an id, such as an A/B item and
            its choice-swapped copy, count as one unit in every test, interval and null.
        score_fn: behaviour score of an added vector; enables the retention section.
        learned: a steering vector learned in the SAE basis (``steering.learn_in_sae_basis``): swept
            beside v in the retention check (``learned``, its share of v's slope) and summarised in
            the ``learned`` section.
        config: statistics and bounds (``config.multipliers`` are the retention sweep's multipliers).
        device: where the pair search and decompositions run (default: the SAE's device).
        progress: show progress bars.
        batch_size: rows encoded at once.
        block_size: tile side of the pair search (bounds its memory).

    Returns:
        A frozen :class:`CheckResult`.
    """
    s = prepare_inputs(
        sae, vector, pos, neg, activations, item_ids=item_ids, n_boot=config.n_boot, n_null=config.n_null,
        seed=config.seed, batch_size=batch_size,
    )  # fmt: skip
    space = s.space
    if learned is not None:
        validate_learned(learned, space.d_in, space.d_sae)
    norm = norm_check(s.vector, s.ordinary.rows, items=s.diffs, bound_percentile=config.norm_percentile)
    bias = bias_check(
        space, s.vector, s.ordinary, draws=s.draws, top_k=config.top_k, share_threshold=config.bias_share
    )
    f_v, f_0 = bias.own.acts_vector, bias.own.acts_zero
    leaning = leaning_from_acts(
        s.pos_codes, s.neg_codes, alpha=config.alpha, vector_acts=f_v, test=config.leaning_test,
        fdr_method=config.fdr_method, item_ids=s.item_ids, n_perm=config.leaning_n_perm,
        n_null=config.n_null, n_boot=config.n_boot, min_effect=config.min_effect,
        n_null_tests=config.n_null, null_vector_codes=flipped_vector_codes(space, s.diffs),
        generator=s.rng["leaning"],
    )  # fmt: skip
    pairs = find_aligned_pairs(
        space.sae.W_dec, config.pair_threshold, live=s.ordinary.live, block_size=block_size,
        device=device, progress=progress,
    )  # fmt: skip
    accounts = account_for(
        space, s.v_sae, f_v, k=min(config.signed_k, space.d_sae), signed_method=config.signed_method,
        device=device,
    )  # fmt: skip
    spurious = spurious_check(
        space.W_dec, space.W_enc, s.v_sae, f_v, f_0, leaning.firing_rate, negative=leaning.negative,
        signed_coefficients=accounts.signed.dense()[0], threshold=config.pair_threshold,
        rare_rate=config.rare_rate, min_share=config.min_share, draws=s.draws, code_diffs=s.code_diffs,
        # the share's reference comes with its draws: a single item gets neither
        ordinary=s.ordinary if s.draws is not None else None,
    )  # fmt: skip
    nulls = decomposition_nulls(
        space, s.v_sae, activations=s.ordinary.rows, pos=s.pos, neg=s.neg, item_ids=s.item_ids,
        n_null=config.n_null, k_max=min(config.k_max, space.d_sae), min_gap=config.min_gap,
        alpha=config.alpha, bootstrap=None if s.draws is None else s.draws.bootstrap,
        generator=s.rng["nulls"], device=device,
    )  # fmt: skip
    kept = None if score_fn is None else _retention(score_fn, s, accounts, config, learned)
    ablation = None if kept is None else _ablation(score_fn, s, leaning, kept, config)
    sample_norms = s.ordinary.rows.detach().to(torch.float64).norm(dim=-1).cpu()
    return CheckResult(
        config=config,
        provenance=_provenance(s, config),
        norm=norm,
        bias=bias,
        leaning=leaning,
        pairs=pairs,
        spurious=spurious,
        codes=accounts.codes,
        decompositions=accounts.summaries,
        nulls=nulls,
        retention=kept,
        ablation=ablation,
        learned=None if learned is None else _learned(learned, s, f_v, accounts, config),
        figures=figure_data(space.W_dec, sample_norms, norm, bias, leaning, pairs, spurious, nulls, kept),
    )


def _retention(
    score_fn: ScoreFn, s: SharedInputs, accounts: Accounts, config: CheckConfig, learned: LearnedLike | None
) -> Retention:
    """Steering with v, SAE(v), the signed fit (mapped back into model space) and a learned vector."""
    recon = accounts.reconstructions
    vectors = {
        "original": s.vector,
        "sae": s.space.from_sae(recon["sae"]),
        "signed": s.space.from_sae(recon[config.signed_method]),
    }
    if learned is not None:
        vectors["learned"] = validate_learned(learned, s.space.d_in, s.space.d_sae)
    return retention_check(
        score_fn,
        vectors,
        config.multipliers,
        # n_null directions in all: half isotropic, half covariance-shaped (all isotropic without
        # ordinary activations)
        n_random=math.ceil(config.n_null / 2) if s.activations is not None else config.n_null,
        activations=s.activations,
        generator=s.rng["retention"],
        threshold=config.retained,
        alpha=config.alpha,
        n_boot=config.n_boot,
    )


def _ablation(
    score_fn: ScoreFn | None, s: SharedInputs, leaning: LeaningCheck, kept: Retention, config: CheckConfig
) -> Ablation:
    """Steering without the lost projections (the BH-flagged features' span); random live rows as baseline."""
    return ablation_check(
        score_fn, s.space, s.vector, leaning.flagged, s.ordinary.live, config.multipliers,
        steers=kept.steers, n_null=config.n_null, alpha=config.alpha, max_cost=config.ablation_cost,
        n_boot=config.n_boot, generator=s.rng["ablation"],
    )  # fmt: skip


def _learned(
    learned: LearnedLike, s: SharedInputs, f_v: Tensor, accounts: Accounts, config: CheckConfig
) -> LearnedSummary:
    """The learned vector's support, signs, cosine with v, norm percentile and overlap with the accounts."""
    return learned_summary(
        learned, s.vector, s.ordinary.rows.detach().to(torch.float64).norm(dim=-1).cpu(),
        sae_active=f_v.reshape(-1) > 0, signed_support=accounts.codes[config.signed_method].indices[0],
    )  # fmt: skip


def _provenance(s: SharedInputs, config: CheckConfig) -> dict[str, Any]:
    """What the run records about itself: versions, seed, settings, the SAE, widths and sources."""
    return {
        "versions": versions(),
        "seed": config.seed,
        "config": {k: list(x) if isinstance(x, tuple) else x for k, x in asdict(config).items()},
        "unit": "item (rows sharing an item id are one unit)" if s.item_ids is not None else "row",
        "sae": s.description,
        "d_model": s.space.d_in,
        "d_sae": s.space.d_sae,
        "n_pairs": int(s.pos.shape[0]),
        "n_activations": int(s.ordinary.rows.shape[0]),
        "activation_source": s.source,
        "reconstruction": "decoder-bias-free feature part decode(f) - decode(0)",
    }
