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
    from torch import Tensor

    from sae_steer_checks.diagnostics.run import CheckResult

__all__ = [
    "PLOT_FILES",
    "PlotData",
    "matplotlib_available",
    "plot_activation_norms",
    "plot_data_from_result",
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
_MAX_CIRCLED = 6
_CURVES = {"original": ("Original vector", "#2ca02c"), "sae": ("SAE(v)", _VECTOR),
           "signed": ("Signed decomposition", "#9467bd")}  # fmt: skip


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (the ``plots`` extra is installed)."""
    return importlib.util.find_spec("matplotlib") is not None


@dataclass(frozen=True)
class PlotData:
    """The numbers behind the figures; any field left ``None`` skips its figure."""

    steering_norm: float | None = None
    """L2 norm of the steering vector."""
    activation_norms: np.ndarray | None = None
    """Norms of the activation sample ``[n]``."""
    code_vector: np.ndarray | None = None
    """SAE(v) ``[d_sae]``."""
    code_zero: np.ndarray | None = None
    """SAE(0) ``[d_sae]``."""
    top_k: int = 5
    """How many top features of each code to show."""
    mean_pos: np.ndarray | None = None
    """Mean feature activation on positive prompts ``[d_sae]``."""
    mean_neg: np.ndarray | None = None
    """Mean feature activation on negative prompts ``[d_sae]``."""
    significant: tuple[int, ...] = ()
    """Features whose lean is statistically significant."""
    dropped: tuple[int, ...] = ()
    """Negative-leaning features that get 0 in SAE(v)."""
    cosines: np.ndarray | None = None
    """Decoder cosines among the relevant features (one entry per pair) ``[n_pairs]``."""
    threshold: float | None = None
    """Cosine below which a pair is flagged."""
    flagged: tuple[tuple[int, int, float], ...] = ()
    """Flagged pairs among the relevant features ``(feature, partner, cosine)``."""
    n_flagged_total: int | None = None
    """Flagged pairs in the whole SAE (relevant or not), if known."""
    multipliers: tuple[float, ...] = ()
    """Steering multipliers of the behaviour sweep."""
    curves: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """``original``/``sae``/``signed`` -> behaviour score at each multiplier."""
    leaning_interval: tuple[float, float] | None = None
    """95% bootstrap interval of the share of active features leaning negative."""
    leaning_null: tuple[float, float, float] | None = None
    """Label-flip null of that share: ``(mean, q05, q95)``."""
    decomposition_curve: np.ndarray | None = None
    """Signed-fit cosine of v for k = 1..k_max ``[k_max]``."""
    decomposition_null_curves: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Null family -> signed-fit cosines of its null vectors ``[n_null, k_max]``."""
    sae_cosine: float | None = None
    """Cosine of SAE(v)'s reconstruction with v."""
    k_default: int | None = None
    """Support size the decomposition check reports."""
    score_se: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """Curve name -> standard error of the mean score at each multiplier."""
    null_slopes: tuple[float, ...] = ()
    """Slopes of random directions of the original's norm (the retention null)."""


def render_plots(data: PlotData, out_dir: str | Path) -> dict[str, str]:
    """Draw every figure ``data`` has numbers for into ``out_dir``.

    Returns plot key -> file name (relative to ``out_dir``) of each figure written.
    """
    out = Path(out_dir)
    written: dict[str, str] = {}
    if data.activation_norms is not None and data.steering_norm is not None:
        plot_activation_norms(data.activation_norms, data.steering_norm, out / PLOT_FILES["norms"])
        written["norms"] = PLOT_FILES["norms"]
    if data.code_vector is not None and data.code_zero is not None:
        plot_top_features(data.code_vector, data.code_zero, out / PLOT_FILES["bias"], k=data.top_k)
        written["bias"] = PLOT_FILES["bias"]
    if data.mean_pos is not None and data.mean_neg is not None:
        plot_leaning(data.mean_pos, data.mean_neg, out / PLOT_FILES["leaning"],
                     significant=data.significant, dropped=data.dropped,
                     interval=data.leaning_interval, null=data.leaning_null)  # fmt: skip
        written["leaning"] = PLOT_FILES["leaning"]
    if data.cosines is not None and data.threshold is not None:
        plot_decoder_cosines(data.cosines, data.threshold, data.flagged, out / PLOT_FILES["pairs"],
                             n_total=data.n_flagged_total)  # fmt: skip
        written["pairs"] = PLOT_FILES["pairs"]
    if data.decomposition_curve is not None:
        plot_decomposition(data.decomposition_curve, data.decomposition_null_curves,
                           out / PLOT_FILES["decomposition"], sae_cosine=data.sae_cosine,
                           k_default=data.k_default)  # fmt: skip
        written["decomposition"] = PLOT_FILES["decomposition"]
    if data.multipliers and data.curves:
        plot_retention(data.multipliers, data.curves, out / PLOT_FILES["retention"],
                       score_se=data.score_se, null_slopes=data.null_slopes)  # fmt: skip
        written["retention"] = PLOT_FILES["retention"]
    return written


def plot_activation_norms(norms: np.ndarray, steering_norm: float, path: str | Path) -> Path:
    """Histogram of activation norms ``[n]`` on a log axis, the vector's norm and the median marked."""
    norms = np.asarray(norms, dtype=np.float64)
    positive = norms[norms > 0]
    fig, ax = _figure()
    lo, hi = (float(positive.min()), float(positive.max())) if positive.size else (1.0, 1.0)
    # Bins follow the activations' own spread; the axis stretches to take in the vector too.
    bins = np.geomspace(lo, hi * (1 + 1e-9), 40) if hi > lo else np.array([lo * 0.95, lo * 1.05])
    ax.hist(positive, bins=list(bins), color=_GREY, edgecolor="white", label="activation norms")
    ax.set_xscale("log")
    median = float(np.median(norms))
    pct = 100.0 * float(np.mean(norms < steering_norm))
    ax.axvline(median, color="black", linestyle="--", linewidth=1,
               label=f"median activation norm = {median:.4g}")  # fmt: skip
    if steering_norm > 0:
        ax.axvline(steering_norm, color=_VECTOR, linewidth=2.5,
                   label=f"steering vector: ‖v‖ = {steering_norm:.4g}")  # fmt: skip
        ax.annotate(f"‖v‖: {pct:.1f}% of\nactivations are shorter", (steering_norm, 0.5),
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
    code_vector: np.ndarray, code_zero: np.ndarray, path: str | Path, *, k: int = 5
) -> Path:
    """Paired bars of the top-``k`` features of SAE(v) and of SAE(0), both ``[d_sae]``."""
    f_v = np.asarray(code_vector, dtype=np.float64)
    f_0 = np.asarray(code_zero, dtype=np.float64)
    top_v = [int(i) for i in np.argsort(-f_v, kind="stable")[:k] if f_v[i] > 0]
    top_0 = [int(i) for i in np.argsort(-f_0, kind="stable")[:k] if f_0[i] > 0]
    features = top_v + [i for i in top_0 if i not in top_v]
    fig, ax = _figure(height=max(2.6, 0.45 * len(features) + 1.4))
    if not features:
        ax.text(0.5, 0.5, "Neither SAE(v) nor SAE(0) fires any feature", ha="center",
                va="center", transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return _save(fig, path)
    y = np.arange(len(features))
    for offset, code, color, label in ((-0.2, f_v, _VECTOR, "SAE(v)"),
                                       (0.2, f_0, _ZERO, "SAE(0): the zero vector")):  # fmt: skip
        bars = ax.barh(y + offset, code[features], height=0.4, color=color, label=label)
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
    shared = set(top_v) & set(top_0)
    labels = [f"{i}" + (" (in both)" if i in shared else "") for i in features]
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("feature activation")
    ax.set_ylabel("feature")
    ax.set_title(f"{len(shared)} of SAE(v)'s top {len(top_v)} features also top SAE(0)")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return _save(fig, path)


def plot_leaning(
    mean_pos: np.ndarray,
    mean_neg: np.ndarray,
    path: str | Path,
    *,
    significant: Sequence[int] = (),
    dropped: Sequence[int] = (),
    interval: tuple[float, float] | None = None,
    null: tuple[float, float, float] | None = None,
) -> Path:
    """Scatter of mean activation on positive (x) vs negative (y) prompts, per active feature.

    Features above the diagonal lean negative (red), below it positive (blue); significant leans
    are drawn solid, the rest faint; ``dropped`` features (0 in SAE(v)) are circled and labelled.
    ``interval`` (low, high) of the negative share and its label-flip ``null`` (mean, q05, q95)
    are drawn in an inset strip, so the share can be read against what label noise gives.
    """
    pos = np.asarray(mean_pos, dtype=np.float64)
    neg = np.asarray(mean_neg, dtype=np.float64)
    active = np.flatnonzero((pos > 0) | (neg > 0))
    sig = np.zeros(pos.shape, dtype=bool)
    sig[[i for i in significant if 0 <= i < pos.size]] = True
    fig, ax = _figure(height=5.6, width=5.6)
    top = float(max(pos.max(initial=0.0), neg.max(initial=0.0), 1e-9)) * 1.08
    ax.plot([0, top], [0, top], color="black", linewidth=0.8, linestyle=":")
    leans_neg = neg > pos
    n_neg = int(leans_neg[active].sum())
    for mask, color, label in (
        (leans_neg, _NEG, f"more active on negative prompts ({n_neg})"),
        (~leans_neg, _POS, f"more active on positive prompts ({active.size - n_neg})"),
    ):
        faint = active[mask[active] & ~sig[active]]
        solid = active[mask[active] & sig[active]]
        ax.scatter(pos[faint], neg[faint], s=12, color=color, alpha=0.3, linewidths=0)
        ax.scatter(pos[solid], neg[solid], s=28, color=color, label=label)
    if dropped:
        # ``dropped`` comes most negative first; circling all of a long list buries the plot
        d = np.array([i for i in dropped if 0 <= i < pos.size][:_MAX_CIRCLED], dtype=int)
        shown = f" ({d.size} of {len(dropped)} circled)" if len(dropped) > d.size else ""
        ax.scatter(pos[d], neg[d], s=140, facecolors="none", edgecolors="black", linewidths=1.2,
                   label=f"significantly negative-leaning, 0 in SAE(v){shown}")  # fmt: skip
        for i in d:
            ax.annotate(str(i), (pos[i], neg[i]), xytext=(6, 4), textcoords="offset points",
                        fontsize=8)  # fmt: skip
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean activation on positive prompts")
    ax.set_ylabel("mean activation on negative prompts")
    share = n_neg / active.size if active.size else float("nan")
    ax.set_title(
        f"{share:.0%} of {active.size} active features lean negative\n"
        "(solid: significant lean; faint: not significant)",
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
    cosines: np.ndarray,
    threshold: float,
    flagged: Sequence[tuple[int, int, float]],
    path: str | Path,
    *,
    n_total: int | None = None,
) -> Path:
    """Histogram (log counts) of decoder cosines ``[n_pairs]``, threshold and flagged pairs marked.

    ``n_total`` is the number of flagged pairs in the whole SAE, named in the title when given.
    """
    values = np.asarray(cosines, dtype=np.float64)
    fig, ax = _figure()
    ax.hist(values, bins=list(np.linspace(-1, 1, 81)), color=_GREY, edgecolor="white",
            label=f"pairs of relevant features ({values.size})")  # fmt: skip
    ax.set_yscale("log")
    ax.axvspan(-1, threshold, color=_VECTOR, alpha=0.08)
    ax.axvline(threshold, color=_VECTOR, linestyle="--", linewidth=1,
               label=f"threshold {threshold:g}")  # fmt: skip
    if flagged:
        cos = np.array([c for _, _, c in flagged])
        ax.plot(cos, np.full(cos.size, 0.02), "^", color=_VECTOR, markersize=9,
                transform=ax.get_xaxis_transform(), label="flagged pairs", clip_on=False)  # fmt: skip
        lines = [f"{i} – {j}: {c:.3f}" for i, j, c in flagged[:8]]
        if len(flagged) > 8:
            lines.append(f"... {len(flagged) - 8} more")
        ax.text(0.02, 0.97, "flagged pairs\n" + "\n".join(lines), transform=ax.transAxes,
                va="top", fontsize=8, color=_VECTOR, family="monospace")  # fmt: skip
    ax.set_xlim(-1, 1)
    ax.set_xlabel("cosine between decoder directions")
    ax.set_ylabel("pairs (log scale)")
    title = f"{len(flagged)} pair(s) of relevant features below {threshold:g}"
    if n_total is not None:
        title += f" ({n_total} in the whole SAE)"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return _save(fig, path)


def plot_decomposition(
    curve: np.ndarray,
    null_curves: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    sae_cosine: float | None = None,
    k_default: int | None = None,
) -> Path:
    """Signed-fit cosine of v against support size k ``[k_max]`` beside each null family's curves.

    ``null_curves`` maps a family to its null vectors' curves ``[n_null, k_max]``: each is drawn as
    its mean with a band up to its q95. SAE(v)'s cosine is a horizontal line, ``k_default`` marked.
    """
    c = np.asarray(curve, dtype=np.float64).reshape(-1)
    k = np.arange(1, c.size + 1)
    fig, ax = _figure()
    palette = ("#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22")
    for (family, draws), color in zip(sorted(null_curves.items()), palette * 4, strict=False):
        d = np.asarray(draws, dtype=np.float64).reshape(-1, c.size)
        mean, q95 = d.mean(axis=0), np.quantile(d, 0.95, axis=0)
        ax.plot(k, mean, color=color, linewidth=1, label=f"{family} null: mean, band to q95 (n={len(d)})")
        ax.fill_between(k, mean, q95, color=color, alpha=0.2, linewidth=0)
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
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)


def plot_data_from_result(
    result: CheckResult,
    sample: Tensor | None = None,
    decoder: Tensor | None = None,
    *,
    max_relevant: int = 3000,
) -> PlotData:
    """Gather the figures' numbers from a :class:`~sae_steer_checks.diagnostics.run.CheckResult`.

    ``sample`` is the activation sample the norm check used ``[n, d_in]`` (default: the norms the
    result kept, ``result.sample_norms``); ``decoder`` the SAE's ``W_dec [d_sae, d_in]`` (default
    ``result.decoder``). Without either, the histogram of activation norms or of decoder cosines is
    skipped. The relevant features are those active on either prompt set, in SAE(v)
    or in SAE(0), plus the features of flagged and spurious pairs; at most ``max_relevant`` of
    them (the most active) enter the cosine histogram.
    """
    import torch

    lean, own = result.leaning, result.bias.own
    f_v, f_0 = own.acts_vector.detach().cpu(), own.acts_zero.detach().cpu()
    m_pos, m_neg = lean.mean_pos.detach().cpu(), lean.mean_neg.detach().cpu()
    weight = torch.maximum(torch.maximum(m_pos, m_neg), torch.maximum(f_v, f_0)).to(torch.float32)
    relevant = torch.nonzero(weight > 0).flatten()
    if relevant.numel() > max_relevant:
        relevant = relevant[torch.argsort(weight[relevant], descending=True)[:max_relevant]]
    pairs = result.pairs.pairs
    extra = [i for i, j, _ in pairs] + [j for _, j, _ in pairs]
    extra += [s.feature for s in result.spurious.spurious] + [
        s.explained_by for s in result.spurious.spurious
    ]
    ids = sorted(set(relevant.tolist()) | set(extra))
    decoder = result.decoder if decoder is None else decoder
    cos = None
    if decoder is not None:
        rows = torch.nn.functional.normalize(decoder.detach().to(torch.float32).cpu()[ids], dim=1)
        upper = torch.triu_indices(len(ids), len(ids), offset=1)
        cos = (rows @ rows.T)[upper[0], upper[1]].numpy()
    if sample is not None:
        norms = sample.detach().to(torch.float64).norm(dim=-1).cpu().numpy()
    else:
        norms = None if result.sample_norms is None else result.sample_norms.cpu().numpy()
    chosen = set(ids)
    flagged = {(min(i, j), max(i, j)): c for i, j, c in pairs if i in chosen and j in chosen}
    for s in result.spurious.spurious:
        pair = (min(s.explained_by, s.feature), max(s.explained_by, s.feature))
        flagged.setdefault(pair, s.cosine)
    retention, nulls = result.retention, result.nulls
    interval = lean.fraction_interval
    fnull = lean.fraction_null
    return PlotData(
        steering_norm=result.norm.steering_norm,
        activation_norms=norms,
        code_vector=f_v.numpy(),
        code_zero=f_0.numpy(),
        top_k=result.bias.top_k,
        mean_pos=m_pos.numpy(),
        mean_neg=m_neg.numpy(),
        significant=tuple(int(i) for i in torch.nonzero(lean.significant).flatten().tolist()),
        dropped=tuple(lean.dropped_by_encoder),
        cosines=cos,
        threshold=result.pairs.threshold,
        flagged=tuple(sorted(((i, j, c) for (i, j), c in flagged.items()), key=lambda t: t[2])),
        n_flagged_total=len(result.pairs),
        multipliers=() if retention is None else retention.multipliers,
        curves={} if retention is None else {k: s.scores for k, s in retention.slopes.items()},
        leaning_interval=None if interval is None else (interval.ci_low, interval.ci_high),
        leaning_null=None if fnull is None else (fnull.null_mean, fnull.null_q05, fnull.null_q95),
        decomposition_curve=None if nulls is None else nulls.curve.detach().cpu().double().numpy(),
        decomposition_null_curves={} if nulls is None else {
            f: c.detach().cpu().double().numpy() for f, c in nulls.null_curves.items()},
        sae_cosine=None if nulls is None else nulls.cosines.get("sae"),
        k_default=None if nulls is None else nulls.k,
        score_se={} if retention is None else {
            k: s.score_se for k, s in retention.slopes.items() if s.score_se is not None},
        null_slopes=() if retention is None or retention.null is None else tuple(retention.null.slopes),
    )  # fmt: skip


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
