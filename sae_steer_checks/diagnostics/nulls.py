"""Decomposition cosines against their null: how well would the same account fit a vector that means nothing?

An overcomplete decoder fits any vector to some degree, so each account of the steering vector v
(SAE(v) decoded; SAE(v) - SAE(0) decoded, i.e. without the bias-only features; the signed k-sparse OMP
fit) is set beside the same account of null vectors of v's norm, in the SAE's input space:

- ``isotropic``: Gaussian directions;
- ``covariance``: drawn from N(0, Sigma), Sigma the activation covariance (residual streams are far
  from isotropic), as ``x = (A - mean)^T z / sqrt(n)`` with ``z ~ N(0, I_n)``: no d x d matrix;
- ``shuffled``: label-shuffled CAA vectors, each item's pair difference times a random sign, averaged
  (the item is the unit: choice-swapped copies are averaged first).

Every null vector is rescaled to ``||v||`` (the SAE is not scale-invariant, so only the direction is
compared) and all are decomposed with v in one batched OMP run whose greedy path gives the cosine for
every k = 1..k_max. The default k is the smallest k after which v's gain over the null stops growing:
the first k with ``gap(k + j) - gap(k + j - 1) < 0.005`` for j = 1, 2, 3, where ``gap(k)`` is v's
cosine minus the largest family mean at k (k_max if it keeps growing).

Verdict (:meth:`DecompositionNulls.verdict`): the signed fit *beats its null* when v's cosine at its
default k has Monte Carlo p-value ``(1 + #{null >= v}) / (1 + n_null) <= alpha`` in every family (with
32 draws: above all of them), each null vector's signed cosine being taken at the k the same rule
picks from its own curve (choosing k is part of the statistic); then ``problem`` when SAE(v)'s cosine falls
short of the signed fit's by more than ``max(min_gap, spread)``, spread being the largest
``q95 - mean`` of the signed-fit null over the families, else ``fine``; ``inconclusive`` when the
signed fit does not beat its null (the dictionary expresses v no better than noise). With bootstrap
draws of v (items resampled) the gap gets a 95% interval, each draw decomposed in the same batched run
at v's k, and ``problem`` needs the interval's lower end above ``max(min_gap, spread)``; a gap whose
interval straddles it is ``inconclusive``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from sae_steer_checks import stats
from sae_steer_checks._validate import validate_batch, validate_positive_int, validate_vector
from sae_steer_checks.diagnostics.decompose import omp
from sae_steer_checks.sae.protocol import (
    SAELike,
    as_float32,
    decode_features,
    encode_in_sae_space,
    validate_sae,
    vector_to_sae_space,
)

__all__ = ["ACCOUNTS", "DecompositionNulls", "decomposition_nulls", "default_k", "null_vectors"]

ACCOUNTS = ("sae", "sae_minus_zero", "signed")
Verdict = Literal["problem", "fine", "inconclusive"]

# The default k: v's gain over the null grows by less than _GAIN_STEP for _GAIN_RUN steps in a row.
_GAIN_STEP = 0.005
_GAIN_RUN = 3


@dataclass(frozen=True)
class DecompositionNulls:
    """Each account's cosine with v beside the same figure for null vectors, and the cosine-vs-k curves."""

    norm: float
    """``||v||`` in SAE space (every null vector has this norm)."""
    k_default: int
    """Support size chosen from the curves (see the module docstring)."""
    cosines: dict[str, float]
    """Account -> cosine with v (``signed`` at ``k_default``)."""
    null_cosines: dict[str, dict[str, Tensor]]
    """Family -> account -> cosines of that family's null vectors ``[n_null]``."""
    curve: Tensor
    """Signed-fit cosine of v for k = 1..k_max ``[k_max]`` (float64)."""
    null_curves: dict[str, Tensor]
    """Family -> signed-fit cosines of its null vectors for k = 1..k_max ``[n_null, k_max]``."""
    min_gap: float = 0.1
    """Smallest cosine gap (signed fit minus SAE(v)) a ``problem`` needs, whatever the null's spread."""
    alpha: float = 0.05
    """Level of the "beats its null" test (Monte Carlo p-value, see :meth:`p_value`)."""
    gap_draws: Tensor | None = None
    """Gap (signed fit at ``k_default`` minus SAE(v)) of bootstrap draws of v ``[n_boot]``, or None."""

    @property
    def families(self) -> tuple[str, ...]:
        """The null families computed, in a fixed order."""
        return tuple(f for f in ("isotropic", "covariance", "shuffled") if f in self.null_cosines)

    def summary(self, account: str, family: str) -> stats.NullSummary:
        """Null summary of ``account`` in ``family``, with v's percentile in it."""
        return stats.summarize_null(self.cosines[account], self.null_cosines[family][account])

    def p_value(self, account: str, family: str) -> float:
        """Monte Carlo p-value ``(1 + #{null >= observed}) / (1 + n_null)`` of ``account`` in ``family``.

        Valid whenever v and the family's vectors are exchangeable (a null world's CAA vector and its
        label-shuffled copies are); "above the null's 95th percentile" of 32 draws is not (about 8%).
        """
        draws = self.null_cosines[family][account]
        return (1 + int((draws >= self.cosines[account]).sum())) / (1 + draws.numel())

    def verdict_figures(self) -> dict[str, Any]:
        """The figures the verdict reads: whether the signed fit beats every null, gap and spread."""
        signed = [self.summary("signed", f) for f in self.families]
        p_values = {f: self.p_value("signed", f) for f in self.families}
        beats = bool(p_values) and all(p <= self.alpha for p in p_values.values())
        spread = max((s.q95 - s.mean for s in signed), default=float("nan"))
        interval = None
        if self.gap_draws is not None and self.gap_draws.numel():
            q = torch.tensor([0.025, 0.975], dtype=torch.float64)
            interval = [float(x) for x in self.gap_draws.to(torch.float64).quantile(q)]
        return {
            "beats_null": beats,
            "p_values": p_values,
            "gap": self.cosines["signed"] - self.cosines["sae"],
            "gap_interval": interval,
            "spread": spread,
            "needed_gap": max(self.min_gap, spread),
        }

    def verdict(self) -> Verdict:
        """``problem`` / ``fine`` / ``inconclusive`` as defined in the module docstring."""
        fig = self.verdict_figures()
        if not fig["beats_null"]:
            return "inconclusive"
        interval = fig["gap_interval"]
        if interval is None:
            return "problem" if fig["gap"] > fig["needed_gap"] else "fine"
        if interval[0] > fig["needed_gap"]:
            return "problem"
        return "fine" if interval[1] <= fig["needed_gap"] else "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: per account the cosine and each family's null; the curves; the verdict."""
        accounts: dict[str, Any] = {}
        for account in ACCOUNTS:
            nulls = {}
            for family in self.families:
                s = self.summary(account, family)
                nulls[family] = {
                    "mean": s.mean,
                    "sd": s.sd,
                    "q05": s.q05,
                    "q95": s.q95,
                    "n": s.n,
                    "percentile": s.percentile,
                    "p_value": self.p_value(account, family),
                }
            accounts[account] = {"cosine": self.cosines[account], "null": nulls}
        accounts["signed"]["k"] = self.k_default
        curves = {
            f: {
                "mean": c.mean(0).tolist(),
                "q95": torch.quantile(c, 0.95, dim=0).tolist(),
            }
            for f, c in self.null_curves.items()
        }
        return {
            "norm": self.norm,
            "families": list(self.families),
            "n_null": {f: int(self.null_curves[f].shape[0]) for f in self.families},
            "accounts": accounts,
            "curve": {
                "k": list(range(1, self.curve.numel() + 1)),
                "vector": self.curve.tolist(),
                "null": curves,
            },
            "k_default": self.k_default,
            "k_rule": f"first k where v's gain over the null mean grows < {_GAIN_STEP} for {_GAIN_RUN} steps",
            "min_gap": self.min_gap,
            "alpha": self.alpha,
            "verdict": self.verdict(),
            **{f"verdict_{key}": value for key, value in self.verdict_figures().items()},
        }


def _to_norm(x: Tensor, norm: float) -> Tensor:
    """Rows of ``x [b, d]`` rescaled to ``norm`` (zero rows stay zero)."""
    n = x.norm(dim=1, keepdim=True)
    return torch.where(n > 0, x * (norm / n.clamp_min(1e-30)), torch.zeros_like(x))


def null_vectors(
    sae: SAELike,
    norm: float,
    *,
    activations: Tensor | None = None,
    pos: Tensor | None = None,
    neg: Tensor | None = None,
    item_ids: Tensor | None = None,
    n_null: int = 32,
    generator: torch.Generator | int | None = None,
) -> dict[str, Tensor]:
    """Null vectors of norm ``norm`` in the SAE's input space, by family.

    Args:
        sae: The SAE (its run-time normalisation maps model-space draws into its input space).
        norm: Norm of every null vector.
        activations: Model-space activations ``[n, d_in]`` for the ``covariance`` family.
        pos: Positive activations ``[n_pairs, d_in]`` for the ``shuffled`` family (with ``neg``).
        neg: Negative activations ``[n_pairs, d_in]``, paired with ``pos``.
        item_ids: Item of each pair ``[n_pairs]``; copies of an item are averaged first.
        n_null: Vectors per family.
        generator: Generator or integer seed.

    Returns:
        ``{"isotropic": [n_null, d_in], "covariance": ..., "shuffled": ...}`` (families whose inputs
        were given), float32.
    """
    d_in, _ = validate_sae(sae)
    n_null = validate_positive_int(n_null, "n_null")
    gen = stats.as_generator(generator)
    sample = activations
    if sample is None and pos is not None and neg is not None:
        sample = torch.cat([pos, neg])
    out = {"isotropic": torch.randn(n_null, d_in, generator=gen, dtype=torch.float64)}
    if activations is not None:
        a = validate_batch(activations, d_in, "activations").to(torch.float64).cpu()
        z = torch.randn(n_null, a.shape[0], generator=gen, dtype=torch.float64)
        out["covariance"] = z @ (a - a.mean(0)) / a.shape[0] ** 0.5
    if (pos is None) != (neg is None):
        raise ValueError("pos and neg must be given together (paired rows), got only one of them")
    if pos is not None and neg is not None:
        p, q = validate_batch(pos, d_in, "pos"), validate_batch(neg, d_in, "neg")
        if p.shape != q.shape:
            raise ValueError(f"pos and neg must pair up row by row, got {p.shape[0]} and {q.shape[0]} rows")
        diffs = (p - q).to(torch.float64).cpu()
        if item_ids is not None:
            _, diffs = stats.cluster_mean(diffs, item_ids)
        signs = 1.0 - 2.0 * torch.randint(0, 2, (n_null, diffs.shape[0]), generator=gen).to(torch.float64)
        out["shuffled"] = signs @ diffs / diffs.shape[0]
    return {
        f: _to_norm(vector_to_sae_space(sae, x.to(torch.float32), sample).to(torch.float64), norm).float()
        for f, x in out.items()
    }


def _cosines(u: Tensor, rec: Tensor) -> Tensor:
    """Row-wise cosines ``[b]`` (float64; 0 where either row is zero)."""
    u64, r64 = u.to(torch.float64), rec.to(torch.float64)
    den = u64.norm(dim=1) * r64.norm(dim=1)
    return torch.where(den > 0, (u64 * r64).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den))


def default_k(curve: Tensor, null_mean: Tensor) -> int:
    """The smallest k after which ``curve - null_mean`` (both ``[k_max]``) stops growing (see module)."""
    gap = curve - null_mean
    small = (gap[1:] - gap[:-1]) < _GAIN_STEP
    for k in range(1, gap.numel() - _GAIN_RUN + 1):
        if bool(small[k - 1 : k - 1 + _GAIN_RUN].all()):
            return k
    return int(gap.numel())


def decomposition_nulls(
    sae: SAELike,
    v: Tensor,
    *,
    activations: Tensor | None = None,
    pos: Tensor | None = None,
    neg: Tensor | None = None,
    item_ids: Tensor | None = None,
    n_null: int = 32,
    k_max: int = 64,
    min_gap: float = 0.1,
    alpha: float = 0.05,
    bootstrap: Tensor | None = None,
    generator: torch.Generator | int | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 4096,
) -> DecompositionNulls:
    """Each account of ``v`` and of null vectors of its norm, decomposed in one batched OMP run.

    Args:
        sae: Any :class:`SAELike` (computed in float32).
        v: The steering vector already in the SAE's input space ``[d_in]`` (run.py's ``v_sae``).
        activations: Model-space activations ``[n, d_in]``: adds the ``covariance`` family.
        pos: Positive activations ``[n_pairs, d_in]`` (with ``neg``): adds the ``shuffled`` family.
        neg: Negative activations ``[n_pairs, d_in]``, paired with ``pos``.
        item_ids: Item of each pair ``[n_pairs]`` (copies averaged for the shuffled family).
        n_null: Null vectors per family (at least 32 recommended).
        k_max: Longest support of the signed fit's curve (capped at d_sae).
        min_gap: Smallest cosine gap a ``problem`` needs.
        alpha: Level of the "beats its null" test; ``n_null >= 1 / alpha - 1`` draws are needed to pass it.
        bootstrap: Bootstrap draws of ``v`` in the SAE's input space ``[n_boot, d_in]`` (items
            resampled), for the gap's interval; None: no interval.
        generator: Generator or integer seed.
        device: Where OMP runs (default: the decoder's device).
        batch_size: Rows encoded at once.

    Returns:
        A :class:`DecompositionNulls`.
    """
    d_in, d_sae = validate_sae(sae)
    vec = validate_vector(v, d_in, "v").to(torch.float32).cpu()
    k_max = min(validate_positive_int(k_max, "k_max"), d_sae)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 <= min_gap <= 2.0:
        raise ValueError(f"min_gap must be a cosine gap in [0, 2], got {min_gap}")
    sae = as_float32(sae)
    norm = float(vec.to(torch.float64).norm())
    nulls = null_vectors(
        sae,
        norm,
        activations=activations,
        pos=pos,
        neg=neg,
        item_ids=item_ids,
        n_null=n_null,
        generator=generator,
    )
    families = list(nulls)
    boot = (
        torch.empty(0, d_in)
        if bootstrap is None
        else validate_batch(bootstrap, d_in, "bootstrap").to(torch.float32).cpu()
    )
    U = torch.cat([vec[None], *(nulls[f] for f in families), boot])
    dev = sae.W_dec.device
    codes = encode_in_sae_space(sae, U.to(dev), batch_size=batch_size)
    zero = encode_in_sae_space(sae, torch.zeros(1, d_in, device=dev), batch_size=batch_size)
    accounts = {
        "sae": _cosines(U, decode_features(sae, codes).cpu()),
        "sae_minus_zero": _cosines(U, decode_features(sae, codes - zero).cpu()),
    }
    fit = omp(sae.W_dec, U, k_max, device=device, return_path=True)
    curves = fit.path_cosines(U)
    sizes = [1] + [n_null] * len(families) + [boot.shape[0]]
    split = {name: torch.split(values, sizes) for name, values in accounts.items()}
    curve_parts = torch.split(curves, sizes)
    null_curves = {f: curve_parts[i + 1] for i, f in enumerate(families)}
    null_mean = torch.stack([c.mean(0) for c in null_curves.values()]).amax(0)
    k = default_k(curves[0], null_mean)
    cosines = {name: float(parts[0][0]) for name, parts in split.items()}
    cosines["signed"] = float(curves[0, k - 1])
    gap_draws = curve_parts[-1][:, k - 1] - split["sae"][-1] if bootstrap is not None else None
    # v's k is chosen from v's own curve, which favours v; each null vector gets its k by the same
    # rule, so the null describes the whole procedure (choosing k at v's k instead runs at ~12%
    # false "beats its null" in null worlds, against the nominal 5%).
    null_cosines = {
        f: {
            **{name: parts[i + 1] for name, parts in split.items()},
            "signed": torch.stack([c[default_k(c, null_mean) - 1] for c in null_curves[f]]),
        }
        for i, f in enumerate(families)
    }
    return DecompositionNulls(
        norm=norm,
        k_default=k,
        cosines=cosines,
        null_cosines=null_cosines,
        curve=curves[0],
        null_curves=null_curves,
        min_gap=float(min_gap),
        alpha=float(alpha),
        gap_draws=None if gap_draws is None else gap_draws.to(torch.float64),
    )
