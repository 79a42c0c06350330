"""The Markdown report, rendered from the JSON report dict alone (so tests can assert on the JSON).

One verdict line per mechanism in plain words, the key figures in small tables, the plots embedded,
and the provenance at the end. Sections are read by their schema keys (a renamed key raises
``KeyError``); ``retention`` and ``ablation``, the sections that may be absent, are said to be missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sae_steer_checks.report.verdicts import feature_ids, feature_values, fmt_num, fmt_pct, id_list

__all__ = ["NEURONPEDIA_URL", "PLOTS_SKIPPED", "PLOT_TITLES", "neuronpedia_id", "render_markdown"]

#: Dashboard of one feature; filled with the SAE's Neuronpedia id (e.g. ``gemma-2-2b/14-gemmascope-res-16k``).
NEURONPEDIA_URL = "https://www.neuronpedia.org/{neuronpedia_id}/{feature}"

# Plot key -> caption; the order is the order of the report's sections.
PLOT_TITLES = {
    "norms": "Activation norms at the layer, with the steering vector's norm marked",
    "bias": "Top features of SAE(v) beside SAE(0)",
    "leaning": "Mean activation on positive vs negative prompts, per feature",
    "pairs": "Decoder cosines among the relevant features, flagged pairs marked",
    "decomposition": "Signed fit's cosine with v against k, beside null vectors' curves (mean to q95)",
    "retention": "Behaviour against multiplier: original vector, SAE(v) and signed decomposition",
}

PLOTS_SKIPPED = (
    "Plots were skipped: matplotlib is not installed "
    "(install it with `pip install 'sae-steer-checks[plots]'`)."
)


def render_markdown(
    report: Mapping[str, Any],
    *,
    plots: Mapping[str, str] | None = None,
    plots_note: str | None = None,
) -> str:
    """Render the report (a :class:`~sae_steer_checks.report.schema.Report`) as Markdown.

    The verdict lines are the report's ``verdicts`` entries. ``plots`` maps plot keys (see
    :data:`PLOT_TITLES`) to image paths relative to the report;
    ``plots_note`` explains why plots are missing (e.g. matplotlib is not installed).
    Returns the Markdown text, ending in a newline.
    """
    plots = dict(plots or {})
    prov = report["provenance"]
    lines = ["# Does the SAE give a trustworthy account of this steering vector?", ""]
    subject = _subject(prov)
    if subject:
        lines += [subject, ""]
    if prov.get("unit") is not None:
        lines += [f"Unit of every test, interval and null: {_flat(prov['unit'])}.", ""]
    lines += ["## Verdict", ""]
    for v in report["verdicts"]:
        mark = "**problem**" if v["status"] == "problem" else v["status"]
        lines.append(f"- **{v['mechanism']}** ({mark}): {v['sentence']}")
    lines += ["", *_verdict_table(report["verdicts"]), ""]
    if plots_note:
        lines += [f"> {plots_note}", ""]
    link = _linker(neuronpedia_id(prov))
    sections = [
        ("1. Norm: is the vector in distribution?", _norm_table(report["norm"]), "norms"),
        ("2. Encoder bias: SAE(v) against SAE(0)", _bias_table(report["bias"], link), "bias"),
        ("3. Negative-leaning features", _leaning_table(report["negative_leaning"], link), "leaning"),
        ("4. Negatively aligned decoder pairs", _pairs_table(report["aligned_pairs"], link), "pairs"),
        (
            "5. Signed decomposition",
            _decomposition_table(report["decompositions"], report.get("decomposition_nulls")),
            "decomposition",
        ),
        ("6. Behaviour retained", _retention_table(report["retention"], prov.get("behaviour")), "retention"),
        ("7. Ablation: do the lost projections carry the behaviour?", _ablation_table(report), None),
        ("8. A steering vector learned in the SAE basis", _learned_table(report, link), None),
    ]
    for title, body, plot in sections:
        lines += [f"## {title}", "", *body, ""]
        if plot is not None and plot in plots:
            lines += [f"![{PLOT_TITLES[plot]}]({plots[plot]})", ""]
    lines += ["## Provenance", "", *_provenance_table(prov), ""]
    return "\n".join(lines)


# --- tables -----------------------------------------------------------------------------------


def _norm_table(norm: Mapping[str, Any]) -> list[str]:
    rows = [
        ("Steering-vector norm", fmt_num(norm["steering_norm"])),
        ("Median activation norm", fmt_num(norm["activation_norm_median"])),
        ("Ratio to the median", fmt_num(norm["ratio"])),
        ("Percentile of the vector among activation norms", fmt_num(norm["percentile"])),
        ("Activations in the sample", fmt_num(norm["n_activations"])),
    ]
    if norm["interval"] is not None:
        rows.insert(1, ("95% interval of the norm (bootstrap over items)", _range(norm["interval"])))
    if norm["percentile_interval"] is not None:
        rows.insert(-1, ("95% interval of the percentile", _range(norm["percentile_interval"])))
    for key, value in sorted(norm["quantiles"].items(), key=lambda kv: float(kv[0])):
        rows.append((f"Activation-norm quantile {key}", fmt_num(value)))
    return _table(("Figure", "Value"), rows)


def _bias_table(bias: Mapping[str, Any], link: _Link) -> list[str]:
    k = int(bias["top_k"])
    top_v = feature_values(bias["top_features_vector"])
    zero = feature_values(bias["top_features_zero"])
    top_0 = dict(zero)
    # top lists hold every positive entry up to k, so a shorter list means the rest are exactly 0
    missing = "0" if len(zero) < k else f"< {fmt_num(min(top_0.values()))}" if zero else "n/a"
    rows = [
        (link(f), fmt_num(v), fmt_num(top_0[f]) if f in top_0 else missing, "yes" if f in top_0 else "no")
        for f, v in top_v
    ]
    own = "subtracted" if bias["decoder_bias_subtracted"] else "not subtracted"
    other = bias["other_convention"]
    flip = "subtracted" if other["decoder_bias_subtracted"] else "not subtracted"
    out = [
        f"Encoded under the SAE's own convention (decoder bias {own} before encoding). Jaccard "
        f"overlap of the top {k}: {fmt_num(bias['overlap'])}; share of SAE(v)'s mass already in "
        f"SAE(0): {fmt_pct(bias['mass_in_zero'])}{_mass_figures(bias)}.",
        "",
        *_table(("Feature", "SAE(v)", "SAE(0)", "In SAE(0)'s top"), rows),
        "",
        f"Under the other convention (decoder bias {flip}): overlap {fmt_num(other['overlap'])}, "
        f"mass already in SAE(0) {fmt_pct(other['mass_in_zero'])}, top features of SAE(v) "
        f"{_ids(feature_ids(other['top_features_vector']), link)}.",
        "",
    ]
    ups, downs = feature_values(bias["top_increases"]), feature_values(bias["top_decreases"])
    if ups or downs:
        out += _table(
            ("Largest increases SAE(v) - SAE(0)", "Largest decreases SAE(v) - SAE(0)"),
            [
                (_fv(ups[i], link) if i < len(ups) else "", _fv(downs[i], link) if i < len(downs) else "")
                for i in range(max(len(ups), len(downs)))
            ],
        )
        out.append("")
    delta = bias["delta_top_features"]
    if delta:
        out += [
            "Delta view, mean of SAE(x + v) - SAE(x) over real activations x (v kept in "
            f"distribution): top features {_ids(feature_ids(delta), link)}.",
            "",
        ]
    return out[:-1]


def _leaning_table(leaning: Mapping[str, Any], link: _Link) -> list[str]:
    rows = [
        ("Contrastive pairs", fmt_num(leaning["n_pairs"])),
        ("Features active on either set", fmt_num(leaning["n_active"])),
        ("Share more active on negative prompts", fmt_pct(leaning["fraction"])),
        ("95% interval of that share (bootstrap over items)", _pct_range(leaning["fraction_interval"])),
        (
            "Label-flip null of that share: mean (q05-q95), percentile",
            _null_cell(leaning["fraction_null"], pct=True),
        ),
        (
            f"Share leaning negative among leans of at least {fmt_num(leaning['min_effect'])}",
            fmt_pct(leaning["min_effect_fraction"]),
        ),
        (
            "Features with a significant lean (FDR " + fmt_num(leaning["alpha"]) + ")",
            fmt_num(leaning["n_significant"]),
        ),
        ("Share of those leaning negative", fmt_pct(leaning["significant_fraction"])),
        (
            "Significantly negative-leaning, yet 0 in SAE(v)",
            _ids(feature_ids(leaning["dropped_by_encoder"]), link),
        ),
        (
            f"Flagged (past the minimum effect): count; at least (Holm, FWER {fmt_num(leaning['alpha'])})",
            f"{len(leaning['flagged'])}; {fmt_num(leaning['flagged_interval']['low'])} of "
            f"{fmt_num(leaning['flagged_interval']['high'])} candidates",
        ),
        (
            "Flagged count on label-flipped data: mean (q05-q95), percentile",
            _null_cell(leaning["flagged_null"]),
        ),
    ]
    return _table(("Figure", "Value"), rows)


def _pairs_table(pairs: Mapping[str, Any], link: _Link, limit: int = 10) -> list[str]:
    found = list(pairs["pairs"])
    spurious = list(pairs["spurious"])
    n_pairs = pairs["n_pairs"]
    out = [f"{n_pairs} pair(s) below cosine {fmt_num(pairs['threshold'])}.", ""]
    if found:
        rows = [
            (link(p["feature"]), link(p["partner"]), fmt_num(p["cosine"]), str(p["status"])) for p in found
        ]
        out += _table(("Feature", "Partner", "Cosine", "Status"), rows[:limit])
        if n_pairs > limit:
            out += ["", f"... and {n_pairs - limit} more (listed in report.json up to its limit)."]
        out.append("")
    shares = [
        ("Largest share of a positive coefficient's change from one anchor", fmt_pct(pairs["max_share"])),
        ("95% interval (bootstrap over items)", _pct_range(pairs["share_interval"])),
        ("Ordinary activations: mean (q05-q95), percentile", _null_cell(pairs["share_reference"], pct=True)),
        ("Label-shuffled vectors: mean (q05-q95), percentile", _null_cell(pairs["share_null"], pct=True)),
    ]
    out += [*_table(("Figure", "Value"), shares), ""]
    if spurious:
        explained = [(link(s["feature"]), link(s["explained_by"]), fmt_num(s["cosine"])) for s in spurious]
        out += ["Spurious positive coefficients of SAE(v):", ""]
        out += _table(("Feature", "Explained by", "Cosine"), explained[:limit])
    else:
        out.append("No spurious positive coefficient in SAE(v).")
    bias_explained = feature_ids(pairs["bias_explained"])
    if bias_explained:
        out += ["", f"Positive coefficients the encoder bias alone explains: {_ids(bias_explained, link)}."]
    conflicts = list(pairs["sign_conflicts"])
    if conflicts:
        out += [
            "",
            f"Sign conflicts (positive in SAE(v), yet v projects negatively on the feature or its "
            f"signed coefficient is negative): {_ids(feature_ids(conflicts), link)}.",
        ]
    return out


def _decomposition_table(dec: Mapping[str, Any], nulls: Mapping[str, Any] | None = None) -> list[str]:
    reported = dec["signed"]["method"]
    rows = []
    for key, fig in sorted(dec.items(), key=lambda kv: (kv[0] != "sae", kv[0])):
        if key == "signed":
            continue
        label = "SAE(v), the SAE's own code" if key == "sae" else key.replace("_", " ")
        if key == reported:
            label += " (reported as signed)"
        figures = (fig["cosine"], fig["rel_error"], fig["l0"], fig["n_negative"])
        rows.append((label, *(fmt_num(x) for x in figures)))
    header = ("Decomposition of v", "Cosine", "Relative error", "Features", "Negative coefficients")
    out = _table(header, rows)
    if nulls is None:
        return out
    families = list(nulls["families"])
    null_rows = []
    for account, entry in sorted(nulls["accounts"].items()):
        cells = [_null_cell(entry["null"].get(f)) for f in families]
        null_rows.append((account.replace("_", " "), fmt_num(entry.get("cosine")), *cells))
    out += [
        "",
        f"Against null vectors of v's norm ({fmt_num(nulls['norm'])}), signed fit at SAE(v)'s own sparsity "
        f"k = {fmt_num(nulls['verdict_k'])} ({nulls['k_rule']}; only the {nulls['verdict_gate_family']} "
        "family is a gate, the others are reported beside it); each null cell is mean (q05-q95), "
        "percentile of v's cosine among the null's:",
        "",
        *_table(("Account", "Cosine with v", *(f"{f} null" for f in families)), null_rows),
    ]
    return out


def _retention_table(ret: Mapping[str, Any] | None, behaviour: Any = None) -> list[str]:
    if ret is None:
        return ["Not run: no behaviour score was given."]
    steered = ""
    if isinstance(behaviour, Mapping) and behaviour.get("steer_positions"):
        rule = behaviour.get("steer_positions_rule")
        steered = f" Steered positions: {behaviour['steer_positions']}" + (f" ({rule})." if rule else ".")
    slopes = ret["slopes"]
    ratios = {"original": 1.0, "sae": ret["ratio_sae"], "signed": ret["ratio_signed"],
              "learned": ret.get("ratio_learned")}  # fmt: skip
    names = {"original": "Original vector", "sae": "SAE(v)", "signed": "Signed decomposition",
             "learned": "Learned in the SAE basis"}  # fmt: skip
    estimates, intervals = ret["slope_estimates"], ret["ratio_intervals"]
    rows = []
    for k in slopes:
        if k not in names:
            continue
        est = estimates.get(k)
        ci = "n/a" if not est else _range((est["ci_low"], est["ci_high"]))
        ratio = intervals.get(k)
        rci = "n/a" if not ratio else _pct_range({"low": ratio["ci_low"], "high": ratio["ci_high"]})
        rows.append((names[k], fmt_num(slopes[k]), ci, fmt_pct(ratios[k]), rci))
    multipliers = ", ".join(fmt_num(m) for m in ret["multipliers"])
    header = ("Steering with", "Slope", "95% interval of slope", "Share of original", "95% interval of share")
    out = [f"Multipliers: {multipliers}.{steered}", "", *_table(header, rows)]
    null = ret["null"]
    if null is not None:
        out += [
            "",
            f"Random directions of the original's norm ({fmt_num(null['n'])}): |slope| q95 "
            f"{fmt_num(null['abs_q95'])}, mean {fmt_num(null['mean'])}; the original's slope is at "
            f"percentile {fmt_num(null['percentile'])}, so it "
            f"{'steers' if ret['steers'] else 'does not beat them'}.",
        ]
    return out


def _ablation_table(report: Mapping[str, Any]) -> list[str]:
    if "ablation" not in report:
        return ["Not run: this report predates the ablation."]
    abl = report["ablation"]
    if abl is None:
        return ["Not run: no behaviour score was given."]
    if abl["status"] == "not run":
        return [f"Not run: {abl['reason']}."]
    slopes = abl["slopes"]
    kept, removed = abl["share_kept"] or {}, abl["share_removed"] or {}
    rows = [("v", fmt_num(slopes["original"]), fmt_pct(1.0), "n/a")]
    for label, key, share in (
        ("v without the lost span", "without", kept),
        ("the lost component alone", "only", removed),
    ):
        rows.append((label, fmt_num(slopes[key]), fmt_pct(share.get("ratio")), _pct_range(share or None)))
    level = f"{kept['level']:.0%}" if kept else "90%"
    out = [
        f"Removed: v's component along the decoder rows of the {abl['n_features']} lost features "
        f"({_ids(abl['features'], str)}; rank {abl['rank']}, {fmt_pct(abl['removed_norm_share'])} of "
        f"||v||), projected in the SAE's input space and mapped back. Multipliers: "
        f"{', '.join(fmt_num(m) for m in abl['multipliers'])}; {abl['n_items']} items.",
        "",
        *_table(("Steering with", "Slope", "Share of v's slope", f"{level} interval of share"), rows),
        "",
        f"Cost of removing the lost span: {fmt_pct(abl['cost'])} ({level} interval "
        f"{_pct_range(abl['cost_interval'])}); ablation_cost {fmt_pct(abl['max_cost'])}; "
        f"s^2 = (||removed|| / ||v||)^2 = {fmt_pct(abl.get('energy_share'))}, the cost expected were the "
        "behaviour spread over v in proportion to energy.",
    ]
    null = abl["null"]
    if null is not None:
        out += [
            "",
            f"Removing as many random live decoder rows ({fmt_num(null['n'])} draws from "
            f"{fmt_num(abl['n_pool'])} live features): cost {_null_cell(null, pct=True)}; Monte Carlo "
            f"p = {fmt_num(null['p_value'])}, critical cost {fmt_pct(null['critical'])}. A baseline, not a "
            "gate: k random rows hold about k/d of ||v||^2 while v leans along the lost rows, so the lost "
            "span holds a large share of v and its removal costs more than random removals even when the "
            "behaviour is spread over v by energy; the verdict reads the cost's interval against "
            "ablation_cost.",
        ]
    return out


def _learned_table(report: Mapping[str, Any], link: _Link) -> list[str]:
    learned = report.get("learned")
    if learned is None:
        prov = report.get("provenance") or {}
        learning = prov.get("learning")
        if isinstance(learning, dict) and learning.get("steps") == 0:
            return [f"Not run: `{prov.get('command')} --learn-steps 0` was given."]
        if report.get("retention") is None:
            return ["Not run: no behaviour was scored, so no vector could be learned or judged."]
        return [
            "Not run: no vector was learned. `sae-steer-checks run` learns one by default on the "
            "training items; in the library, pass `learned=steering.learn_in_sae_basis(...)` to `run_checks`."
        ]
    how = learned["training"]
    out = [
        f"Signed coefficients over the decoder rows, learned in {how.get('steps', '?')} steps to raise "
        f"the steerability slope of the {how.get('n_train_items', '?')} items it was trained on, with at "
        f"most k = {how.get('k')} features and ||u|| held at {fmt_num(how.get('norm'))}. Its slope and "
        "share of v's slope on the held-out items are in section 6.",
        "",
    ]
    ret = report.get("retention")
    intervals = {} if ret is None else ret["ratio_intervals"]
    ratio = intervals.get("learned")
    rows = []
    if ret is not None and "learned" in ret["slopes"]:
        share = fmt_pct(ret.get("ratio_learned"))
        rci = "n/a" if not ratio else _pct_range({"low": ratio["ci_low"], "high": ratio["ci_high"]})
        level = f"{ratio['level']:.0%}" if ratio else "n/a"
        rows.append(
            ("Held-out slope, share of v's", f"{fmt_num(ret['slopes']['learned'])}, {share} ({level}: {rci})")
        )
    rows += [
        ("Features used (support)", fmt_num(learned["n_support"])),
        ("Of them negative (no SAE code can write these)", fmt_num(learned["n_negative"])),
        ("Of them active in SAE(v)", fmt_num(learned["in_sae"])),
        ("Of them in the signed fit of v", fmt_num(learned["in_signed"])),
        ("Cosine with v", fmt_num(learned["cosine"])),
        ("Norm (v's)", f"{fmt_num(learned['norm'])} ({fmt_num(learned['vector_norm'])})"),
        ("Percentile of the norm among activation norms", fmt_num(learned["norm_percentile"])),
        (
            "Training objective: start, best",
            f"{fmt_num(how.get('objective_start'))}, {fmt_num(how.get('objective_best'))}",
        ),
    ]
    top = [_fv((e["feature"], e["value"]), link) for e in learned["top_features"]]
    return [
        *out,
        *_table(("Figure", "Value"), rows),
        "",
        f"Largest coefficients: {', '.join(top) or 'none'}.",
    ]


def _provenance_table(prov: Mapping[str, Any]) -> list[str]:
    rows = [(str(k), _flat(v)) for k, v in sorted(prov.items())]
    return _table(("Field", "Value"), rows) if rows else ["No provenance recorded."]


def _subject(prov: Mapping[str, Any]) -> str:
    parts = []
    for key, label in (("model", "Model"), ("layer", "layer"), ("dataset", "dataset")):
        if prov.get(key) is not None:
            parts.append(f"{label} `{_flat(prov[key])}`")
    sae = prov.get("sae_source") or prov.get("sae")
    if sae is not None:
        parts.append(f"SAE `{_flat(sae)}`")
    return ", ".join(parts) + "." if parts else ""


def _verdict_table(verdicts: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for v in verdicts:
        fig = v.get("figure") or {}
        figure = f"`{fig['name']}` = {fmt_num(fig.get('value'))}" if fig else "n/a"
        rows.append((str(v["mechanism"]), str(v["status"]), figure, _range_cell(v.get("interval")),
                     _verdict_null(v.get("null")), _rule_cell(v.get("rule"))))  # fmt: skip
    header = (
        "Mechanism",
        "Status",
        "Figure",
        "95% interval",
        "Null: mean, q95, percentile",
        "Problem only when",
    )
    return _table(header, rows)


def _rule_cell(rule: Mapping[str, Any] | None) -> str:
    if not rule:
        return "n/a"
    return f"the interval lies {rule['side']} {fmt_num(rule['bound'])} ({rule['what']})"


def _verdict_null(null: Mapping[str, Any] | None) -> str:
    if not null:
        return "n/a"
    return (
        f"{null.get('name', 'null')}: mean {fmt_num(null.get('mean'))}, q95 {fmt_num(null.get('q95'))}, "
        f"percentile {fmt_num(null.get('percentile'))}"
    )


def _mass_figures(bias: Mapping[str, Any]) -> str:
    parts = []
    if bias["mass_interval"] is not None:
        parts.append(f"95% interval {_pct_range(bias['mass_interval'])}")
    ref = bias["mass_reference"]
    if ref is not None:
        parts.append(
            f"ordinary activations: mean {fmt_pct(ref.get('mean'))}, q95 {fmt_pct(ref.get('q95'))}, "
            f"percentile {fmt_num(ref.get('percentile'))}"
        )
    null = bias["mass_null"]
    if null is not None:
        parts.append(
            f"label-shuffled vectors: mean {fmt_pct(null.get('mean'))}, q95 {fmt_pct(null.get('q95'))}, "
            f"percentile {fmt_num(null.get('percentile'))}"
        )
    return f" ({'; '.join(parts)})" if parts else ""


# --- Neuronpedia links ------------------------------------------------------------------------

_Link = Callable[[int], str]


def neuronpedia_id(prov: Mapping[str, Any]) -> str | None:
    """The SAE's Neuronpedia id from the provenance (``sae`` first, then ``sae_source``), if recorded."""
    for key in ("sae", "sae_source"):
        entry = prov.get(key)
        if isinstance(entry, Mapping) and entry.get("neuronpedia_id"):
            return str(entry["neuronpedia_id"])
    return None


def _linker(np_id: str | None) -> _Link:
    if np_id is None:
        return str
    return lambda f: f"[{f}]({NEURONPEDIA_URL.format(neuronpedia_id=np_id, feature=int(f))})"


def _ids(ids: Sequence[int], link: _Link, limit: int = 8) -> str:
    if link is str:
        return id_list(ids, limit)
    if not ids:
        return "none"
    shown = ", ".join(link(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _fv(entry: tuple[int, float], link: _Link) -> str:
    return f"{link(entry[0])}: {fmt_num(entry[1])}"


# --- formatting -------------------------------------------------------------------------------


def _range(pair: Any) -> str:
    return f"{fmt_num(pair[0])} to {fmt_num(pair[1])}"


def _bounds(interval: Any) -> tuple[Any, Any] | None:
    if interval is None:
        return None
    if isinstance(interval, Mapping):
        return interval.get("low", interval.get("ci_low")), interval.get("high", interval.get("ci_high"))
    return interval[0], interval[1]


def _pct_range(interval: Any) -> str:
    b = _bounds(interval)
    return "n/a" if b is None else f"{fmt_pct(b[0])} to {fmt_pct(b[1])}"


def _range_cell(interval: Any) -> str:
    b = _bounds(interval)
    if b is None:
        return "n/a"
    method = interval.get("method") if isinstance(interval, Mapping) else None
    return f"{fmt_num(b[0])} to {fmt_num(b[1])}" + (f" ({method})" if method else "")


def _null_cell(null: Mapping[str, Any] | None, *, pct: bool = False) -> str:
    if not null:
        return "n/a"
    f = fmt_pct if pct else fmt_num
    spread = f" ({f(null['q05'])} to {f(null['q95'])})" if "q05" in null else f", q95 {f(null.get('q95'))}"
    return f"{f(null.get('mean'))}{spread}, percentile {fmt_num(null.get('percentile'))}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return ["(none)"]
    esc = [[c.replace("|", "\\|") for c in row] for row in rows]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in esc),
    ]


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_flat(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return ", ".join(_flat(v) for v in value)
    if isinstance(value, float):
        return fmt_num(value)
    return str(value)
