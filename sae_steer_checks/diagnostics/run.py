"""One call that runs every diagnostic on an SAE and a steering vector; returns a :class:`CheckResult`.

``CheckResult.to_report()`` gives the report's diagnostic sections; ``report.build_report`` adds
the schema version, the verdicts and the caller's provenance (diagnostics never import ``report``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from sae_steer_checks._provenance import versions
from sae_steer_checks._validate import (
    validate_batch,
    validate_fraction,
    validate_positive_int,
    validate_vector,
)
from sae_steer_checks.diagnostics.bias import BiasCheck, bias_check
from sae_steer_checks.diagnostics.decompose import (
    DecompositionSummary,
    SparseCode,
    gradient_pursuit,
    omp,
    summarize_reconstruction,
)
from sae_steer_checks.diagnostics.figures import figure_data
from sae_steer_checks.diagnostics.leaning import (
    FdrMethod,
    LeaningCheck,
    LeaningTest,
    flipped_vector_codes,
    leaning_from_acts,
)
from sae_steer_checks.diagnostics.norms import NormCheck, norm_check
from sae_steer_checks.diagnostics.nulls import DecompositionNulls, decomposition_nulls
from sae_steer_checks.diagnostics.pairs import AlignedPairs, find_aligned_pairs
from sae_steer_checks.diagnostics.resample import item_differences, vector_draws
from sae_steer_checks.diagnostics.retention import (
    DEFAULT_MULTIPLIERS,
    DEFAULT_THRESHOLD,
    Retention,
    ScoreFn,
    retention,
)
from sae_steer_checks.diagnostics.spurious import SpuriousCheck, anchor_pairs, largest_shares, spurious_check
from sae_steer_checks.sae.protocol import (
    SAELike,
    as_float32,
    decode_features,
    describe_sae,
    encode_activations,
    encode_in_sae_space,
    validate_sae,
    vector_from_sae_space,
    vector_to_sae_space,
)
from sae_steer_checks.stats.draws import streams

__all__ = ["CheckConfig", "CheckResult", "run_checks"]

_METHODS = ("omp", "gradient_pursuit")


@dataclass(frozen=True)
class CheckConfig:
    """Settings of :func:`run_checks` (device and generators are arguments, not settings)."""

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
    block_size: int = 2048
    """Tile side of the pair search (bounds its memory)."""
    batch_size: int = 4096
    """Rows encoded at once."""
    max_listed_pairs: int = 1000
    """At most this many aligned pairs are listed in the report (all are counted)."""
    leaning_test: LeaningTest = "sign_flip"
    """Per-feature test of the leaning: within-item sign flips (exact for paired designs) or a paired t."""
    fdr_method: FdrMethod = "bh"
    """Multiple-testing control: Benjamini-Hochberg ("bh") or Benjamini-Yekutieli ("by", any dependence)."""
    leaning_n_perm: int = 4000
    """Sign flips per feature in the leaning test's first round (refined near each feature's bound)."""
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
    seed: int = 0
    """Seed of the run: each null, permutation and bootstrap draws from its own stream spawned from it."""

    def __post_init__(self) -> None:
        for name in ("top_k", "signed_k", "block_size", "batch_size", "max_listed_pairs", "leaning_n_perm"):
            validate_positive_int(getattr(self, name), name)
        for name in ("n_null", "k_max", "n_boot"):
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
        if self.min_effect < 0:
            raise ValueError(f"min_effect must be >= 0, got {self.min_effect}")
        if not 0.0 <= self.min_gap < 2.0:
            raise ValueError(f"min_gap must be a cosine gap in [0, 2), got {self.min_gap}")
        if not -1.0 <= self.pair_threshold <= 1.0:
            raise ValueError(f"pair_threshold must be a cosine in [-1, 1], got {self.pair_threshold}")
        if self.signed_method not in _METHODS:
            raise ValueError(f"signed_method must be one of {_METHODS}, got {self.signed_method!r}")
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
    figures: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The numbers the report's plots draw (histograms, plotted features), JSON-ready; see
    :func:`~sae_steer_checks.diagnostics.figures.figure_data`."""

    def to_report(self) -> dict[str, Any]:
        """The report's diagnostic sections and provenance (stable keys; identical for identical inputs).

        ``sae_steer_checks.report.build_report`` turns this into the full
        :class:`~sae_steer_checks.report.schema.Report` (schema version, verdicts, validation).
        """
        return {
            "provenance": dict(self.provenance),
            "norm": self.norm.to_dict(),
            "bias": self.bias.to_dict(),
            "negative_leaning": self.leaning.to_dict(),
            "aligned_pairs": {
                **self.pairs.to_dict(self.config.max_listed_pairs),
                **self.spurious.to_dict(),
            },
            "decompositions": {
                name: {**s.to_dict(), **self._method_info(name)}
                for name, s in sorted(self.decompositions.items())
            },
            "decomposition_nulls": None if self.nulls is None else self.nulls.to_dict(),
            "retention": None if self.retention is None else self.retention.to_dict(),
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
    config: CheckConfig = CheckConfig(),
    device: str | torch.device | None = None,
    progress: bool = False,
) -> CheckResult:
    """Run every diagnostic on ``sae`` and the steering ``vector``.

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
        config: settings (``config.multipliers`` are the retention sweep's multipliers).
        device: where the pair search and decompositions run (default: the SAE's device).
        progress: show progress bars.

    Returns:
        A frozen :class:`CheckResult`.
    """
    d_in, d_sae = validate_sae(sae)
    v = validate_vector(vector, d_in, "vector")
    pos = validate_batch(pos, d_in, "pos")
    neg = validate_batch(neg, d_in, "neg")
    if pos.shape[0] != neg.shape[0]:
        raise ValueError(f"pos and neg must pair up row by row, got {pos.shape[0]} and {neg.shape[0]} rows")
    source = "activations" if activations is not None else "pos+neg"
    sample = (
        torch.cat([pos, neg]) if activations is None else validate_batch(activations, d_in, "activations")
    )
    description = describe_sae(sae)
    sae = as_float32(sae)
    if item_ids is not None:
        item_ids = torch.as_tensor(item_ids, dtype=torch.long).reshape(-1)
        if item_ids.numel() != pos.shape[0]:
            raise ValueError(f"item_ids must give one id per pair ({pos.shape[0]}), got {item_ids.numel()}")
    rng = streams(config.seed, ("draws", "leaning", "nulls", "retention"))
    diffs = item_differences(pos, neg, item_ids)
    draws = (
        vector_draws(v, diffs, n_boot=config.n_boot, n_shuffled=config.n_null, generator=rng["draws"])
        if diffs.shape[0] >= 2
        else None
    )
    boot_sae = shuffled_sae = None
    sample_norms = sample.detach().to(torch.float64).norm(dim=-1).cpu()
    norm = norm_check(v, sample, bound_percentile=config.norm_percentile)
    bias = bias_check(
        sae, v, sample, top_k=config.top_k, batch_size=config.batch_size, share_threshold=config.bias_share
    )
    if draws is not None:
        if diffs.shape[0] >= 3:
            norm = norm.with_items(diffs, sample_norms)
        boot_sae = vector_to_sae_space(sae, draws.bootstrap, sample)
        shuffled_sae = vector_to_sae_space(sae, draws.shuffled, sample)
        bias = bias.with_draws(sae, boot_sae, shuffled_sae, batch_size=config.batch_size)
    f_v, f_0 = bias.own.acts_vector, bias.own.acts_zero
    # the prompts' codes, encoded once: the leaning test and the spurious check's per-draw anchors
    acts_pos = encode_activations(sae, pos, batch_size=config.batch_size).cpu()
    acts_neg = encode_activations(sae, neg, batch_size=config.batch_size).cpu()
    leaning = leaning_from_acts(
        acts_pos,
        acts_neg,
        alpha=config.alpha,
        vector_acts=f_v,
        test=config.leaning_test,
        fdr_method=config.fdr_method,
        item_ids=item_ids,
        n_perm=config.leaning_n_perm,
        n_null=config.n_null,
        n_boot=config.n_boot,
        min_effect=config.min_effect,
        n_null_tests=config.n_null,
        null_vector_codes=flipped_vector_codes(sae, diffs, sample, batch_size=config.batch_size),
        generator=rng["leaning"],
    )
    W_dec = sae.W_dec.detach().to(torch.float32).cpu()
    live = torch.zeros(d_sae, dtype=torch.bool)
    reference = []  # the spurious share of each ordinary activation, against SAE(0) as for v
    anchored = anchor_pairs(
        W_dec, leaning.firing_rate, threshold=config.pair_threshold, rare_rate=config.rare_rate
    )
    for start in range(0, sample.shape[0], config.batch_size):
        chunk = sample[start : start + config.batch_size]
        chunk_codes = encode_activations(sae, chunk).cpu()
        live |= (chunk_codes > 0).any(dim=0)
        reference.append(
            largest_shares(
                W_dec,
                sae.W_enc.detach().cpu(),
                vector_to_sae_space(sae, chunk, sample).cpu(),
                chunk_codes,
                leaning.firing_rate,
                negative=leaning.negative,
                threshold=config.pair_threshold,
                rare_rate=config.rare_rate,
                pairs=anchored,
            )
        )
    pairs = find_aligned_pairs(
        sae.W_dec,
        config.pair_threshold,
        live=live,
        block_size=config.block_size,
        device=device,
        progress=progress,
    )
    v_sae = vector_to_sae_space(sae, v, sample)
    k = min(config.signed_k, d_sae)
    codes = {
        "omp": omp(sae.W_dec, v_sae, k, device=device),
        "gradient_pursuit": gradient_pursuit(sae.W_dec, v_sae, k, device=device),
    }
    recon = {name: code.reconstruct(W_dec)[0] for name, code in codes.items()}
    recon["sae"] = decode_features(sae, f_v).cpu()
    summaries = {
        name: summarize_reconstruction(v_sae, recon[name], codes[name].coefficients) for name in codes
    }
    summaries["sae"] = summarize_reconstruction(v_sae, recon["sae"], f_v)
    summaries["signed"] = summaries[config.signed_method]
    signed_dense = codes[config.signed_method].dense()[0]
    spurious = spurious_check(
        W_dec,
        sae.W_enc.detach().cpu(),
        v_sae,
        f_v,
        f_0,
        leaning.firing_rate,
        negative=leaning.negative,
        signed_coefficients=signed_dense,
        threshold=config.pair_threshold,
        rare_rate=config.rare_rate,
        min_share=config.min_share,
    )
    if draws is not None and boot_sae is not None and shuffled_sae is not None:
        own = bias.own.subtract_b_dec
        # which features lean negative, re-estimated on each draw's resampled items
        code_diffs = item_differences(acts_pos, acts_neg, item_ids)
        negative_draws = ((draws.weights @ code_diffs) < 0) & leaning.active[None, :]
        spurious = spurious.with_draws(
            W_dec,
            sae.W_enc.detach().cpu(),
            leaning.firing_rate,
            (boot_sae, encode_in_sae_space(sae, boot_sae, subtract_b_dec=own, batch_size=config.batch_size)),
            (
                shuffled_sae,
                encode_in_sae_space(sae, shuffled_sae, subtract_b_dec=own, batch_size=config.batch_size),
            ),
            torch.cat(reference),
            negative=leaning.negative,
            negative_draws=negative_draws,
        )
    nulls = decomposition_nulls(
        sae,
        v_sae,
        activations=sample,
        pos=pos,
        neg=neg,
        item_ids=item_ids,
        n_null=config.n_null,
        k_max=min(config.k_max, d_sae),
        min_gap=config.min_gap,
        alpha=config.alpha,
        bootstrap=boot_sae,
        generator=rng["nulls"],
        device=device,
        batch_size=config.batch_size,
    )
    kept = None
    if score_fn is not None:
        vectors = {
            "original": v,
            "sae": vector_from_sae_space(sae, recon["sae"], sample),
            "signed": vector_from_sae_space(sae, recon[config.signed_method], sample),
        }
        kept = retention(
            score_fn,
            vectors,
            config.multipliers,
            # n_null directions in all: half isotropic, half covariance-shaped (all isotropic without
            # ordinary activations)
            n_random=math.ceil(config.n_null / 2) if activations is not None else config.n_null,
            activations=activations,
            generator=rng["retention"],
            threshold=config.retained,
            alpha=config.alpha,
            n_boot=config.n_boot,
        )
    provenance = {
        "versions": versions(),
        "seed": config.seed,
        "config": {k: list(x) if isinstance(x, tuple) else x for k, x in asdict(config).items()},
        "unit": "item (rows sharing an item id are one unit)" if item_ids is not None else "row",
        "sae": description,
        "d_model": d_in,
        "d_sae": d_sae,
        "n_pairs": int(pos.shape[0]),
        "n_activations": int(sample.shape[0]),
        "activation_source": source,
        "reconstruction": "decoder-bias-free feature part decode(f) - decode(0)",
    }
    return CheckResult(
        config=config,
        provenance=provenance,
        norm=norm,
        bias=bias,
        leaning=leaning,
        pairs=pairs,
        spurious=spurious,
        codes=codes,
        decompositions=summaries,
        nulls=nulls,
        retention=kept,
        figures=figure_data(W_dec, sample_norms, norm, bias, leaning, pairs, spurious, nulls, kept),
    )
