"""The report's figures as PNGs, drawn with matplotlib's Agg canvas (no pyplot, no global state).

matplotlib is optional (the ``plots`` extra) and imported only when a figure is drawn;
:func:`matplotlib_available` tells the report whether to draw or to say the plots were skipped.
Every function takes plain arrays, so the figures can be drawn from any source of numbers.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PLOT_FILES",
    "PlotData",
    "matplotlib_available",
    "plot_activation_norms",
    "plot_data_from_report",
    "plot_decoder_cosines",
    "plot_decomposition",
    "plot_leaning",
    "plot_retention",
    "plot_top_features",
    "render_plots",
]

# Plot key (as in report.PLOT_TITLES) -> file name in the report folder.
PLOT_FILES = {
    "norms": "activation_norms.png",
    "bias": "top_features.png",
    "leaning": "leaning.png",
    "pairs": "decoder_cosines.png",
    "decomposition": "decomposition.png",
    "retention": "retention.png",
}
_VECTOR, _ZERO, _NEG, _POS, _GREY = "#d62728", "#7f7f7f", "#d62728", "#1f77b4", "#bbbbbb"
_CURVES = {"original": ("Original vector", "#2ca02c"), "sae": ("SAE(v)", _VECTOR),
           "signed": ("Signed decomposition", "#9467bd"),
           "learned": ("Learned in the SAE basis", "#ff7f0e")}  # fmt: skip


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (the ``plots`` extra is installed)."""
    return importlib.util.find_spec("matplotlib") is not None


@dataclass(frozen=True)
class PlotData:
    """The numbers behind the figures, read from a report's ``figures`` section.

    A figure whose numbers are missing (``None``, or empty curves) is skipped.
    """

    steering_norm: float | None = None
    """L2 norm of the steering vector."""
    norm_edges: np.ndarray | None = None
    """Bin edges of the histogram of (positive) activation norms ``[n_bins + 1]``."""
    norm_counts: np.ndarray | None = None
    """Activations in each bin ``[n_bins]``."""
    norm_median: float = float("nan")
    """Median activation norm."""
    percent_shorter: float = float("nan")
    """Share (0-100) of activation norms below the vector's norm."""
    top_features: tuple[int, ...] = ()
    """Features of the top-features plot: SAE(v)'s top, then SAE(0)'s not already shown."""
    code_vector: np.ndarray | None = None
    """SAE(v) at ``top_features``."""
    code_zero: np.ndarray | None = None
    """SAE(0) at ``top_features``."""
    top_vector: tuple[int, ...] = ()
    """SAE(v)'s top features (firing ones only)."""
    top_zero: tuple[int, ...] = ()
    """SAE(0)'s top features (firing ones only)."""
    leaning_features: tuple[int, ...] = ()
    """Features drawn in the leaning plot."""
    mean_pos: np.ndarray | None = None
    """Mean activation on positive prompts at ``leaning_features``."""
    mean_neg: np.ndarray | None = None
    """Mean activation on negative prompts at ``leaning_features``."""
    significant: tuple[int, ...] = ()
    """Drawn features whose lean is statistically significant."""
    dropped: tuple[int, ...] = ()
    """Negative-leaning features that get 0 in SAE(v), circled (most negative first)."""
    n_dropped: int | None = None
    """All such features (circled or not)."""
    n_active: int | None = None
    """Active features (drawn or not)."""
    n_negative: int | None = None
    """Active features more active on the negative prompts."""
    leaning_interval: tuple[float, float] | None = None
    """95% bootstrap interval of the share of active features leaning negative."""
    leaning_null: tuple[float, float, float] | None = None
    """Label-flip null of that share: ``(mean, q05, q95)``."""
    cosine_edges: np.ndarray | None = None
    """Bin edges of the histogram of decoder cosines among the relevant features."""
    cosine_counts: np.ndarray | None = None
    """Pairs of relevant features in each bin."""
    threshold: float | None = None
    """Cosine below which a pair is flagged."""
    flagged: tuple[tuple[int, int, float], ...] = ()
    """Flagged pairs ``(feature, partner, cosine)``, most negative first (the listed ones)."""
    n_flagged: int | None = None
    """Flagged pairs among the relevant features (listed or not)."""
    n_flagged_total: int | None = None
    """Flagged pairs in the whole SAE, if known."""
    multipliers: tuple[float, ...] = ()
    """Steering multipliers of the behaviour sweep."""
    curves: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """``original``/``sae``/``signed`` -> behaviour score at each multiplier."""
    score_se: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """Curve name -> standard error of the mean score at each multiplier."""
    null_slopes: tuple[float, ...] = ()
    """Slopes of random directions of the original's norm (the retention null)."""
    decomposition_curve: np.ndarray | None = None
    """Signed-fit cosine of v for k = 1..k_max ``[k_max]``."""
    null_mean: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Null family -> mean signed-fit cosine of its null vectors ``[k_max]``."""
    null_q95: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Null family -> q95 of those cosines ``[k_max]``."""
    n_null: Mapping[str, int] = field(default_factory=dict)
    """Null family -> its number of null vectors."""
    sae_cosine: float | None = None
    """Cosine of SAE(v)'s reconstruction with v."""
    k_default: int | None = None
    """Support size the decomposition check reports."""


def plot_data_from_report(report: Mapping[str, Any]) -> PlotData:
    """The figures' numbers from a report dict (fresh, or read back from ``report.json``).

    Everything comes from the report's ``figures`` section (see
    :func:`sae_steer_checks.diagnostics.figures.figure_data`); a report without one (written before
    the section existed) gives an empty :class:`PlotData`, which draws nothing.
    """
    figures = report.get("figures")
    if not figures:
        return PlotData()
    n, t, lean = figures["norms"], figures["top_features"], figures["leaning"]
    cos, dec, ret = figures.get("cosines"), figures.get("decomposition"), figures.get("retention")
    return PlotData(
        steering_norm=_num(n["steering_norm"]),
        norm_edges=_array(n["edges"]),
        norm_counts=_array(n["counts"]),
        norm_median=_num(n["median"]),
        percent_shorter=_num(n["percent_shorter"]),
        top_features=tuple(t["features"]),
        code_vector=_array(t["vector"]),
        code_zero=_array(t["zero"]),
        top_vector=tuple(t["top_vector"]),
        top_zero=tuple(t["top_zero"]),
        leaning_features=tuple(lean["features"]),
        mean_pos=_array(lean["mean_pos"]),
        mean_neg=_array(lean["mean_neg"]),
        significant=tuple(lean["significant"]),
        dropped=tuple(lean["circled"]),
        n_dropped=lean["n_dropped"],
        n_active=lean["n_active"],
        n_negative=lean["n_negative"],
        leaning_interval=None if lean["interval"] is None else _pair(lean["interval"]),
        leaning_null=None if lean["null"] is None else _triple(lean["null"]),
        cosine_edges=None if cos is None else _array(cos["edges"]),
        cosine_counts=None if cos is None else _array(cos["counts"]),
        threshold=None if cos is None else _num(cos["threshold"]),
        flagged=() if cos is None else tuple(
            (int(p["feature"]), int(p["partner"]), _num(p["cosine"])) for p in cos["flagged"]),
        n_flagged=None if cos is None else cos["n_flagged"],
        n_flagged_total=None if cos is None else cos["n_flagged_total"],
        multipliers=() if ret is None else tuple(_num(m) for m in ret["multipliers"]),
        curves={} if ret is None else {k: list(_array(v)) for k, v in ret["scores"].items()},
        score_se={} if ret is None else {k: list(_array(v)) for k, v in ret["score_se"].items()},
        null_slopes=() if ret is None else tuple(_num(b) for b in ret["null_slopes"]),
        decomposition_curve=None if dec is None else _array(dec["curve"]),
        null_mean={} if dec is None else {f: _array(c) for f, c in dec["null_mean"].items()},
        null_q95={} if dec is None else {f: _array(c) for f, c in dec["null_q95"].items()},
        n_null={} if dec is None else dict(dec["n_null"]),
        sae_cosine=None if dec is None or dec["sae_cosine"] is None else _num(dec["sae_cosine"]),
        k_default=None if dec is None else dec["k"],
    )  # fmt: skip


def render_plots(data: PlotData, out_dir: str | Path) -> dict[str, str]:
    """Draw every figure ``data`` has numbers for into ``out_dir``.

    Returns plot key -> file name (relative to ``out_dir``) of each figure written.
    """
    out = Path(out_dir)
    written: dict[str, str] = {}
    if data.norm_edges is not None and data.norm_counts is not None and data.steering_norm is not None:
        plot_activation_norms(data.norm_edges, data.norm_counts, data.steering_norm,
                              out / PLOT_FILES["norms"], median=data.norm_median,
                              percent_shorter=data.percent_shorter)  # fmt: skip
        written["norms"] = PLOT_FILES["norms"]
    if data.code_vector is not None and data.code_zero is not None:
        plot_top_features(data.top_features, data.code_vector, data.code_zero, out / PLOT_FILES["bias"],
                          top_vector=data.top_vector, top_zero=data.top_zero)  # fmt: skip
        written["bias"] = PLOT_FILES["bias"]
    if data.mean_pos is not None and data.mean_neg is not None:
        plot_leaning(data.mean_pos, data.mean_neg, out / PLOT_FILES["leaning"],
                     features=data.leaning_features, significant=data.significant, dropped=data.dropped,
                     n_dropped=data.n_dropped, n_active=data.n_active, n_negative=data.n_negative,
                     interval=data.leaning_interval, null=data.leaning_null)  # fmt: skip
        written["leaning"] = PLOT_FILES["leaning"]
    if data.cosine_edges is not None and data.cosine_counts is not None and data.threshold is not None:
        plot_decoder_cosines(data.cosine_edges, data.cosine_counts, data.threshold, data.flagged,
                             out / PLOT_FILES["pairs"], n_flagged=data.n_flagged,
                             n_total=data.n_flagged_total)  # fmt: skip
        written["pairs"] = PLOT_FILES["pairs"]
    if data.decomposition_curve is not None:
        plot_decomposition(data.decomposition_curve, data.null_mean, out / PLOT_FILES["decomposition"],
                           null_q95=data.null_q95, n_null=data.n_null, sae_cosine=data.sae_cosine,
                           k_default=data.k_default)  # fmt: skip
        written["decomposition"] = PLOT_FILES["decomposition"]
    if data.multipliers and data.curves:
        plot_retention(data.multipliers, data.curves, out / PLOT_FILES["retention"],
                       score_se=data.score_se, null_slopes=data.null_slopes)  # fmt: skip
        written["retention"] = PLOT_FILES["retention"]
    return written


def plot_activation_norms(
    edges: np.ndarray,
    counts: np.ndarray,
    steering_norm: float,
    path: str | Path,
    *,
    median: float,
    percent_shorter: float,
) -> Path:
    """Histogram of activation norms (bin ``edges``, ``counts``) on a log axis, ``||v||`` marked.

    The ``median`` norm is marked too; ``percent_shorter`` (0-100) of the activations are shorter
    than v. :func:`sae_steer_checks.diagnostics.figures.norm_histogram` gives the histogram of a sample.
    """
    bins = np.asarray(edges, dtype=np.float64)
    weights = np.asarray(counts, dtype=np.float64)
    fig, ax = _figure()
    lo, hi = float(bins[0]), float(bins[-1])
    ax.hist(bins[:-1], bins=list(bins), weights=weights, color=_GREY, edgecolor="white",
            label="activation norms")  # fmt: skip
    ax.set_xscale("log")
    ax.axvline(median, color="black", linestyle="--", linewidth=1,
               label=f"median activation norm = {median:.4g}")  # fmt: skip
    if steering_norm > 0:
        ax.axvline(steering_norm, color=_VECTOR, linewidth=2.5,
                   label=f"steering vector: ‖v‖ = {steering_norm:.4g}")  # fmt: skip
        ax.annotate(f"‖v‖: {percent_shorter:.1f}% of\nactivations are shorter", (steering_norm, 0.5),
                    xycoords=("data", "axes fraction"), xytext=(6, 0), textcoords="offset points",
                    fontsize=8, color=_VECTOR)  # fmt: skip
        ax.set_xlim(min(lo, steering_norm) / 1.6, max(hi, steering_norm) * 1.6)
    else:  # a zero vector has no place on a log axis
        ax.set_xlim(lo / 1.6, hi * 1.6)
    _plain_log_ticks(ax)
    ax.set_xlabel("L2 norm (log scale)")
    ax.set_ylabel("activations")
    ratio = steering_norm / median if median > 0 else float("nan")
    title = f"‖v‖ is {ratio:.2%} of the median activation norm" if steering_norm > 0 else "v = 0"
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return _save(fig, path)


def plot_top_features(
    features: Sequence[int],
    code_vector: np.ndarray,
    code_zero: np.ndarray,
    path: str | Path,
    *,
    top_vector: Sequence[int],
    top_zero: Sequence[int],
) -> Path:
    """Paired bars of SAE(v) and SAE(0) at ``features`` (``code_vector``/``code_zero``, one value each).

    ``features`` are SAE(v)'s top features ``top_vector`` and then SAE(0)'s top ``top_zero`` not
    already shown (as :func:`sae_steer_checks.diagnostics.figures.top_features_figure` gives them).
    """
    f_v = np.asarray(code_vector, dtype=np.float64)
    f_0 = np.asarray(code_zero, dtype=np.float64)
    fig, ax = _figure(height=max(2.6, 0.45 * len(features) + 1.4))
    if not len(features):
        ax.text(0.5, 0.5, "Neither SAE(v) nor SAE(0) fires any feature", ha="center",
                va="center", transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return _save(fig, path)
    y = np.arange(len(features))
    for offset, code, color, label in ((-0.2, f_v, _VECTOR, "SAE(v)"),
                                       (0.2, f_0, _ZERO, "SAE(0): the zero vector")):  # fmt: skip
        bars = ax.barh(y + offset, code, height=0.4, color=color, label=label)
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
    shared = set(top_vector) & set(top_zero)
    labels = [f"{i}" + (" (in both)" if i in shared else "") for i in features]
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("feature activation")
    ax.set_ylabel("feature")
    ax.set_title(f"{len(shared)} of SAE(v)'s top {len(top_vector)} features also top SAE(0)")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return _save(fig, path)


def plot_leaning(
    mean_pos: np.ndarray,
    mean_neg: np.ndarray,
    path: str | Path,
    *,
    features: Sequence[int] | None = None,
    significant: Sequence[int] = (),
    dropped: Sequence[int] = (),
    n_dropped: int | None = None,
    n_active: int | None = None,
    n_negative: int | None = None,
    interval: tuple[float, float] | None = None,
    null: tuple[float, float, float] | None = None,
) -> Path:
    """Scatter of mean activation on positive (x) vs negative (y) prompts, per active feature.

    ``mean_pos``/``mean_neg`` hold one value per feature of ``features`` (default: feature i at
    position i); ``significant`` and ``dropped`` name features by id. Features above the diagonal
    lean negative (red), below it positive (blue); significant leans are drawn solid, the rest
    faint; ``dropped`` features (0 in SAE(v)) are circled and labelled, ``n_dropped`` of them in all.
    ``n_active``/``n_negative`` count every active feature when only some are drawn (default: the
    drawn ones). ``interval`` (low, high) of the negative share and its label-flip ``null`` (mean,
    q05, q95) are drawn in an inset strip, so the share can be read against what label noise gives.
    """
    pos = np.asarray(mean_pos, dtype=np.float64)
    neg = np.asarray(mean_neg, dtype=np.float64)
    ids = list(range(pos.size)) if features is None else [int(i) for i in features]
    at = {f: k for k, f in enumerate(ids)}
    active = np.flatnonzero((pos > 0) | (neg > 0))
    sig = np.zeros(pos.shape, dtype=bool)
    sig[[at[i] for i in significant if i in at]] = True
    fig, ax = _figure(height=5.6, width=5.6)
    top = float(max(pos.max(initial=0.0), neg.max(initial=0.0), 1e-9)) * 1.08
    ax.plot([0, top], [0, top], color="black", linewidth=0.8, linestyle=":")
    leans_neg = neg > pos
    total = active.size if n_active is None else n_active
    n_neg = int(leans_neg[active].sum()) if n_negative is None else n_negative
    for mask, color, label in (
        (leans_neg, _NEG, f"more active on negative prompts ({n_neg})"),
        (~leans_neg, _POS, f"more active on positive prompts ({total - n_neg})"),
    ):
        faint = active[mask[active] & ~sig[active]]
        solid = active[mask[active] & sig[active]]
        ax.scatter(pos[faint], neg[faint], s=12, color=color, alpha=0.3, linewidths=0)
        ax.scatter(pos[solid], neg[solid], s=28, color=color, label=label)
    circled = [i for i in dropped if i in at]
    if circled:
        d = np.array([at[i] for i in circled], dtype=int)
        n_all = len(dropped) if n_dropped is None else n_dropped
        shown = f" ({d.size} of {n_all} circled)" if n_all > d.size else ""
        ax.scatter(pos[d], neg[d], s=140, facecolors="none", edgecolors="black", linewidths=1.2,
                   label=f"significantly negative-leaning, 0 in SAE(v){shown}")  # fmt: skip
        for i, k in zip(circled, d, strict=True):
            ax.annotate(str(i), (pos[k], neg[k]), xytext=(6, 4), textcoords="offset points",
                        fontsize=8)  # fmt: skip
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean activation on positive prompts")
    ax.set_ylabel("mean activation on negative prompts")
    share = n_neg / total if total else float("nan")
    drawn = f"\n{active.size} of them drawn: the most active and the significant"
    drawn = drawn if active.size < total else ""
    ax.set_title(
        f"{share:.0%} of {total} active features lean negative\n"
        f"(solid: significant lean; faint: not significant){drawn}",
        fontsize=10,
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, frameon=False)
    if interval is not None or null is not None:
        _share_strip(ax, share, interval, null)
    return _save(fig, path)


def _share_strip(
    ax: Axes, share: float, interval: tuple[float, float] | None, null: tuple[float, float, float] | None
) -> None:
    # An inset in the empty lower-right corner (below the diagonal only positive leans sit).
    inset = ax.inset_axes((0.52, 0.1, 0.44, 0.12))
    ends = [share, *(interval or ()), *(null[1:] if null else ())]
    finite = [x for x in ends if np.isfinite(x)] or [0.5]
    lo, hi = min(finite), max(finite)
    pad = max(hi - lo, 0.02) * 0.25
    if null is not None:
        inset.axvspan(null[1], null[2], color=_GREY, alpha=0.6, label="label-flip null q05–q95")
        inset.axvline(null[0], color="black", linewidth=0.8)
    if interval is not None:
        # a basic interval need not hold its estimate: error bars cannot be negative
        below, above = max(share - interval[0], 0.0), max(interval[1] - share, 0.0)
        inset.errorbar([share], [0.5], xerr=[[below], [above]], fmt="o", color=_NEG, capsize=3, markersize=4)
    else:
        inset.plot([share], [0.5], "o", color=_NEG, markersize=4)
    inset.set_xlim(lo - pad, hi + pad)
    inset.set_ylim(0, 1)
    inset.set_yticks([])
    inset.tick_params(labelsize=7)
    inset.xaxis.set_major_formatter("{x:.0%}")
    inset.set_title("share leaning negative, 95% CI; grey: label-flip null q05–q95", fontsize=6.5)


def plot_decoder_cosines(
    edges: np.ndarray,
    counts: np.ndarray,
    threshold: float,
    flagged: Sequence[tuple[int, int, float]],
    path: str | Path,
    *,
    n_flagged: int | None = None,
    n_total: int | None = None,
) -> Path:
    """Histogram (log counts) of decoder cosines (bin ``edges``, ``counts``), flagged pairs marked.

    ``flagged`` are the listed ``(feature, partner, cosine)`` pairs, ``n_flagged`` all flagged pairs
    among the relevant features (default: the listed ones) and ``n_total`` the flagged pairs in the
    whole SAE, named in the title when given. :func:`sae_steer_checks.diagnostics.figures.cosine_figure`
    gives the histogram of a decoder's rows.
    """
    bins = np.asarray(edges, dtype=np.float64)
    weights = np.asarray(counts, dtype=np.float64)
    n_flagged = len(flagged) if n_flagged is None else n_flagged
    fig, ax = _figure()
    ax.hist(bins[:-1], bins=list(bins), weights=weights, color=_GREY, edgecolor="white",
            label=f"pairs of relevant features ({int(weights.sum())})")  # fmt: skip
    ax.set_yscale("log")
    ax.axvspan(-1, threshold, color=_VECTOR, alpha=0.08)
    ax.axvline(threshold, color=_VECTOR, linestyle="--", linewidth=1,
               label=f"threshold {threshold:g}")  # fmt: skip
    if flagged:
        cos = np.array([c for _, _, c in flagged])
        ax.plot(cos, np.full(cos.size, 0.02), "^", color=_VECTOR, markersize=9,
                transform=ax.get_xaxis_transform(), label="flagged pairs", clip_on=False)  # fmt: skip
        lines = [f"{i} – {j}: {c:.3f}" for i, j, c in flagged[:8]]
        if n_flagged > 8:
            lines.append(f"... {n_flagged - 8} more")
        ax.text(0.02, 0.97, "flagged pairs\n" + "\n".join(lines), transform=ax.transAxes,
                va="top", fontsize=8, color=_VECTOR, family="monospace")  # fmt: skip
    ax.set_xlim(-1, 1)
    ax.set_xlabel("cosine between decoder directions")
    ax.set_ylabel("pairs (log scale)")
    title = f"{n_flagged} pair(s) of relevant features below {threshold:g}"
    if n_total is not None:
        title += f" ({n_total} in the whole SAE)"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return _save(fig, path)


def plot_decomposition(
    curve: np.ndarray,
    null_mean: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    null_q95: Mapping[str, np.ndarray] | None = None,
    n_null: Mapping[str, int] | None = None,
    sae_cosine: float | None = None,
    k_default: int | None = None,
) -> Path:
    """Signed-fit cosine of v against support size k ``[k_max]`` beside each null family's curves.

    ``null_mean`` maps a family to its null vectors' mean cosine ``[k_max]``, drawn as a line with a
    band up to ``null_q95`` (same keys); ``n_null`` gives each family's draws for the legend.
    SAE(v)'s cosine is a horizontal line, ``k_default`` marked.
    """
    c = np.asarray(curve, dtype=np.float64).reshape(-1)
    k = np.arange(1, c.size + 1)
    fig, ax = _figure()
    palette = ("#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22")
    q95s, counts = dict(null_q95 or {}), dict(n_null or {})
    for (family, mean), color in zip(sorted(null_mean.items()), palette * 4, strict=False):
        m = np.asarray(mean, dtype=np.float64).reshape(-1)
        n = f" (n={counts[family]})" if family in counts else ""
        band = ", band to q95" if family in q95s else ""
        ax.plot(k, m, color=color, linewidth=1, label=f"{family} null: mean{band}{n}")
        if family in q95s:
            ax.fill_between(k, m, np.asarray(q95s[family], dtype=np.float64).reshape(-1), color=color,
                            alpha=0.2, linewidth=0)  # fmt: skip
    ax.plot(k, c, color=_CURVES["signed"][1], linewidth=2.2, label="signed fit of v")
    if sae_cosine is not None and np.isfinite(sae_cosine):
        ax.axhline(sae_cosine, color=_VECTOR, linestyle="--", linewidth=1.2,
                   label=f"SAE(v): cosine {sae_cosine:.3g}")  # fmt: skip
    title = "Cosine with v of the signed fit over k features, against null vectors"
    if k_default is not None and 1 <= k_default <= c.size:
        ax.axvline(k_default, color="black", linestyle=":", linewidth=1)
        ax.annotate(f"k = {k_default}: {c[k_default - 1]:.3g}", (k_default, c[k_default - 1]),
                    xytext=(6, -14), textcoords="offset points", fontsize=8)  # fmt: skip
    ax.set_ylim(min(0.0, float(np.nanmin(c, initial=0.0))), 1.02)
    ax.set_xlabel("features in the signed fit (k)")
    ax.set_ylabel("cosine with the vector")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    return _save(fig, path)


def plot_retention(
    multipliers: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    score_se: Mapping[str, Sequence[float]] | None = None,
    null_slopes: Sequence[float] = (),
) -> Path:
    """Behaviour score against multiplier for each curve (``original``, ``sae``, ``signed``).

    ``score_se`` (name -> standard error per multiplier) shades score ± 1.96 SE; ``null_slopes``
    (random directions of the original's norm) are thin grey lines through the original's intercept.
    """
    m = np.asarray(multipliers, dtype=np.float64)
    fig, ax = _figure()
    se = dict(score_se or {})
    if null_slopes and "original" in curves and m.size >= 2:
        intercept = float(np.polyfit(m, np.asarray(curves["original"], dtype=np.float64), 1)[1])
        for i, b in enumerate(null_slopes):
            ax.plot(m, intercept + b * m, color=_GREY, linewidth=0.6, zorder=1,
                    label=f"random directions of ‖v‖ ({len(null_slopes)})" if i == 0 else None)  # fmt: skip
    for key, scores in curves.items():
        label, color = _CURVES.get(key, (key, None))
        s = np.asarray(scores, dtype=np.float64)
        slope = float(np.polyfit(m, s, 1)[0]) if m.size >= 2 else float("nan")
        (line,) = ax.plot(m, s, marker="o", color=color, label=f"{label} (slope {slope:.3g})")
        if key in se and len(se[key]) == m.size:
            half = 1.96 * np.asarray(se[key], dtype=np.float64)
            ax.fill_between(m, s - half, s + half, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("multiplier")
    ax.set_ylabel("behaviour score")
    title = "Steering effect of the vector and of its reconstructions"
    ax.set_title(title + ("\n(bands: score ± 1.96 SE over items)" if se else ""), fontsize=10)
    # a fixed corner: "best" searches every line (40 random directions) and is slow on a busy machine;
    # rising curves leave the upper left free
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return _save(fig, path)


def _num(x: Any) -> float:
    # report.json stores NaN and infinities as null
    return float("nan") if x is None else float(x)


def _array(values: Sequence[Any]) -> np.ndarray:
    return np.array([_num(x) for x in values], dtype=np.float64)


def _pair(values: Sequence[Any]) -> tuple[float, float]:
    low, high = values
    return _num(low), _num(high)


def _triple(values: Sequence[Any]) -> tuple[float, float, float]:
    a, b, c = values
    return _num(a), _num(b), _num(c)


def _figure(*, width: float = 6.4, height: float = 4.0) -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _plain_log_ticks(ax: Axes) -> None:
    # Log axes spanning under a decade otherwise label ticks as overlapping "3x10^1 4x10^1".
    from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    fig.savefig(out, format="png")
    return out
