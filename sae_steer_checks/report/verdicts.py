"""Verdict lines: one plain-words judgement per mechanism, read from the JSON report dict.

Each verdict names its key figure, so a reader can check it against ``report.json``. The
thresholds below are deliberately simple and are stated here so that a verdict can be traced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

__all__ = [
    "Verdict",
    "feature_ids",
    "feature_values",
    "fmt_num",
    "fmt_pct",
    "id_list",
    "is_num",
    "verdicts",
]

Status = Literal["problem", "fine", "not run"]

# Below this percentile of activation norms the SAE sees the vector far out of distribution.
_OOD_PERCENTILE = 1.0
# SAE(v) keeping less than this share of the original slope has lost much of the behaviour.
_RETAINED = 0.8
# A signed fit this much closer (in cosine) than SAE(v) means the SAE's code misses part of v.
_COSINE_GAP = 0.1


@dataclass(frozen=True)
class Verdict:
    """One mechanism's verdict."""

    mechanism: str
    """Short name of the mechanism."""
    status: Status
    """``problem`` when the mechanism distorts the SAE's account, ``fine`` when not, ``not run``."""
    sentence: str
    """The verdict in plain words, with its key figure."""


def verdicts(report: Mapping[str, Any]) -> list[Verdict]:
    """One :class:`Verdict` per mechanism, in the report's order, from the JSON report dict."""
    return [
        _norm_verdict(report.get("norm")),
        _bias_verdict(report.get("bias")),
        _leaning_verdict(report.get("negative_leaning")),
        _pairs_verdict(report.get("aligned_pairs")),
        _decomposition_verdict(report.get("decompositions")),
        _retention_verdict(report.get("retention")),
    ]


def _norm_verdict(norm: Mapping[str, Any] | None) -> Verdict:
    name = "Out of distribution"
    if not norm:
        return Verdict(name, "not run", "No activation sample was given.")
    pct, ratio = norm.get("percentile"), norm.get("ratio")
    n = norm.get("n_activations")
    where = (
        f"shorter than every one of the {n} sampled activations"
        if pct == 0 and n
        else f"at percentile {fmt_num(pct)} of activation norms"
    )
    sentence = (
        f"The steering vector's norm ({fmt_num(norm.get('steering_norm'))}) is {fmt_pct(ratio)} of the "
        f"median activation norm ({fmt_num(norm.get('activation_norm_median'))}), {where}"
    )
    if is_num(pct) and pct < _OOD_PERCENTILE:
        return Verdict(name, "problem", sentence + "; the SAE sees it far out of distribution.")
    return Verdict(name, "fine", sentence + ".")


def _bias_verdict(bias: Mapping[str, Any] | None) -> Verdict:
    name = "Encoder bias"
    if not bias:
        return Verdict(name, "not run", "The encoder-bias check did not run.")
    top_v = feature_ids(bias.get("top_features_vector"))
    shared = len(set(top_v) & set(feature_ids(bias.get("top_features_zero"))))
    k = len(top_v)
    sentence = (
        f"The encoder bias decides {shared} of the top {k} features of SAE(v): they are also top "
        f"features of SAE(0), the code of the zero vector"
    )
    mass = bias.get("mass_in_zero")
    if is_num(mass):
        sentence += f"; {fmt_pct(mass)} of SAE(v)'s activation mass is already in SAE(0)"
    status: Status = "problem" if k and 2 * shared >= k else "fine"
    return Verdict(name, status, sentence + ".")


def _leaning_verdict(leaning: Mapping[str, Any] | None) -> Verdict:
    name = "Negative projections lost"
    if not leaning:
        return Verdict(name, "not run", "No positive and negative activations were given.")
    dropped = feature_ids(leaning.get("dropped_by_encoder"))
    sentence = (
        f"{fmt_pct(leaning.get('fraction'))} of the {leaning.get('n_active', 'n/a')} features active "
        f"on either prompt set are more active on negative prompts "
        f"({fmt_pct(leaning.get('significant_fraction'))} of the {leaning.get('n_significant', 'n/a')} "
        f"with a significant lean)"
    )
    if dropped:
        sentence += (
            f"; SAE(v) gives 0 to {len(dropped)} significantly negative-leaning feature(s) "
            f"({id_list(dropped)}), so that part of the vector is lost."
        )
        return Verdict(name, "problem", sentence)
    return Verdict(name, "fine", sentence + "; SAE(v) drops no significantly negative-leaning feature.")


def _pairs_verdict(pairs: Mapping[str, Any] | None) -> Verdict:
    name = "Negatively aligned pairs"
    if not pairs:
        return Verdict(name, "not run", "The decoder-pair search did not run.")
    n_pairs = pairs.get("n_pairs", len(pairs.get("pairs") or []))
    spurious = list(pairs.get("spurious") or [])
    sentence = f"{n_pairs} decoder pair(s) have cosine below {fmt_num(pairs.get('threshold'))}"
    if "n_live" in pairs:
        sentence += f" ({pairs['n_live']} between live features, {pairs.get('n_dead', 0)} between dead ones)"
    if spurious:
        first = spurious[0]
        sentence += (
            f"; {len(spurious)} positive coefficient(s) of SAE(v) are spurious, e.g. feature "
            f"{first.get('feature')} is explained by the negative projection on feature "
            f"{first.get('explained_by')} (cosine {fmt_num(first.get('cosine'))})."
        )
        return Verdict(name, "problem", sentence)
    return Verdict(name, "fine", sentence + "; no positive coefficient of SAE(v) comes from one.")


def _decomposition_verdict(dec: Mapping[str, Any] | None) -> Verdict:
    name = "Signed decomposition"
    if not dec or "sae" not in dec or "signed" not in dec:
        return Verdict(name, "not run", "The decompositions did not run.")
    sae, signed = dec["sae"], dec["signed"]
    sentence = (
        f"SAE(v) reconstructs v with cosine {fmt_num(sae.get('cosine'))} using {sae.get('l0')} "
        f"features; signed coefficients over the same decoder reach cosine "
        f"{fmt_num(signed.get('cosine'))} with {signed.get('l0')} features, "
        f"{signed.get('n_negative')} of them negative."
    )
    gap = is_num(sae.get("cosine")) and is_num(signed.get("cosine"))
    status: Status = "problem" if gap and signed["cosine"] - sae["cosine"] > _COSINE_GAP else "fine"
    return Verdict(name, status, sentence)


def _retention_verdict(ret: Mapping[str, Any] | None) -> Verdict:
    name = "Behaviour retained"
    if not ret:
        return Verdict(name, "not run", "No behaviour score was given, so steering was not measured.")
    r_sae, r_signed = ret.get("ratio_sae"), ret.get("ratio_signed")
    sentence = (
        f"Steering with SAE(v) keeps {fmt_pct(r_sae)} of the original vector's slope; the signed "
        f"decomposition keeps {fmt_pct(r_signed)}."
    )
    status: Status = "problem" if is_num(r_sae) and r_sae < _RETAINED else "fine"
    return Verdict(name, status, sentence)


# --- formatting shared with the report ---------------------------------------------------------


def is_num(x: Any) -> TypeGuard[float]:
    """Whether ``x`` is a finite int or float (not a bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def fmt_num(x: Any) -> str:
    if not is_num(x):
        return "n/a"
    if isinstance(x, int) or (float(x).is_integer() and abs(x) < 1e6):
        return str(int(x))
    return f"{x:.4g}" if abs(x) >= 1e-3 else f"{x:.2e}"


def fmt_pct(x: Any) -> str:
    return f"{100 * x:.1f}%" if is_num(x) else "n/a"


def feature_values(entries: Any) -> list[tuple[int, float]]:
    """``[(feature, value)]`` from ``[{"feature", "value"}]`` or ``[[feature, value]]`` entries."""
    out = []
    for e in entries or []:
        if isinstance(e, Mapping):
            out.append((int(e["feature"]), float(e.get("value", math.nan))))
        elif isinstance(e, Sequence) and not isinstance(e, str):
            out.append((int(e[0]), float(e[1]) if len(e) > 1 else math.nan))
        else:
            out.append((int(e), math.nan))
    return out


def feature_ids(entries: Any) -> list[int]:
    return [f for f, _ in feature_values(entries)]


def id_list(ids: Sequence[int], limit: int = 8) -> str:
    if not ids:
        return "none"
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
