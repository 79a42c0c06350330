"""Encoder-bias dominance: does SAE(v) say more about the encoder bias than about v?

The study found the top features of SAE(v) nearly coincide with those of SAE(0). Both decoder-bias
conventions are compared (subtracting ``b_dec`` before encoding or not), because a mismatch between
them is one way to read numbers like 89.06 vs an encoder bias of 86.20. The "delta" view,
``mean_x SAE(x + v) - SAE(x)``, keeps v in distribution by adding it to real activations; it lists
the features v lowers as well as those it raises, since a negative projection (mechanism 2) shows up
as a decrease.

Verdict (:attr:`BiasCheck.status`): the claim is about the vector at hand, so it reads the exact share
of SAE(v)'s mass already in SAE(0): ``problem`` when it lies above ``share_threshold`` (one half) and
above the 95th percentile of the same share for ordinary activations (in-distribution inputs, where
the encoder bias does not decide the code), ``fine`` otherwise, ``inconclusive`` without ordinary
activations. The basic bootstrap over items and label-shuffled vectors of v's norm are reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sae_steer_checks import stats
from sae_steer_checks._validate import validate_batch, validate_positive_int, validate_vector
from sae_steer_checks.diagnostics.judged import Judged, Verdict
from sae_steer_checks.diagnostics.resample import SaeDraws, VectorDraws, encode_draws
from sae_steer_checks.diagnostics.space import EncodedSample, SaeSpace, encode_sample, sae_space
from sae_steer_checks.sae.protocol import SAELike, encode_activations, validate_sae
from sae_steer_checks.stats.resampling import basic_interval

__all__ = ["BiasCheck", "ConventionComparison", "bias_check", "bottom_features", "jaccard", "top_features"]


def top_features(values: Tensor, k: int) -> tuple[tuple[int, float], ...]:
    """The up to ``k`` largest strictly positive entries of ``values [d_sae]`` as ``(id, value)``.

    Ties are broken by the smaller feature id, so the result is deterministic.
    """
    order = torch.sort(values, descending=True, stable=True).indices[:k]
    return tuple((int(i), float(values[i])) for i in order.tolist() if float(values[i]) > 0)


def bottom_features(values: Tensor, k: int) -> tuple[tuple[int, float], ...]:
    """The up to ``k`` most negative strictly negative entries of ``values [d_sae]`` as ``(id, value)``.

    Ties are broken by the smaller feature id, so the result is deterministic.
    """
    order = torch.sort(values, stable=True).indices[:k]
    return tuple((int(i), float(values[i])) for i in order.tolist() if float(values[i]) < 0)


def jaccard(a: set[int], b: set[int]) -> float:
    """``|a & b| / |a | b|``; 1.0 when both sets are empty."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0


@dataclass(frozen=True)
class ConventionComparison:
    """SAE(v) against SAE(0) under one decoder-bias convention."""

    subtract_b_dec: bool
    """Whether ``b_dec`` was subtracted from the input before encoding."""
    acts_vector: Tensor
    """SAE(v) feature activations ``[d_sae]``."""
    acts_zero: Tensor
    """SAE(0) feature activations ``[d_sae]``."""
    top_vector: tuple[tuple[int, float], ...]
    """Top features of SAE(v) as ``(id, value)``."""
    top_zero: tuple[tuple[int, float], ...]
    """Top features of SAE(0) as ``(id, value)``."""
    overlap: float
    """Jaccard overlap of the two top-k feature sets."""
    mass_in_zero: float
    """Share of SAE(v)'s L1 mass already present in SAE(0): ``sum min(f_v, f_0) / sum f_v``."""
    same_support: bool
    """Whether SAE(v) and SAE(0) fire exactly the same features."""
    increases: tuple[tuple[int, float], ...] = ()
    """Largest increases of ``SAE(v) - SAE(0)`` as ``(id, change)``."""
    decreases: tuple[tuple[int, float], ...] = ()
    """Largest decreases of ``SAE(v) - SAE(0)`` as ``(id, change)``, most negative first."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "decoder_bias_subtracted": self.subtract_b_dec,
            "top_features_vector": _pairs(self.top_vector),
            "top_features_zero": _pairs(self.top_zero),
            "overlap": self.overlap,
            "mass_in_zero": self.mass_in_zero,
            "same_support": self.same_support,
            "top_increases": _pairs(self.increases),
            "top_decreases": _pairs(self.decreases),
            "l0_vector": int((self.acts_vector > 0).sum()),
            "l0_zero": int((self.acts_zero > 0).sum()),
        }


@dataclass(frozen=True)
class BiasCheck(Judged):
    """Encoder-bias dominance under the SAE's own convention, the other one, and the delta view."""

    top_k: int
    """How many top features are compared."""
    own: ConventionComparison
    """Comparison under the SAE's own decoder-bias convention."""
    other: ConventionComparison
    """Comparison under the opposite convention."""
    delta_mean: Tensor | None
    """``mean_x SAE(x + v) - SAE(x)`` ``[d_sae]``, or None without activations."""
    delta_top: tuple[tuple[int, float], ...] | None
    """Top features of the delta view as ``(id, value)``, or None without activations."""
    delta_bottom: tuple[tuple[int, float], ...] | None = None
    """Features the delta view lowers most as ``(id, value)``, most negative first (mechanism 2 shows
    up as decreases), or None without activations."""
    mass_interval: tuple[float, float] | None = None
    """95% basic bootstrap interval over items of ``own.mass_in_zero`` (None without paired activations).

    Its estimand is the share for the population CAA vector (the mean over all items); the basic
    (reverse percentile) interval corrects the bias of the share of a resampled mean."""
    mass_null: stats.NullSummary | None = None
    """``mass_in_zero`` of label-shuffled vectors of v's norm (vectors that carry no behaviour)."""
    share_threshold: float = 0.5
    """SAE(v)'s mass in SAE(0) must exceed this share (and the ordinary activations' q95) for ``problem``."""
    mass_reference: stats.NullSummary | None = None
    """The same share for the ordinary activations themselves (in-distribution inputs, where the
    encoder bias does not decide the code), with SAE(v)'s percentile among them; None without them."""

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with the stable keys of the report's ``bias`` section."""
        own = self.own.to_dict()
        out: dict[str, Any] = {"top_k": self.top_k, **own, "other_convention": self.other.to_dict()}
        out["delta_top_features"] = None if self.delta_top is None else _pairs(self.delta_top)
        out["delta_bottom_features"] = None if self.delta_bottom is None else _pairs(self.delta_bottom)
        out["mass_interval"] = None if self.mass_interval is None else list(self.mass_interval)
        null = self.mass_null
        out["mass_null"] = (
            None
            if null is None
            else {
                "mean": null.mean,
                "sd": null.sd,
                "q95": null.q95,
                "n": null.n,
                "percentile": null.percentile,
            }
        )
        ref = self.mass_reference
        out["mass_reference"] = None if ref is None else ref.to_dict()
        out["share_threshold"] = self.share_threshold
        out["interval_method"] = "basic bootstrap over items"
        out["mass_bound"] = self.mass_bound
        out["verdict"] = self.status
        out["reason"] = self.reason
        return out

    @property
    def mass_bound(self) -> float:
        """What SAE(v)'s share must exceed for ``problem``: ``share_threshold`` or the reference's q95."""
        ref = self.mass_reference
        return max(self.share_threshold, ref.q95) if ref is not None else self.share_threshold

    def _judge(self) -> tuple[Verdict, str]:
        share = f"{100 * self.share_threshold:g}%"
        if self.mass_reference is None:
            return "inconclusive", "no in-distribution reference without ordinary activations"
        if self.own.mass_in_zero > self.mass_bound:
            return "problem", f"SAE(v)'s share exceeds {share} and the ordinary activations' 95th percentile"
        return "fine", (
            f"SAE(v)'s share stays at or below {share} or within the ordinary activations' 95th percentile"
        )


def _mass_in(f: Tensor, f_0: Tensor) -> Tensor:
    """Share of each code's L1 mass already in SAE(0), ``sum min(f, f_0)^+ / sum f`` per row ``[n]``."""
    total = f.sum(dim=1)
    shared = torch.minimum(f, f_0.to(f.device, f.dtype)).clamp_min(0).sum(dim=1)
    return torch.where(total > 0, shared / total.clamp_min(1e-30), torch.zeros_like(total))


def _pairs(top: tuple[tuple[int, float], ...]) -> list[dict[str, Any]]:
    return [{"feature": i, "value": v} for i, v in top]


def _compare(space: SaeSpace, v_sae: Tensor, subtract: bool, k: int) -> ConventionComparison:
    both = space.encode(torch.stack([v_sae, torch.zeros_like(v_sae)]), subtract_b_dec=subtract)
    f_v, f_0 = both[0], both[1]
    top_v, top_0 = top_features(f_v, k), top_features(f_0, k)
    total = float(f_v.sum())
    shared = float(torch.minimum(f_v, f_0).clamp_min(0).sum())
    return ConventionComparison(
        subtract_b_dec=subtract,
        acts_vector=f_v,
        acts_zero=f_0,
        top_vector=top_v,
        top_zero=top_0,
        overlap=jaccard({i for i, _ in top_v}, {i for i, _ in top_0}),
        mass_in_zero=shared / total if total > 0 else 0.0,
        same_support=bool(torch.equal(f_v > 0, f_0 > 0)),
        increases=top_features(f_v - f_0, k),
        decreases=bottom_features(f_v - f_0, k),
    )


def _delta_view(
    sample: EncodedSample, v: Tensor, own: ConventionComparison, k: int
) -> tuple[Tensor, tuple[tuple[int, float], ...], tuple[tuple[int, float], ...], stats.NullSummary]:
    """``mean_x SAE(x + v) - SAE(x)``, its top and bottom features, and the ordinary activations' shares."""
    total = torch.zeros(sample.space.d_sae, dtype=torch.float64)
    masses = []
    f_0 = own.acts_zero.to(torch.float32)
    for rows, plain in sample.chunks():
        diff = encode_activations(sample.space.sae, rows + v).to(torch.float32).cpu() - plain
        total += diff.to(torch.float64).sum(dim=0)
        masses.append(_mass_in(plain, f_0))
    delta_mean = (total / sample.rows.shape[0]).to(torch.float32)
    reference = stats.summarize_null(own.mass_in_zero, torch.cat(masses).to(torch.float64))
    return delta_mean, top_features(delta_mean, k), bottom_features(delta_mean, k), reference


def bias_check(
    sae: SAELike | SaeSpace,
    vector: Tensor,
    activations: Tensor | EncodedSample | None = None,
    *,
    draws: VectorDraws | SaeDraws | None = None,
    top_k: int = 5,
    batch_size: int = 4096,
    share_threshold: float = 0.5,
) -> BiasCheck:
    """Compare SAE(v) with SAE(0) under both decoder-bias conventions, plus the delta view, and judge it.

    Args:
        sae: any :class:`SAELike` (computed in float32), or the run's :class:`SaeSpace`.
        vector: steering vector ``[d_in]`` in model space (mapped through the SAE's input
            normalisation, if any, with the scale typical ``activations`` receive).
        activations: ordinary activations ``[n, d_in]`` (or the run's :class:`EncodedSample`) for the
            delta view and the verdict's in-distribution reference.
        draws: bootstrap and label-shuffled draws of the vector (``resample.vector_draws``, or already
            encoded), for the share's interval and null.
        top_k: number of top features (and of largest decreases) to list.
        batch_size: rows encoded at once (when ``sae`` is not a :class:`SaeSpace` already).
        share_threshold: the verdict's least share of SAE(v)'s mass in SAE(0).

    Returns:
        A finished :class:`BiasCheck`.
    """
    d_in, _ = validate_sae(sae.sae if isinstance(sae, SaeSpace) else sae)
    top_k = validate_positive_int(top_k, "top_k")
    v = validate_vector(vector, d_in, "vector")
    if isinstance(activations, Tensor):
        activations = validate_batch(activations, d_in, "activations")
    rows = activations.rows if isinstance(activations, EncodedSample) else activations
    space = sae_space(sae, rows, batch_size=batch_size)
    v_sae = space.to_sae(v)
    own = _compare(space, v_sae, space.subtract_b_dec, top_k)
    other = _compare(space, v_sae, not space.subtract_b_dec, top_k)
    delta_mean = delta_top = delta_bottom = reference = None
    if activations is not None:
        delta_mean, delta_top, delta_bottom, reference = _delta_view(
            encode_sample(space, activations), v, own, top_k
        )
    interval = null = None
    if draws is not None:
        encoded = encode_draws(space, draws)
        boot = _mass_in(encoded.bootstrap_codes, own.acts_zero).to(torch.float64)
        interval = basic_interval(own.mass_in_zero, boot, lower=0.0, upper=1.0)
        shuffled = _mass_in(encoded.shuffled_codes, own.acts_zero).to(torch.float64)
        null = stats.summarize_null(own.mass_in_zero, shuffled)
    return BiasCheck(
        top_k=top_k,
        own=own,
        other=other,
        delta_mean=delta_mean,
        delta_top=delta_top,
        delta_bottom=delta_bottom,
        mass_interval=interval,
        mass_null=null,
        mass_reference=reference,
        share_threshold=float(share_threshold),
    )
