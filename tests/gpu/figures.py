"""The study's figures from a run of the tier, and the replication table (study / ours / tolerance / holds?).

Figures come in two kinds. Weight-only figures (:func:`weight_figures`) read the SAE's weights and encode
the zero vector: no model forward, so they run on any machine holding the ``params.npz``. The others
(:func:`forward_figures`) read the run's report and SAE(v). SAE(0) and SAE(v) figures are taken under the
decoder-bias convention that reproduces the study's SAE(0)[4888] = 89.06 best (``study_convention``);
the other convention's values stand beside them in the notes and in ``replication.json``.

Expectations (``tests/gpu/study.json``, ``tests/gpu/standin_expectations.json``) map a figure name to
``{"study": value, "kind": ..., "tolerance": ..., "reason": ...}``; kinds:

- ``abs``: ``|ours - study| <= tolerance``; ``rel``: ``|ours - study| <= tolerance * |study|``;
- ``equal``: ``ours == study`` (ids, booleans, statuses); ``set``: the same set of ids;
- ``min`` / ``max``: ``ours >= study`` / ``ours <= study`` (a bound the study's claim implies);
- ``report``: no study number; the row is reported with ``holds? = n/a``.

An entry with ``"source": "project"`` is this project's own figure or assertion, not the study's (the
study has no ablation of the lost projections and no learned vector): its ``study`` value, if any, is a
bound this project sets, and the table marks the row "(project)".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from tests.gpu.replication import TierRun

__all__ = [
    "KINDS",
    "Figure",
    "Row",
    "forward_figures",
    "load_expectations",
    "replication_table",
    "study_convention",
    "tier_figures",
    "weight_figures",
    "write_replication_table",
]

KINDS = ("abs", "rel", "equal", "set", "min", "max", "report")
BIAS, NEGATIVE, SPURIOUS = 4888, 14004, 3517
SAEV_TOP5 = (4888, 15603, 12695, 7589, 2350)
SAE0_LISTED = (4888, 15603, 7589, 2350)
#: The study's SAE(0)[4888], used to tell which decoder-bias convention it computed with.
STUDY_SAE0_4888 = 89.06
_CONVENTION = {True: "b_dec subtracted", False: "b_dec not subtracted"}


@dataclass(frozen=True)
class Figure:
    """One figure of the run."""

    value: Any
    """JSON-ready value (number, bool, string or list of ids)."""
    note: str = ""
    """What stands beside it (interval, null, the other convention's value)."""


@dataclass(frozen=True)
class Row:
    """One row of the replication table."""

    figure: str
    """Figure name (a key of the expectation file)."""
    study: Any
    """The study's value (None for ``report`` rows)."""
    ours: Any
    """Our value (None when the run did not produce it)."""
    kind: str
    """How the two are compared (see the module notes)."""
    tolerance: Any
    """Tolerance of ``abs``/``rel`` rows, else None."""
    holds: bool | None
    """Whether ours matches the study within tolerance; None for ``report`` rows."""
    note: str
    """Interval, null or other convention beside our value."""
    reason: str
    """Why the tolerance is what it is."""
    source: str = "study"
    """``study`` (the study's figure) or ``project`` (this project's own figure or assertion)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def load_expectations(path: str | Path) -> dict[str, dict[str, Any]]:
    """The ``figures`` mapping of an expectation file, each entry checked for a known ``kind``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    figures = data["figures"]
    for name, entry in figures.items():
        if entry.get("kind") not in KINDS:
            raise ValueError(
                f"{path}: figure {name!r} has kind {entry.get('kind')!r}, expected one of {KINDS}"
            )
        if entry.get("source", "study") not in ("study", "project"):
            raise ValueError(
                f"{path}: figure {name!r} has source {entry.get('source')!r}, expected 'study' or 'project'"
            )
    return dict(figures)


def study_convention(zero: Mapping[bool, Tensor]) -> bool:
    """The convention (True: ``b_dec`` subtracted) whose SAE(0)[4888] is nearest the study's 89.06."""
    return min((True, False), key=lambda s: abs(float(zero[s][BIAS]) - STUDY_SAE0_4888))


def _top(values: Tensor, k: int) -> list[int]:
    order = torch.sort(values, descending=True, stable=True).indices[:k]
    return [int(i) for i in order if float(values[i]) > 0]


def weight_figures(weights: Mapping[str, Any]) -> dict[str, Figure]:
    """Figures read from the SAE's weights alone (``replication.weight_codes``)."""
    w, b_enc, zero = weights["W_dec"], weights["b_enc"], weights["zero"]
    conv = study_convention(zero)
    f0, other = zero[conv], zero[not conv]
    cos = float(torch.cosine_similarity(w[NEGATIVE], w[SPURIOUS], dim=0))
    out = {
        "decoder_cosine_14004_3517": Figure(round(cos, 6)),
        "b_enc_4888": Figure(round(float(b_enc[BIAS]), 6)),
        "sae0_top_feature": Figure(
            _top(f0, 1)[0] if _top(f0, 1) else None, f"other convention: {_top(other, 1)}"
        ),
        "sae0_n_active": Figure(int((f0 > 0).sum()), f"other convention: {int((other > 0).sum())}"),
        "bias_convention": Figure(
            _CONVENTION[conv],
            "SAE(0)[4888] = "
            + ", ".join(f"{float(zero[s][BIAS]):.4f} ({_CONVENTION[s]})" for s in (True, False)),
        ),
    }
    for s in (True, False):
        key = "sae0_4888_" + _CONVENTION[s].replace(" ", "_")
        out[key] = Figure(round(float(zero[s][BIAS]), 6))
    for f in SAE0_LISTED:
        out[f"sae0_{f}"] = Figure(round(float(f0[f]), 6), f"other convention: {float(other[f]):.4f}")
    return out


def forward_figures(run: TierRun) -> dict[str, Figure]:
    """Figures that need the model: SAE(v), leaning, pairs, norms and steering, from the run's report."""
    report = run.report
    conv = study_convention(run.weights["zero"])
    fv, other = run.saev[conv], run.saev[not conv]
    lean = report["negative_leaning"]
    interval, null = lean["fraction_interval"], lean["fraction_null"]
    spurious = {(s["feature"], s["explained_by"]) for s in report["aligned_pairs"]["spurious"]}
    norm = report["norm"]
    ret = report["retention"]
    est = ret["slope_estimates"]["original"]
    null_s = ret["null"] or {}
    ratios = ret["ratio_intervals"]
    out = {
        "saev_top5": Figure(sorted(_top(fv, 5)), f"order {_top(fv, 5)}; other convention: {_top(other, 5)}"),
        "leaning_fraction": Figure(
            round(lean["fraction"], 6),
            f"{lean['n_negative']} of {lean['n_active']} active; 95% CI "
            + (f"[{interval['low']:.3f}, {interval['high']:.3f}]" if interval else "n/a")
            + "; percentile in the label-shuffled null "
            + (f"{null['percentile']:.1f}" if null else "n/a"),
        ),
        "leaning_14004_negative": Figure(bool(run.result.leaning.negative[NEGATIVE])),
        "saev_14004": Figure(round(float(fv[NEGATIVE]), 6),
                             f"other convention: {float(other[NEGATIVE]):.4f}"),
        "saev_3517_positive": Figure(bool(fv[SPURIOUS] > 0), f"SAE(v)[3517] = {float(fv[SPURIOUS]):.4f}; "
                                     f"other convention: {float(other[SPURIOUS]):.4f}"),
        "spurious_3517_by_14004": Figure((SPURIOUS, NEGATIVE) in spurious,
                                         f"{len(spurious)} spurious listed"),
        "norm_ratio": Figure(round(norm["ratio"], 6), f"||v|| = {norm['steering_norm']:.3f}, median "
                             f"{norm['activation_norm_median']:.1f}, 95% CI of ||v|| {norm['interval']}"),
        "norm_percentile": Figure(round(norm["percentile"], 6), f"interval {norm['percentile_interval']}"),
        "steers": Figure(
            bool(ret["steers"]),
            f"slope {ret['slopes']['original']:.4f} (95% CI {_span(est)}); random null "
            f"|slope| q95 {null_s.get('abs_q95', float('nan')):.4f} over {null_s.get('n', 0)} directions",
        ),
        "steerability_slope": Figure(round(ret["slopes"]["original"], 6), f"95% CI {_span(est)}"),
        "retention_sae_status": Figure(ret["statuses"]["sae"]["status"], _ratio(ratios["sae"])),
        "retention_sae": Figure(_round(ratios["sae"]["ratio"]), _ratio(ratios["sae"])),
        "retention_signed": Figure(_round(ratios["signed"]["ratio"]),
                                   f"{_ratio(ratios['signed'])}; {ret['statuses']['signed']['status']}"),
    }  # fmt: skip
    for f in SAEV_TOP5:
        out[f"saev_{f}"] = Figure(round(float(fv[f]), 6), f"other convention: {float(other[f]):.4f}")
    return out | _ablation_figures(report) | _learned_figures(report, run)


def _ablation_figures(report: Mapping[str, Any]) -> dict[str, Figure]:
    """This project's ablation of the lost projections (absent when the run had no behaviour score)."""
    ab = report.get("ablation")
    if ab is None:
        return {}
    null = ab.get("null") or {}
    span = ", ".join(_num(x) for x in (ab.get("cost_interval") or [None, None]))
    share = ab.get("removed_norm_share")
    return {
        "ablation_status": Figure(ab["status"], ab.get("reason") or ""),
        "ablation_cost": Figure(
            "not run" if ab.get("cost") is None else _round(ab["cost"]),
            f"90% interval [{span}]; {ab.get('n_features')} lost features, "
            + ("-" if share is None else f"{share:.1%}")
            + f" of ||v|| removed; random live rows: mean {_num(null.get('mean'))} over {null.get('n', 0)}",
        ),
        "ablation_random_draws": Figure(
            int(null.get("n", 0)), "random live-row removals (a reported baseline)"
        ),
    }


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _learned_figures(report: Mapping[str, Any], run: TierRun) -> dict[str, Figure]:
    """This project's vector learned in the SAE basis (absent when none was learned)."""
    learned = report.get("learned")
    if learned is None:
        return {}
    ret = report.get("retention") or {}
    ratio = (ret.get("ratio_intervals") or {}).get("learned")
    training = learned.get("training") or {}
    return {
        "learned_ratio": Figure(
            "not run" if ratio is None or ratio.get("ratio") is None else _round(ratio["ratio"]),
            "n/a" if ratio is None else _ratio(ratio) + f"; {training.get('steps', '?')} steps",
        ),
        "learned_n_support": Figure(int(learned["n_support"]), f"{learned['n_negative']} negative"),
        "learned_n_negative": Figure(int(learned["n_negative"])),
        "learned_cosine": Figure(_round(learned["cosine"]), f"norm {learned['norm']:.3f} (v's)"),
        "learned_train_items": Figure(
            int(training.get("n_train_items", -1)),
            f"generate items read: {training.get('n_train_items')}; test items scored: "
            f"{report['provenance']['behaviour']['n_items']}",
        ),
    }


def tier_figures(run: TierRun) -> dict[str, Figure]:
    """Every figure of the run: weight-only and forward ones."""
    return {**weight_figures(run.weights), **forward_figures(run)}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _span(est: Mapping[str, Any] | None) -> str:
    return "n/a" if not est else f"[{est['ci_low']:.4f}, {est['ci_high']:.4f}]"


def _ratio(r: Mapping[str, Any]) -> str:
    ends = ", ".join("unbounded" if x is None else f"{x:.3f}" for x in (r["ci_low"], r["ci_high"]))
    return f"ratio {r['ratio']} ({r['method']} {r['level']:.0%} interval [{ends}])"


def _holds(kind: str, ours: Any, study: Any, tol: Any) -> bool | None:
    if kind == "report":
        return None
    if ours is None:
        return False
    if kind == "equal":
        return bool(ours == study)
    if kind == "set":
        return set(ours) == set(study)
    if kind == "min":
        return bool(ours >= study)
    if kind == "max":
        return bool(ours <= study)
    bound = tol if kind == "abs" else tol * abs(study)
    return math.isfinite(ours) and abs(ours - study) <= bound + 1e-12


def replication_table(figures: Mapping[str, Figure], study: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """One row per expected figure, in the expectation file's order.

    A figure the run did not produce gets ``ours = None`` and fails (``holds = False``), except in
    ``report`` rows; figures without an expectation are not listed.
    """
    rows = []
    for name, entry in study.items():
        fig = figures.get(name)
        ours = None if fig is None else fig.value
        kind, tol = entry["kind"], entry.get("tolerance")
        rows.append(
            Row(
                figure=name,
                study=entry.get("study"),
                ours=ours,
                kind=kind,
                tolerance=tol,
                holds=_holds(kind, ours, entry.get("study"), tol),
                note="" if fig is None else fig.note,
                reason=entry.get("reason", ""),
                source=entry.get("source", "study"),
            )
        )
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "/")


def _tolerance(row: Row) -> str:
    if row.kind == "abs":
        return f"+-{row.tolerance:g}"
    if row.kind == "rel":
        return f"+-{row.tolerance:.0%}"
    return {"equal": "exact", "set": "same set", "min": ">= study", "max": "<= study", "report": "-"}[
        row.kind
    ]


def write_replication_table(rows: list[Row], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``replication.md`` (figure | study | ours | tolerance | holds?) and ``replication.json``.

    Returns:
        The paths of the two files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| figure | study | ours | tolerance | holds? |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        ours = _cell(r.ours) + (f" ({r.note})" if r.note else "")
        holds = {True: "yes", False: "**no**", None: "n/a"}[r.holds]
        figure = r.figure + (" (project)" if r.source == "project" else "")
        ours = ours.replace("|", "/")
        lines.append(f"| {figure} | {_cell(r.study)} | {ours} | {_tolerance(r)} | {holds} |")
    n_pinned = sum(r.holds is not None for r in rows)
    n_hold = sum(r.holds is True for r in rows)
    lines += [
        "",
        f"{n_hold} of {n_pinned} pinned figures hold. Tolerances and their reasons: replication.json.",
        "Rows marked (project) are this project's own figures and bounds, not the study's.",
    ]
    md, js = out / "replication.md", out / "replication.json"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    js.write_text(
        json.dumps({"rows": [r.to_dict() for r in rows]}, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return md, js
