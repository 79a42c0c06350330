"""Verdict lines: one plain-words judgement per mechanism, read from the JSON report dict.

Every check decides its own status (``diagnostics``) and writes it into its section with the figure,
the interval and the bound it read; this module only puts those into words. Each verdict names its
key figure, so a reader can check it against ``report.json``, and its ``rule`` carries the bound
(set by ``CheckConfig`` and echoed in ``provenance.config``), so a verdict can be traced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from sae_steer_checks.report.schema import (
    FigureEntry,
    IntervalEntry,
    NullEntry,
    RuleEntry,
    Status,
    VerdictEntry,
)

__all__ = [
    "Figure",
    "Interval",
    "NullSummary",
    "Rule",
    "Verdict",
    "clears",
    "collect_verdicts",
    "feature_ids",
    "feature_values",
    "fmt_num",
    "fmt_pct",
    "id_list",
    "is_num",
]


@dataclass(frozen=True)
class Figure:
    """The key figure a verdict is read from."""

    name: str
    """Where it is in the report, e.g. ``norm.percentile`` (or how it is computed from it)."""
    value: float | None
    """Its value (None when not available)."""

    def to_dict(self) -> FigureEntry:
        """JSON-ready entry."""
        return {"name": self.name, "value": self.value}


@dataclass(frozen=True)
class Interval:
    """A confidence interval around a verdict's key figure."""

    low: float
    """Lower end."""
    high: float
    """Upper end."""
    level: float
    """Confidence level, e.g. 0.95."""
    method: str
    """How it was computed, e.g. ``fieller`` or ``bootstrap``."""

    def to_dict(self) -> IntervalEntry:
        """JSON-ready entry."""
        return {"low": self.low, "high": self.high, "level": self.level, "method": self.method}


@dataclass(frozen=True)
class NullSummary:
    """Where a verdict's key figure falls in a null distribution."""

    name: str
    """What the null draws are, e.g. ``random vectors of the same norm``."""
    mean: float
    """Mean of the null draws."""
    q95: float
    """95th percentile of the null draws."""
    percentile: float
    """Percentile of the observed figure among the null draws, in [0, 100]."""
    n: int
    """Number of null draws."""

    def to_dict(self) -> NullEntry:
        """JSON-ready entry."""
        return {
            "name": self.name,
            "mean": self.mean,
            "q95": self.q95,
            "percentile": self.percentile,
            "n": self.n,
        }


@dataclass(frozen=True)
class Rule:
    """When a verdict may say ``problem``: its interval lies wholly on ``side`` of ``bound``.

    The bound is set from the verdict's null (e.g. the null's 95th percentile) or a stated threshold,
    whichever is stricter, so a ``problem`` never stands where its interval reaches what noise gives.
    """

    side: Literal["above", "below"]
    """``above``: the interval's lower end must exceed ``bound``; ``below``: its upper end must be below."""
    bound: float
    """The value the interval must clear."""
    what: str
    """What the bound is, in words."""

    def to_dict(self) -> RuleEntry:
        """JSON-ready entry."""
        return {"side": self.side, "bound": self.bound, "what": self.what}


def clears(interval: Interval | IntervalEntry | None, rule: Rule | RuleEntry | None) -> bool:
    """Whether ``interval`` lies wholly on the rule's side of its bound (False when either is missing)."""
    if interval is None or rule is None:
        return False
    iv = interval.to_dict() if isinstance(interval, Interval) else interval
    r = rule.to_dict() if isinstance(rule, Rule) else rule
    if r["side"] == "above":
        return bool(iv["low"] > r["bound"])
    return bool(iv["high"] < r["bound"])


@dataclass(frozen=True)
class Verdict:
    """One mechanism's verdict."""

    mechanism: str
    """Short name of the mechanism."""
    status: Status
    """``problem`` (the mechanism distorts the SAE's account), ``fine``, ``inconclusive`` or ``not run``."""
    sentence: str
    """The verdict in plain words, with its key figure."""
    figure: Figure | None = None
    """The key figure the status is read from (None when not run)."""
    interval: Interval | None = None
    """Confidence interval of the key figure, when one was computed."""
    null: NullSummary | None = None
    """The key figure against a null distribution, when one was drawn."""
    rule: Rule | None = None
    """When this verdict says ``problem`` (its interval clears the rule's bound)."""

    def to_dict(self) -> VerdictEntry:
        """JSON-ready entry of the report's ``verdicts`` list."""
        return {
            "mechanism": self.mechanism,
            "status": self.status,
            "sentence": self.sentence,
            "figure": None if self.figure is None else self.figure.to_dict(),
            "interval": None if self.interval is None else self.interval.to_dict(),
            "null": None if self.null is None else self.null.to_dict(),
            "rule": None if self.rule is None else self.rule.to_dict(),
        }


def collect_verdicts(report: Mapping[str, Any]) -> list[Verdict]:
    """One :class:`Verdict` per mechanism, in the report's order, from the JSON report dict.

    Sections are read by their schema keys (see :mod:`~sae_steer_checks.report.schema`), so a
    missing or renamed key raises ``KeyError``; only ``retention`` and ``ablation`` may legitimately be
    None (``ablation`` may also be absent: the report predates it).
    """
    return [
        _norm_verdict(report["norm"]),
        _bias_verdict(report["bias"]),
        _leaning_verdict(report["negative_leaning"]),
        _pairs_verdict(report["aligned_pairs"]),
        _decomposition_verdict(report["decompositions"], report["decomposition_nulls"]),
        _retention_verdict(report["retention"]),
        _ablation_verdict(report.get("ablation", _PREDATES)),
    ]


def _norm_verdict(norm: Mapping[str, Any]) -> Verdict:
    # status from the diagnostic (see diagnostics.norms): problem when the given vector's norm and the
    # whole interval of the population CAA vector's norm lie below the bound (the activation norm at
    # the configured percentile, the 1st by default).
    name = "Out of distribution"
    pct, ratio, n = norm["percentile"], norm["ratio"], norm["n_activations"]
    where = (
        f"shorter than every one of the {n} sampled activations"
        if pct == 0 and n
        else f"at percentile {fmt_num(pct)} of activation norms"
    )
    sentence = (
        f"The steering vector's norm ({fmt_num(norm['steering_norm'])}) is {fmt_pct(ratio)} of the "
        f"median activation norm ({fmt_num(norm['activation_norm_median'])}), {where}"
    )
    figure = Figure("norm.steering_norm", norm["steering_norm"])
    median, q95 = norm["activation_norm_median"], norm["quantiles"]["0.95"]
    null = NullSummary(f"norms of {n} ordinary activations", median, q95, pct, n)
    level = norm["bound_percentile"]
    rule = Rule("below", norm["bound"], f"percentile {fmt_num(level)} of activation norms")
    status: Status = norm["verdict"]
    iv, held = norm["interval"], norm["verdict_interval"]
    if iv is None or held is None:
        sentence += "; without paired activations there is no interval for the population vector's norm."
        return Verdict(name, status, sentence, figure, None, null, rule)
    # the interval holds the given vector's norm and the population CAA vector's it estimates
    interval = Interval(held[0], held[1], 0.95, "U-statistic of ||mu||^2 (jackknife), with ||v||")
    sentence += (
        f" (population CAA vector's norm {fmt_num(norm['population_norm'])}, 95% interval "
        f"{fmt_num(iv[0])}-{fmt_num(iv[1])})"
    )
    if status == "problem":
        sentence += (
            f"; both lie below {fmt_num(100 - level)}% of activations: the SAE sees the vector out of "
            "distribution."
        )
    elif status == "fine":
        sentence += "; it lies within the activation-norm distribution."
    else:
        sentence += f"; the norms straddle percentile {fmt_num(level)} of activation norms."
    return Verdict(name, status, sentence, figure, interval, null, rule)


def _bias_verdict(bias: Mapping[str, Any]) -> Verdict:
    # status from the diagnostic (see diagnostics.bias): problem when SAE(v)'s mass already in SAE(0)
    # lies above share_threshold (one half) and above the 95th percentile of the same share for
    # ordinary activations. The claim is about the vector at hand: its share is exact; the resampling
    # interval is reported beside it.
    name = "Encoder bias"
    top_v = feature_ids(bias["top_features_vector"])
    shared = len(set(top_v) & set(feature_ids(bias["top_features_zero"])))
    k = len(top_v)
    mass = bias["mass_in_zero"]
    sentence = (
        f"The encoder bias decides {shared} of the top {k} features of SAE(v): they are also top "
        f"features of SAE(0), the code of the zero vector; {fmt_pct(mass)} of SAE(v)'s activation mass "
        "is already in SAE(0)"
    )
    figure = Figure("bias.mass_in_zero", mass)
    iv, ref, shuffled = bias["mass_interval"], bias["mass_reference"], bias["mass_null"]
    null = _ordinary_reference(ref)
    threshold = bias["share_threshold"]
    what = (
        f"{fmt_pct(threshold)} and the ordinary activations' 95th percentile"
        if ref is not None
        else fmt_pct(threshold)
    )
    rule = Rule("above", bias["mass_bound"], what)
    status: Status = bias["verdict"]
    if null is None:
        sentence += "; no in-distribution reference without ordinary activations."
        return Verdict(name, status, sentence, figure, None, null, rule)
    interval = _exact(mass)
    sentence += (
        f" (ordinary activations: {fmt_pct(null.mean)} on average, 95th percentile {fmt_pct(null.q95)}"
    )
    if iv is not None:
        sentence += f"; with other items: {fmt_pct(iv[0])}-{fmt_pct(iv[1])}, basic bootstrap"
    if shuffled is not None:
        sentence += f"; label-shuffled vectors of v's norm: {fmt_pct(shuffled['mean'])}"
    sentence += ")"
    if status == "problem":
        sentence += "; SAE(v) mostly shows the encoder bias, not v."
    else:
        sentence += "; SAE(v) leans on the encoder bias no more than an ordinary activation's code does."
    return Verdict(name, status, sentence, figure, interval, null, rule)


def _exact(value: float) -> Interval:
    """The interval of a figure of the given vector itself: exact, no sampling to allow for."""
    return Interval(value, value, 1.0, "exact: the figure of the given vector")


def _ordinary_reference(ref: Mapping[str, Any] | None) -> NullSummary | None:
    """The verdict's null from a section's in-distribution reference (the figure on ordinary activations)."""
    if ref is None:
        return None
    n = int(ref["n"])
    return NullSummary(
        f"the same share for {n} ordinary activations", ref["mean"], ref["q95"], ref["percentile"], n
    )


def _leaning_verdict(leaning: Mapping[str, Any]) -> Verdict:
    # status from the diagnostic (see diagnostics.leaning): problem when the Holm lower bound on the
    # flagged features (significant, negative, past the minimum effect, 0 in SAE(v)) is at least one
    # and above the 95th percentile of the flagged count on label-flipped data.
    name = "Negative projections lost"
    flagged = list(leaning["flagged"])
    sentence = (
        f"{fmt_pct(leaning['fraction'])} of the {leaning['n_active']} features active on either prompt "
        f"set are more active on negative prompts"
    )
    fiv, fnull = leaning["fraction_interval"], leaning["fraction_null"]
    if fiv is not None:
        sentence += f" (95% interval {fmt_pct(fiv['low'])}-{fmt_pct(fiv['high'])}"
        if fnull is not None:
            sentence += (
                f"; label noise gives {fmt_pct(fnull['mean'])}, percentile {fmt_num(fnull['percentile'])}"
            )
        sentence += ")"
    sentence += (
        f"; of the {leaning['n_tested']} features that could reach significance (Tarone), "
        f"{leaning['n_significant']} lean significantly ({leaning['test']} test, "
        f"{leaning['fdr_method'].upper()} FDR {fmt_num(leaning['alpha'])}), "
        f"{leaning['n_significant_negative']} of them negatively"
    )
    figure = Figure("len(negative_leaning.flagged)", len(flagged))
    fi, nd = leaning["flagged_interval"], leaning["flagged_null"]
    interval = Interval(fi["low"], fi["high"], fi["level"], fi["method"])
    null = (
        None
        if nd is None
        else NullSummary(
            "the confirmed count (flagged, passing Holm) on whole-item label flips",
            nd["mean"],
            nd["q95"],
            nd["percentile"],
            int(nd["n"]),
        )
    )
    rule = Rule(
        "above", leaning["flagged_bound"], "the label-flip null's 95th percentile of the confirmed count"
    )
    status: Status = leaning["verdict"]
    if flagged:
        sentence += (
            f"; SAE(v) gives 0 to {len(flagged)} of those with a lean of at least "
            f"{fmt_num(leaning['min_effect'])} of their activation ({id_list(flagged)}); at least "
            f"{fi['low']} of them are real (Holm, FWER {fmt_num(leaning['alpha'])})"
        )
        if null is not None:
            sentence += (
                f", against {fmt_num(null.mean)} confirmed on label-flipped data "
                f"(95th percentile {fmt_num(null.q95)})"
            )
    if status == "problem":
        sentence += ", so that part of the vector is lost."
    elif status == "inconclusive" and flagged:
        sentence += "; too few survive the family-wise bound to say that part of the vector is lost."
    elif status == "inconclusive":
        sentence += (
            f"; {fi['high']} feature(s) lean negative past the minimum effect and get 0 in SAE(v), but none "
            f"leans significantly ({leaning['n_untested_candidates']} of them fire in too few items to ever "
            "reach significance), so the data cannot tell whether that part of the vector is lost."
        )
    else:
        sentence += "; SAE(v) drops no feature that leans negative past the minimum effect."
    return Verdict(name, status, sentence, figure, interval, null, rule)


def _pairs_verdict(pairs: Mapping[str, Any]) -> Verdict:
    # status from the diagnostic (see diagnostics.spurious): problem when the interval of the largest
    # anchor share of a positive SAE(v) coefficient lies at or above min_share and above the 95th
    # percentile of the same share for ordinary activations.
    name = "Negatively aligned pairs"
    spurious = list(pairs["spurious"])
    sentence = (
        f"{pairs['n_pairs']} decoder pair(s) have cosine below {fmt_num(pairs['threshold'])} "
        f"({pairs['n_live']} between live features, {pairs['n_dead']} between dead ones)"
    )
    expected = pairs["null_expected_pairs"]
    if is_num(expected):
        sentence += f" against {fmt_num(expected)} expected among random directions"
    figure = Figure("aligned_pairs.max_share", pairs["max_share"])
    iv, ref, shuffled = pairs["share_interval"], pairs["share_reference"], pairs["share_null"]
    interval = _exact(pairs["max_share"])
    null = _ordinary_reference(ref)
    rule = Rule("above", pairs["share_bound"], "min_share and the ordinary activations' 95th percentile")
    sentence += (
        f"; the largest share of a positive SAE(v) coefficient's change carried by v's component along one "
        f"anti-aligned anchor is {fmt_pct(pairs['max_share'])}"
    )
    if iv is not None:
        sentence += f" (with other items: {fmt_pct(iv[0])}-{fmt_pct(iv[1])}, basic bootstrap"
        if null is not None:
            sentence += f"; ordinary activations: 95th percentile {fmt_pct(null.q95)}"
        if shuffled is not None:
            sentence += f"; label-shuffled vectors of v's norm: {fmt_pct(shuffled['mean'])} on average"
        sentence += ")"
    status: Status = pairs["verdict"]
    if spurious:
        first = spurious[0]
        sentence += (
            f"; {len(spurious)} positive coefficient(s) of SAE(v) reach {fmt_pct(pairs['min_share'])}, e.g. "
            f"feature {first['feature']}: {fmt_pct(first['share'])} from feature {first['explained_by']} "
            f"(cosine {fmt_num(first['cosine'])})"
        )
    sentence += f"; {pairs['reason']}"
    if status == "problem":
        sentence += ": SAE(v) shows spurious positive coefficients."
    elif status == "fine":
        sentence += "."
    else:
        sentence += ", so the data cannot tell."
    return Verdict(name, status, sentence, figure, interval, null, rule)


def _decomposition_verdict(dec: Mapping[str, Any], nulls: Mapping[str, Any] | None) -> Verdict:
    # status from the nulls (see diagnostics.nulls): at SAE(v)'s own sparsity k, v must be a signal
    # (longer than label-flipped noise) and its signed fit must beat isotropic directions; then
    # "problem" when the gap's interval lies above min_gap.
    name = "Signed decomposition"
    sae = dec["sae"]
    if nulls is None:
        sentence = (
            f"SAE(v) reconstructs v with cosine {fmt_num(sae['cosine'])} using {sae['l0']} features; "
            "no null was drawn."
        )
        return Verdict(name, "inconclusive", sentence, None)
    k = nulls["verdict_k"]
    acc = nulls["accounts"]["signed"]
    family = nulls["verdict_gate_family"]
    fam = acc["null"][family]
    null = NullSummary(
        f"signed fit of {fam['n']} {family} random directions of v's norm at k = {k}",
        fam["mean"],
        fam["q95"],
        fam["percentile"],
        fam["n"],
    )
    figure = Figure("decomposition_nulls.verdict_gap", nulls["verdict_gap"])
    giv = nulls["verdict_gap_interval"]
    level = nulls["verdict_level"]
    interval = _exact(nulls["verdict_gap"])
    rule = Rule(
        "above",
        nulls["verdict_needed_gap"],
        f"min_gap, once v beats label flips and the signed fit beats {family} directions at k",
    )
    sentence = (
        f"At SAE(v)'s own sparsity (k = {k} features) SAE(v) reconstructs v with cosine "
        f"{fmt_num(nulls['accounts']['sae']['cosine'])} and a signed fit over the same decoder with "
        f"{fmt_num(acc['cosine'])}, against {fmt_num(fam['mean'])} (95th percentile {fmt_num(fam['q95'])}) "
        f"for {family} random directions of v's norm "
        f"(Monte Carlo p = {fmt_num(nulls['verdict_gate_p_value'])})"
    )
    gap = f"{fmt_num(nulls['verdict_gap'])}"
    if giv is not None:
        gap += f" (with other items: {fmt_num(giv[0])} to {fmt_num(giv[1])}, {level:.0%} basic bootstrap)"
    status: Status = nulls["verdict"]
    if not nulls["verdict_is_signal"]:
        sentence += (
            f"; v is no longer than label-flipped noise (p = {fmt_num(nulls['verdict_signal_p_value'])}), "
            "so there is no steering direction to account for."
        )
    elif not nulls["verdict_beats_null"]:
        sentence += "; the signed fit does not beat them, so the decoder expresses v no better than noise."
    elif status == "problem":
        sentence += (
            f"; SAE(v) falls short of the signed fit by {gap}, more than min_gap "
            f"{fmt_num(nulls['verdict_needed_gap'])}: a signed code accounts for v where SAE(v) does not."
        )
    elif status == "inconclusive":
        sentence += (
            f"; SAE(v) is within min_gap {fmt_num(nulls['verdict_needed_gap'])} of the signed fit "
            f"(gap {gap}), but k was capped below SAE(v)'s {nulls['sae_l0']} features, so a longer "
            "signed code might still beat it."
        )
    else:
        sentence += (
            f"; SAE(v) is within min_gap {fmt_num(nulls['verdict_needed_gap'])} of the signed fit "
            f"(gap {gap})."
        )
    return Verdict(name, status, sentence, figure, interval, null, rule)


def _retention_verdict(ret: Mapping[str, Any] | None) -> Verdict:
    # status from the diagnostic (see diagnostics.retention): the original must beat its random-direction
    # null; then "problem" only when SAE(v)'s ratio interval lies below the retained threshold.
    name = "Behaviour retained"
    if ret is None:  # legitimately absent: no behaviour score was given
        return Verdict(name, "not run", "No behaviour score was given, so steering was not measured.")
    r_sae, r_signed = ret["ratio_sae"], ret["ratio_signed"]
    original = ret["slope_estimates"]["original"]
    null_d = ret["null"]
    null = (
        None
        if null_d is None
        else NullSummary(
            f"|slope| of {null_d['n']} random directions of v's norm",
            null_d["mean"],
            null_d["abs_q95"],
            null_d["percentile"],
            int(null_d["n"]),
        )
    )
    sentence = f"The original vector's slope is {fmt_num(ret['slopes']['original'])}"
    if original is not None:
        sentence += f" (95% interval {fmt_num(original['ci_low'])} to {fmt_num(original['ci_high'])})"
    if null is not None:
        sentence += f" against |slope| up to {fmt_num(null.q95)} (95th percentile) for random directions"
        if is_num(null_d.get("p_value")):
            sentence += f" (Monte Carlo p = {fmt_num(null_d['p_value'])} over {null.n})"
    iv = ret["ratio_intervals"].get("sae")
    interval = None
    if iv is not None and iv["bounded"] and is_num(iv["ci_low"]) and is_num(iv["ci_high"]):
        interval = Interval(iv["ci_low"], iv["ci_high"], iv["level"], iv["method"])
    status: Status = ret["status"]
    if status == "inconclusive" and not ret["steers"]:
        sentence += f"; {ret['reason']}, so there is nothing to retain."
    else:
        sentence += (
            f". Steering with SAE(v) keeps {fmt_pct(r_sae)} of that slope"
            + (
                f" ({interval.level:.0%} interval {fmt_pct(interval.low)}-{fmt_pct(interval.high)})"
                if interval
                else ""
            )
            + f", the signed decomposition {fmt_pct(r_signed)}; {ret['reason']}."
        )
    alpha = iv.get("alpha", 0.05) if iv is not None else 0.05
    rule = Rule(
        "below",
        ret["threshold"],
        f"the retained threshold, by a one-sided {fmt_pct(alpha)} test on the per-item contrasts (the "
        f"interval is at {fmt_pct(1 - 2 * alpha)}); the vector must first beat its random directions "
        f"(Monte Carlo p <= {fmt_num(alpha)})",
    )
    return Verdict(name, status, sentence, Figure("retention.ratio_sae", r_sae), interval, null, rule)


_PREDATES = "predates"


def _ablation_verdict(abl: Mapping[str, Any] | str | None) -> Verdict:
    # status from the diagnostic (see diagnostics.ablation): v must steer; then an absolute claim about
    # the cost of removing v's component along the flagged lost features' decoder rows: "problem" when
    # its interval lies above ablation_cost, "fine" when below. Random live rows are a reported baseline,
    # not a gate (they hold ~k/d of ||v||^2, the lost span a large share of it).
    name = "Lost projections carry the behaviour"
    if abl == _PREDATES:
        return Verdict(name, "not run", "This report predates the ablation of the lost projections.")
    if not isinstance(abl, Mapping):  # legitimately absent: no behaviour score was given
        return Verdict(
            name, "not run", "No behaviour score was given, so the lost projections were not ablated."
        )
    status: Status = abl["status"]
    if status == "not run":
        return Verdict(name, status, f"Not run: {abl['reason']}.")
    n, cost = abl["n_features"], abl["cost"]
    sentence = (
        f"Steering with v minus its component along the {n} lost features' decoder rows (rank "
        f"{abl['rank']}, {fmt_pct(abl['removed_norm_share'])} of ||v||) costs {fmt_pct(cost)} of v's slope"
    )
    energy = abl.get("energy_share")
    civ, nd = abl["cost_interval"], abl["null"]
    interval = None
    kept = abl["share_kept"]
    if civ is not None and kept is not None:
        interval = Interval(civ[0], civ[1], kept["level"], f"1 - share kept ({kept['method']} ratio test)")
        sentence += f" ({interval.level:.0%} interval {fmt_pct(civ[0])}-{fmt_pct(civ[1])})"
    if is_num(energy):
        sentence += f", against {fmt_pct(energy)} were the behaviour spread over v by energy (s^2)"
    null = None
    if nd is not None:
        null = NullSummary(
            f"cost of removing as many random live decoder rows ({abl['n_pool']} live features)",
            nd["mean"],
            nd["q95"],
            nd["percentile"],
            int(nd["n"]),
        )
        sentence += (
            f"; as many random live rows cost {fmt_pct(null.mean)} on average (95th percentile "
            f"{fmt_pct(null.q95)}, Monte Carlo p = {fmt_num(nd['p_value'])} over {null.n}; a baseline, "
            "not a gate)"
        )
    removed = abl["share_removed"]
    if removed is not None:
        sentence += f"; the lost component alone keeps {fmt_pct(removed['ratio'])}"
    if status == "problem":
        sentence += (
            f": removing v's component along the flagged lost features' decoder rows costs more than "
            f"{fmt_pct(abl['max_cost'])} of v's slope."
        )
    elif status == "fine":
        sentence += (
            f": removing v's component along the flagged lost features' decoder rows costs less than "
            f"{fmt_pct(abl['max_cost'])} of v's slope."
        )
    else:
        sentence += f"; {abl['reason']}."
    rule = Rule(
        "above",
        abl["max_cost"],
        f"ablation_cost ({fmt_pct(abl['max_cost'])}) of v's slope; 'fine' when the interval lies below "
        "it; v must first beat its random directions",
    )
    return Verdict(name, status, sentence, Figure("ablation.cost", cost), interval, null, rule)


# --- formatting shared with the report ---------------------------------------------------------


def is_num(x: Any) -> TypeGuard[float]:
    """Whether ``x`` is a finite int or float (not a bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def fmt_num(x: Any) -> str:
    """``x`` with about four significant digits; ``n/a`` when not a finite number."""
    if not is_num(x):
        return "n/a"
    if isinstance(x, int) or (float(x).is_integer() and abs(x) < 1e6):
        return str(int(x))
    return f"{x:.4g}" if abs(x) >= 1e-3 else f"{x:.2e}"


def fmt_pct(x: Any) -> str:
    """A share ``x`` as a percentage with one decimal; ``n/a`` when not a finite number."""
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
    """Feature ids of ``entries`` (see :func:`feature_values`)."""
    return [f for f, _ in feature_values(entries)]


def id_list(ids: Sequence[int], limit: int = 8) -> str:
    """The first ``limit`` ids, comma-separated, with a count of the rest."""
    if not ids:
        return "none"
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
