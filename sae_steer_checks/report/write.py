"""The full report from a :class:`CheckResult`: assembled, validated, and written atomically.

``build_report`` is the one place a report is assembled: the diagnostic sections of
``CheckResult.to_report()`` (diagnostics never import ``report``), the caller's provenance merged
over the run's, the library versions, the schema version and the verdicts, checked against the
schema. ``write_report`` writes it with its Markdown and plots, so a notebook's
``write_report(run_checks(...), "out/")`` gives exactly what the command line writes. The Markdown
and the plots are drawn by ``draw_report`` from ``report.json`` as written (its ``figures`` section
holds every plotted number), so a report redrawn later from that file alone comes out the same.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sae_steer_checks._provenance import versions
from sae_steer_checks.report.markdown import PLOTS_SKIPPED, render_markdown
from sae_steer_checks.report.schema import SCHEMA_VERSION, Report, validate_report
from sae_steer_checks.report.verdicts import collect_verdicts

if TYPE_CHECKING:
    from sae_steer_checks.diagnostics.run import CheckResult

__all__ = ["NO_FIGURES", "REPORT_FILES", "build_report", "draw_report", "report_files", "write_report"]

#: The files every report folder holds; the PNGs of ``plots.PLOT_FILES`` come after them.
REPORT_FILES = ("report.json", "report.md")

NO_FIGURES = "Plots were not drawn: this report.json has no `figures` section (it predates the section)."


def build_report(
    result: CheckResult | Mapping[str, Any],
    *,
    provenance: Mapping[str, Any] | None = None,
    max_listed_pairs: int | None = None,
) -> Report:
    """The full report: sections, provenance, versions, schema version and verdicts, validated.

    Args:
        result: a :class:`~sae_steer_checks.diagnostics.run.CheckResult`, or a report dict (its
            sections are kept; schema version and verdicts are recomputed).
        provenance: entries merged over the run's provenance (e.g. model, dataset, seed, command).
        max_listed_pairs: list at most this many aligned pairs (all are counted; default: as given).

    Returns:
        A :class:`~sae_steer_checks.report.schema.Report`.

    Raises:
        ValueError: when the sections do not match the schema, naming the first bad key.
    """
    if isinstance(result, Mapping):
        report: dict[str, Any] = copy.deepcopy(dict(result))
        if max_listed_pairs is not None:
            _list_pairs(report, max_listed_pairs)
    elif max_listed_pairs is not None:
        report = result.to_report(max_listed_pairs=max_listed_pairs)
    else:
        report = result.to_report()
    report["provenance"] = {**report.get("provenance", {}), **dict(provenance or {})}
    report["provenance"].setdefault("versions", versions())
    report["schema_version"] = SCHEMA_VERSION
    report["verdicts"] = []  # verdicts read the sections only; validate those first
    validate_report(report)
    report["verdicts"] = [v.to_dict() for v in collect_verdicts(report)]
    validate_report(report)
    return cast(Report, report)


def write_report(
    result: CheckResult | Mapping[str, Any],
    out: str | Path,
    *,
    provenance: Mapping[str, Any] | None = None,
    plots: bool = True,
    force: bool = False,
    max_listed_pairs: int = 1000,
) -> Report:
    """Write ``report.json`` (sorted keys), ``report.md`` and the plots into the folder ``out``, atomically.

    Everything is written into a temporary folder beside ``out`` and moved into place at the end,
    so an interrupted run leaves nothing half-written; an existing non-empty ``out`` is replaced
    only with ``force``. The Markdown and the plots are drawn from ``report.json`` as written
    (:func:`draw_report`). Without matplotlib the plots are skipped and the Markdown says so.

    Args:
        result: a ``CheckResult`` (or a report dict, see :func:`build_report`).
        out: the report folder.
        provenance: entries merged over the run's provenance.
        plots: draw the PNGs (from the report's ``figures`` section).
        force: replace a non-empty ``out``.
        max_listed_pairs: list at most this many aligned pairs in the report (all are counted).

    Returns:
        The report written to ``report.json``.
    """
    from sae_steer_checks.report.files import atomic_output_dir, write_json

    report = build_report(result, provenance=provenance, max_listed_pairs=max_listed_pairs)
    with atomic_output_dir(out, force=force) as tmp:
        path = write_json(tmp / "report.json", dict(report))
        # drawn from the file, not the dict: NaN reads back as null, and `render` reads the file
        draw_report(json.loads(path.read_text(encoding="utf-8")), tmp, plots=plots)
    return report


def draw_report(report: Mapping[str, Any], folder: str | Path, *, plots: bool = True) -> dict[str, str]:
    """Write ``report.md`` and the PNGs of the report dict ``report`` into ``folder``.

    The plots come from the report's ``figures`` section alone; without it, or without matplotlib,
    none are drawn and the Markdown says why. Returns plot key -> file name of each PNG written.
    """
    from sae_steer_checks.report import plots as plotting

    out = Path(folder)
    images: dict[str, str] = {}
    note = None
    if plots and not report.get("figures"):
        note = NO_FIGURES
    elif plots and plotting.matplotlib_available():
        images = plotting.render_plots(plotting.plot_data_from_report(report), out)
    elif plots:
        note = PLOTS_SKIPPED
    (out / "report.md").write_text(render_markdown(report, plots=images, plots_note=note), encoding="utf-8")
    return images


def report_files(out: str | Path) -> list[str]:
    """The report files in the folder ``out``: report.json, report.md, then the PNGs in section order."""
    from sae_steer_checks.report.plots import PLOT_FILES

    folder = Path(out)
    return [*REPORT_FILES, *(name for name in PLOT_FILES.values() if (folder / name).is_file())]


def _list_pairs(report: dict[str, Any], limit: int) -> None:
    # a report dict's pairs, as ``CheckResult.to_report`` lists them: the most negative ``limit``
    # stay listed, ``n_pairs`` still counts them all
    if limit < 1:
        raise ValueError(f"max_listed_pairs must be >= 1, got {limit}")
    section = report.get("aligned_pairs")
    if isinstance(section, dict) and len(section.get("pairs", ())) > limit:
        section["pairs"] = section["pairs"][:limit]
        section["truncated"] = True
