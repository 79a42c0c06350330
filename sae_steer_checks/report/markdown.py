"""The Markdown report, rendered from the JSON report dict alone (so tests can assert on the JSON).

One verdict line per mechanism in plain words, the key figures in small tables, the plots embedded,
and the provenance at the end. Missing sections (e.g. ``retention`` when no behaviour score was
given) are said to be missing rather than left out silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sae_steer_checks.report.verdicts import (
    Verdict,
    feature_ids,
    feature_values,
    fmt_num,
    fmt_pct,
    id_list,
    verdicts,
)

if TYPE_CHECKING:
    from sae_steer_checks.report.plots import PlotData

__all__ = ["PLOTS_SKIPPED", "PLOT_TITLES", "Verdict", "render_markdown", "verdicts", "write_report"]

# Plot key -> caption; the order is the order of the report's sections.
PLOT_TITLES = {
    "norms": "Activation norms at the layer, with the steering vector's norm marked",
    "bias": "Top features of SAE(v) beside SAE(0)",
    "leaning": "Mean activation on positive vs negative prompts, per feature",
    "pairs": "Decoder cosines among the relevant features, flagged pairs marked",
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
    """Render the report as Markdown.

    ``plots`` maps plot keys (see :data:`PLOT_TITLES`) to image paths relative to the report;
    ``plots_note`` explains why plots are missing (e.g. matplotlib is not installed).
    Returns the Markdown text, ending in a newline.
    """
    plots = dict(plots or {})
    prov = report.get("provenance") or {}
    lines = ["# Does the SAE give a trustworthy account of this steering vector?", ""]
    subject = _subject(prov)
    if subject:
        lines += [subject, ""]
    lines += ["## Verdict", ""]
    for v in verdicts(report):
        mark = {"problem": "**problem**", "fine": "fine", "not run": "not run"}[v.status]
        lines.append(f"- **{v.mechanism}** ({mark}): {v.sentence}")
    lines.append("")
    if plots_note:
        lines += [f"> {plots_note}", ""]
    sections = [
        ("1. Norm: is the vector in distribution?", _norm_table(report.get("norm")), "norms"),
        ("2. Encoder bias: SAE(v) against SAE(0)", _bias_table(report.get("bias")), "bias"),
        ("3. Negative-leaning features", _leaning_table(report.get("negative_leaning")), "leaning"),
        ("4. Negatively aligned decoder pairs", _pairs_table(report.get("aligned_pairs")), "pairs"),
        ("5. Signed decomposition", _decomposition_table(report.get("decompositions")), None),
        ("6. Behaviour retained", _retention_table(report.get("retention")), "retention"),
    ]
    for title, body, plot in sections:
        lines += [f"## {title}", "", *body, ""]
        if plot is not None and plot in plots:
            lines += [f"![{PLOT_TITLES[plot]}]({plots[plot]})", ""]
    lines += ["## Provenance", "", *_provenance_table(prov), ""]
    return "\n".join(lines)


def write_report(
    report: Mapping[str, Any],
    out: str | Path,
    *,
    force: bool = False,
    plot_data: PlotData | None = None,
) -> list[str]:
    """Write ``report.json``, ``report.md`` and the plots into the folder ``out``, atomically.

    Everything is written into a temporary folder beside ``out`` and moved into place at the end,
    so an interrupted run leaves nothing half-written; an existing non-empty ``out`` is replaced
    only with ``force``. Without matplotlib the plots are skipped and the Markdown says so.
    Returns the names of the files written, report files first.
    """
    from sae_steer_checks.report import plots as plotting
    from sae_steer_checks.report.files import atomic_output_dir, write_json

    with atomic_output_dir(out, force=force) as tmp:
        images: dict[str, str] = {}
        note = None
        if plot_data is not None:
            if plotting.matplotlib_available():
                images = plotting.render_plots(plot_data, tmp)
            else:
                note = PLOTS_SKIPPED
        write_json(tmp / "report.json", dict(report))
        markdown = render_markdown(report, plots=images, plots_note=note)
        (tmp / "report.md").write_text(markdown, encoding="utf-8")
    return ["report.json", "report.md", *images.values()]


# --- tables -----------------------------------------------------------------------------------


def _norm_table(norm: Mapping[str, Any] | None) -> list[str]:
    if not norm:
        return ["Not run: no activation sample was given."]
    rows = [
        ("Steering-vector norm", fmt_num(norm.get("steering_norm"))),
        ("Median activation norm", fmt_num(norm.get("activation_norm_median"))),
        ("Ratio to the median", fmt_num(norm.get("ratio"))),
        ("Percentile of the vector among activation norms", fmt_num(norm.get("percentile"))),
        ("Activations in the sample", fmt_num(norm.get("n_activations"))),
    ]
    for key, value in sorted((norm.get("quantiles") or {}).items(), key=lambda kv: float(kv[0])):
        rows.append((f"Activation-norm quantile {key}", fmt_num(value)))
    return _table(("Figure", "Value"), rows)


def _bias_table(bias: Mapping[str, Any] | None) -> list[str]:
    if not bias:
        return ["Not run."]
    k = int(bias.get("top_k") or 0)
    top_v = feature_values(bias.get("top_features_vector"))
    zero = feature_values(bias.get("top_features_zero"))
    top_0 = dict(zero)
    # top lists hold every positive entry up to k, so a shorter list means the rest are exactly 0
    missing = "0" if len(zero) < k else f"< {fmt_num(min(top_0.values()))}" if zero else "n/a"
    rows = [
        (str(f), fmt_num(v), fmt_num(top_0[f]) if f in top_0 else missing, "yes" if f in top_0 else "no")
        for f, v in top_v
    ]
    own = "subtracted" if bias.get("decoder_bias_subtracted") else "not subtracted"
    out = [
        f"Encoded under the SAE's own convention (decoder bias {own} before encoding). Jaccard "
        f"overlap of the top {k}: {fmt_num(bias.get('overlap'))}; share of SAE(v)'s mass already in "
        f"SAE(0): {fmt_pct(bias.get('mass_in_zero'))}.",
        "",
        *_table(("Feature", "SAE(v)", "SAE(0)", "In SAE(0)'s top"), rows),
        "",
    ]
    other = bias.get("other_convention")
    if isinstance(other, Mapping):
        flip = "subtracted" if other.get("decoder_bias_subtracted") else "not subtracted"
        out += [
            f"Under the other convention (decoder bias {flip}): overlap {fmt_num(other.get('overlap'))}, "
            f"mass already in SAE(0) {fmt_pct(other.get('mass_in_zero'))}, top features of SAE(v) "
            f"{id_list(feature_ids(other.get('top_features_vector')))}.",
            "",
        ]
    delta = bias.get("delta_top_features")
    if delta:
        out += [
            "Delta view, mean of SAE(x + v) - SAE(x) over real activations x (v kept in "
            f"distribution): top features {id_list(feature_ids(delta))}.",
            "",
        ]
    return out[:-1]


def _leaning_table(leaning: Mapping[str, Any] | None) -> list[str]:
    if not leaning:
        return ["Not run."]
    rows = [
        ("Contrastive pairs", fmt_num(leaning.get("n_pairs"))),
        ("Features active on either set", fmt_num(leaning.get("n_active"))),
        ("Share more active on negative prompts", fmt_pct(leaning.get("fraction"))),
        (
            "Features with a significant lean (FDR " + fmt_num(leaning.get("alpha")) + ")",
            fmt_num(leaning.get("n_significant")),
        ),
        ("Share of those leaning negative", fmt_pct(leaning.get("significant_fraction"))),
        (
            "Significantly negative-leaning, yet 0 in SAE(v)",
            id_list(feature_ids(leaning.get("dropped_by_encoder"))),
        ),
    ]
    return _table(("Figure", "Value"), rows)


def _pairs_table(pairs: Mapping[str, Any] | None, limit: int = 10) -> list[str]:
    if not pairs:
        return ["Not run."]
    found = list(pairs.get("pairs") or [])
    spurious = list(pairs.get("spurious") or [])
    n_pairs = pairs.get("n_pairs", len(found))
    out = [f"{n_pairs} pair(s) below cosine {fmt_num(pairs.get('threshold'))}.", ""]
    if found:
        rows = [
            (str(p.get("feature")), str(p.get("partner")), fmt_num(p.get("cosine")), str(p.get("status", "")))
            for p in found
        ]
        out += _table(("Feature", "Partner", "Cosine", "Status"), rows[:limit])
        if n_pairs > limit:
            out += ["", f"... and {n_pairs - limit} more (listed in report.json up to its limit)."]
        out.append("")
    if spurious:
        explained = [
            (str(s.get("feature")), str(s.get("explained_by")), fmt_num(s.get("cosine"))) for s in spurious
        ]
        out += ["Spurious positive coefficients of SAE(v):", ""]
        out += _table(("Feature", "Explained by", "Cosine"), explained[:limit])
    else:
        out.append("No spurious positive coefficient in SAE(v).")
    bias_explained = feature_ids(pairs.get("bias_explained"))
    if bias_explained:
        out += ["", f"Positive coefficients the encoder bias alone explains: {id_list(bias_explained)}."]
    conflicts = list(pairs.get("sign_conflicts") or [])
    if conflicts:
        out += [
            "",
            f"Sign conflicts (positive in SAE(v), yet v projects negatively on the feature or its "
            f"signed coefficient is negative): {id_list(feature_ids(conflicts))}.",
        ]
    return out


def _decomposition_table(dec: Mapping[str, Any] | None) -> list[str]:
    if not dec:
        return ["Not run."]
    reported = (dec.get("signed") or {}).get("method")
    rows = []
    for key, fig in sorted(dec.items(), key=lambda kv: (kv[0] != "sae", kv[0])):
        if key == "signed" or not (isinstance(fig, Mapping) and "cosine" in fig):
            continue
        label = "SAE(v), the SAE's own code" if key == "sae" else key.replace("_", " ")
        if key == reported:
            label += " (reported as signed)"
        rows.append(
            (label, fmt_num(fig.get("cosine")), fmt_num(fig.get("rel_error")), fmt_num(fig.get("l0")),
             fmt_num(fig.get("n_negative")))
        )  # fmt: skip
    header = ("Decomposition of v", "Cosine", "Relative error", "Features", "Negative coefficients")
    return _table(header, rows)


def _retention_table(ret: Mapping[str, Any] | None) -> list[str]:
    if not ret:
        return ["Not run: no behaviour score was given."]
    slopes = ret.get("slopes") or {}
    ratios = {"original": 1.0, "sae": ret.get("ratio_sae"), "signed": ret.get("ratio_signed")}
    names = {"original": "Original vector", "sae": "SAE(v)", "signed": "Signed decomposition"}
    rows = [(names.get(k, k), fmt_num(slopes.get(k)), fmt_pct(ratios.get(k))) for k in slopes if k in names]
    multipliers = ", ".join(fmt_num(m) for m in ret.get("multipliers") or [])
    return [
        f"Multipliers: {multipliers}.",
        "",
        *_table(("Steering with", "Slope", "Share of original"), rows),
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


# --- formatting -------------------------------------------------------------------------------


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
