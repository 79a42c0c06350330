"""A survey's table: one row per (model, behaviour, layer, SAE) cell, its Markdown and its heat map.

A row is read from the cell's ``report.json`` (:func:`survey_row`): the SAE's width, L0 and explained
variance, every verdict's status, figure, interval and null, the ablation's cost and the learned
vector's share of v's slope when the report has them. :func:`write_survey` writes ``survey.json``
(sorted keys), ``survey.md`` (the table and one paragraph per question, with the figures that answer
it) and ``survey.png`` (cells x verdicts, coloured by status; skipped without matplotlib).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sae_steer_checks.report.files import write_json
from sae_steer_checks.report.plots import matplotlib_available
from sae_steer_checks.stats.gate import steering_p_value

__all__ = [
    "PROBLEMS",
    "SURVEY_FILES",
    "error_row",
    "render_survey_markdown",
    "survey_row",
    "verdict_of",
    "write_survey",
]

#: What a survey folder holds besides ``cells/`` (and ``saes/`` for SAEs it trained).
SURVEY_FILES = ("survey.json", "survey.md", "survey.png")
#: The three problems of Mayne et al. and the mechanism names their verdicts carry.
PROBLEMS = {
    "out of distribution": "Out of distribution",
    "negative projections lost": "Negative projections lost",
    "negatively aligned pairs": "Negatively aligned pairs",
}
_ABLATION = "Lost projections carry the behaviour"
_STATUS_COLOURS = {"problem": "#d62728", "fine": "#2ca02c", "inconclusive": "#bbbbbb", "not run": "#ffffff"}


def _verdict_entry(verdict: Mapping[str, Any]) -> dict[str, Any]:
    figure = verdict.get("figure") or {}
    interval = verdict.get("interval") or {}
    null = verdict.get("null") or {}
    return {
        "mechanism": verdict.get("mechanism"),
        "status": verdict.get("status"),
        "figure": figure.get("name"),
        "value": figure.get("value"),
        "interval": [interval.get("low"), interval.get("high")] if interval else None,
        "interval_level": interval.get("level"),
        "null": {k: null.get(k) for k in ("name", "n", "q95", "percentile")} if null else None,
    }


def survey_row(cell: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """The row of one cell: ``cell`` (its id, index, model, behaviour, layer, SAE, quality) and its report.

    ``cell`` keys are copied; ``verdicts`` lists, in the report's order, each mechanism's status, figure,
    value, interval ``[low, high]`` and null; ``ablation`` and ``learned`` hold those sections' figures
    (or None).
    """
    row = dict(cell)
    row["status"] = "ok"
    row["error"] = None
    row["verdicts"] = [_verdict_entry(v) for v in report.get("verdicts", [])]
    ablation = report.get("ablation")
    row["ablation"] = None
    if isinstance(ablation, Mapping) and "cost" in ablation:
        row["ablation"] = {
            "cost": ablation.get("cost"),
            "interval": ablation.get("cost_interval"),
            "p_value": ablation.get("p_value"),
            "null_q95": (ablation.get("null") or {}).get("q95"),
            "n_features": ablation.get("n_features"),
        }
    retention = report.get("retention") or {}
    intervals = retention.get("ratio_intervals") or {}
    row["learned"] = None
    if isinstance(report.get("learned"), Mapping) and "learned" in intervals:
        learned, sae = intervals["learned"], intervals.get("sae") or {}
        row["learned"] = {
            "ratio": learned.get("ratio"),
            "interval": [learned.get("ci_low"), learned.get("ci_high")],
            "ratio_sae": sae.get("ratio"),
            "interval_sae": [sae.get("ci_low"), sae.get("ci_high")] if sae else None,
            "status": (retention.get("statuses") or {}).get("learned", {}).get("status"),
            "n_support": report["learned"].get("n_support"),
            "n_negative": report["learned"].get("n_negative"),
            **_learned_slope(retention),
        }
    return row


#: The keys of a row that come from the cell, not its report (kept when a row is rebuilt).
CELL_KEYS = ("cell", "index", "model", "behaviour", "layer", "sae", "architecture", "width",
             "explained_variance", "l0", "quality_source")  # fmt: skip


def _learned_slope(retention: Mapping[str, Any]) -> dict[str, Any]:
    """The learned vector's own held-out slope, its interval, and its Monte Carlo p-value against v's null.

    The null's random directions have v's norm, as the learned vector has: ``stats.gate.steering_p_value``,
    the test ``retention``'s gate applies to v. The vector was fitted on the
    training items only, so its held-out slope is an honest draw; ``v_steers`` is that gate's verdict on v
    (a ratio to a slope that does not beat random directions says little).
    """
    slopes = retention.get("slopes") or {}
    estimate = (retention.get("slope_estimates") or {}).get("learned") or {}
    null = retention.get("null") or {}
    slope, draws = slopes.get("learned"), null.get("slopes") or []
    p = steering_p_value(float(slope), draws) if slope is not None and draws else None
    return {
        "slope": slope,
        "slope_interval": [estimate.get("ci_low"), estimate.get("ci_high")] if estimate else None,
        "null_p": p,
        "null_n": len(draws),
        "v_steers": retention.get("steers"),
    }


def error_row(cell: Mapping[str, Any], message: str) -> dict[str, Any]:
    """The row of a cell that failed: status ``error`` and the one-line ``message``."""
    return {**cell, "status": "error", "error": message, "verdicts": [], "ablation": None, "learned": None}


def verdict_of(row: Mapping[str, Any], mechanism: str) -> dict[str, Any]:
    """The row's entry for ``mechanism`` (empty when the cell has no such verdict)."""
    return next((dict(v) for v in row.get("verdicts", []) if v.get("mechanism") == mechanism), {})


def _above(interval: Sequence[Any] | None, other: Sequence[Any] | None) -> bool:
    """Whether ``interval``'s lower end lies above ``other``'s upper end (both known)."""
    if not interval or not other or interval[0] is None or other[1] is None:
        return False
    return float(interval[0]) > float(other[1])


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _mechanisms(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for row in rows:
        for name in (v["mechanism"] for v in row.get("verdicts", [])):
            if name not in names:
                names.append(name)
    return names


def _count(rows: Sequence[Mapping[str, Any]], mechanism: str, by: str) -> list[str]:
    """Per value of ``by``: how many ok cells say problem / fine / inconclusive for ``mechanism``."""
    out = []
    for key in dict.fromkeys(str(r[by]) for r in rows):
        group = [r for r in rows if str(r[by]) == key]
        statuses = [verdict_of(r, mechanism).get("status") for r in group]
        counts = {s: statuses.count(s) for s in ("problem", "fine", "inconclusive")}
        out.append(f"{key}: {counts['problem']}/{len(group)} problem, {counts['fine']} fine")
    return out


def render_survey_markdown(survey: Mapping[str, Any]) -> str:
    """``survey.md`` from the ``survey.json`` dict: the table, then one paragraph per question."""
    rows = list(survey["rows"])
    ok = [r for r in rows if r["status"] == "ok"]
    mechanisms = _mechanisms(ok)
    lines = [f"# Survey of {survey['model']}", ""]
    lines.append(
        f"{len(rows)} cells ({len(ok)} ran, {len(rows) - len(ok)} failed): behaviours "
        f"{', '.join(survey['behaviours'])}; layers {', '.join(map(str, survey['layers']))}; "
        f"SAEs {', '.join(survey['saes'])}. Each cell's full report is in `cells/<cell>/`."
    )
    lines += ["", "## Table", ""]
    head = ["cell", "behaviour", "layer", "SAE", "arch", "width", "L0", "EV", *mechanisms]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + " --- |" * len(head))
    for r in rows:
        cells = [r["cell"], r["behaviour"], str(r["layer"]), r["sae"], _fmt(r.get("architecture")),
                 _fmt(r.get("width")), _fmt(r.get("l0")), _fmt(r.get("explained_variance"))]  # fmt: skip
        if r["status"] == "error":
            cells += [f"error: {r['error']}"] + [""] * (len(mechanisms) - 1 if mechanisms else 0)
        else:
            for m in mechanisms:
                v = verdict_of(r, m)
                cells.append(f"{v['status']} ({_fmt(v['value'])})" if v else "–")
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines += ["", "## Do the three problems hold across behaviours, layers and SAE architectures?", ""]
    if not ok:
        lines.append("No cell ran.")
    for problem, mechanism in PROBLEMS.items():
        if not any(verdict_of(r, mechanism) for r in ok):
            continue
        by = "; ".join(
            f"by {label} — " + ", ".join(_count(ok, mechanism, key))
            for key, label in (
                ("behaviour", "behaviour"),
                ("layer", "layer"),
                ("architecture", "architecture"),
            )
        )
        n = sum(verdict_of(r, mechanism).get("status") == "problem" for r in ok)
        lines.append(f"- **{problem.capitalize()}**: a problem in {n} of {len(ok)} cells; {by}.")
    lines += ["", "## Do the dropped projections carry the behaviour?", ""]
    ablated = [r for r in ok if r.get("ablation")]
    if not ablated:
        lines.append(
            "No cell's report has the ablation section (it needs a behaviour score and lost features)."
        )
    else:
        for r in ablated:
            a, v = r["ablation"], verdict_of(r, _ABLATION)
            interval = a.get("interval") or [None, None]
            lines.append(
                f"- {r['cell']}: removing the span of {a['n_features']} lost features costs "
                f"{_fmt(a['cost'])} of v's slope (90% interval [{_fmt(interval[0])}, {_fmt(interval[1])}], "
                f"p = {_fmt(a['p_value'])} against random rows): {v.get('status', 'not run')}."
            )
    lines += ["", "## Does a vector learned in the SAE basis do better?", ""]
    learned = [r for r in ok if r.get("learned")]
    if not learned:
        lines.append("No cell's report has the learned section (`--learn-steps 0`, or no behaviour score).")
    else:
        steering = [r for r in learned if r["learned"].get("v_steers")]
        better = sum((r["learned"]["ratio"] or 0.0) > (r["learned"]["ratio_sae"] or 0.0) for r in steering)
        clear = sum(_above(r["learned"]["interval"], r["learned"].get("interval_sae")) for r in steering)
        beyond = sum(_above(r["learned"]["interval"], [1.0, 1.0]) for r in steering)
        own = [r for r in learned if (r["learned"].get("null_p") or 1.0) <= 0.05]
        own_where_v_fails = sum(not r["learned"].get("v_steers") for r in own)
        lines.append(
            f"In {len(steering)} of {len(learned)} cells v itself steers (it beats its random directions); "
            f"there the learned vector keeps more of v's slope than SAE(v) in {better} (point estimates), "
            f"its 90% ratio interval lies wholly above SAE(v)'s in {clear} (a conservative comparison) and "
            f"above 1 in {beyond}: it steers more than the CAA vector itself. On its own, the learned "
            f"vector's held-out slope beats the random directions of v's norm at p <= 0.05 in {len(own)} of "
            f"{len(learned)} cells, {own_where_v_fails} of them cells where v does not steer (there a ratio "
            f"to v's slope says little)."
        )
        for r in learned:
            x = r["learned"]
            lo, hi = x["interval"]
            slo, shi = x.get("slope_interval") or [None, None]
            lines.append(
                f"- {r['cell']}: held-out slope {_fmt(x.get('slope'))} (95% interval [{_fmt(slo)}, "
                f"{_fmt(shi)}]; Monte Carlo p = {_fmt(x.get('null_p'))} against {x.get('null_n')} random "
                f"directions of v's norm); {_fmt(x['ratio'])} of v's slope (90% interval [{_fmt(lo)}, "
                f"{_fmt(hi)}], {x['status']}"
                + ("" if x.get("v_steers") else "; v does not steer here")
                + f") against SAE(v)'s {_fmt(x['ratio_sae'])}; {x['n_support']} features, "
                f"{x['n_negative']} negative."
            )
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "## Failed cells", ""]
        lines += [f"- {r['cell']}: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def _heat_map(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    mechanisms = _mechanisms(rows) or ["(no verdict)"]
    grid = []
    for r in rows:
        if r["status"] != "ok":
            grid.append([to_rgb("#000000")] * len(mechanisms))
            continue
        statuses = [verdict_of(r, m).get("status", "not run") for m in mechanisms]
        grid.append([to_rgb(_STATUS_COLOURS.get(s, "#ffffff")) for s in statuses])
    height = 1.5 + 0.3 * len(rows)
    fig = Figure(figsize=(3.0 + 0.9 * len(mechanisms), height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(grid, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(mechanisms)), mechanisms, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [r["cell"] for r in rows], fontsize=7)
    ax.set_xticks([x - 0.5 for x in range(len(mechanisms) + 1)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(len(rows) + 1)], minor=True)
    ax.grid(which="minor", color="#444444", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    legend = [Patch(facecolor=c, edgecolor="#444444", label=s) for s, c in _STATUS_COLOURS.items()]
    legend.append(Patch(facecolor="#000000", label="error"))
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.set_title("Verdicts by cell", fontsize=10)
    fig.savefig(path, format="png")


def _replace(path: Path, write: Any) -> None:
    # written beside the target and moved into place, so a reader never sees half a file
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_survey(survey: Mapping[str, Any], out_dir: str | Path) -> list[str]:
    """Write ``survey.json``, ``survey.md`` and (with matplotlib) ``survey.png`` into ``out_dir``.

    Each file is written to a temporary name and moved into place. Returns the names written.
    """
    out = Path(out_dir)
    data = dict(survey)
    _replace(out / "survey.json", lambda p: write_json(p, data))
    _replace(out / "survey.md", lambda p: p.write_text(render_survey_markdown(data), encoding="utf-8"))
    names = ["survey.json", "survey.md"]
    if matplotlib_available() and data["rows"]:
        _replace(out / "survey.png", lambda p: _heat_map(data["rows"], p))
        names.append("survey.png")
    return names
