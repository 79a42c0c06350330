"""The full report from a :class:`CheckResult`: assembled, validated, and written atomically.

``build_report`` is the one place a report is assembled: the diagnostic sections of
``CheckResult.to_report()`` (diagnostics never import ``report``), the caller's provenance merged
over the run's, the library versions, the schema version and the verdicts, checked against the
schema. ``write_report`` writes it with its Markdown and plots, so a notebook's
``write_report(run_checks(...), "out/")`` gives exactly what the command line writes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sae_steer_checks._provenance import versions
from sae_steer_checks.report.markdown import PLOTS_SKIPPED, render_markdown
from sae_steer_checks.report.schema import SCHEMA_VERSION, Report, validate_report
from sae_steer_checks.report.verdicts import collect_verdicts

if TYPE_CHECKING:
    from torch import Tensor

    from sae_steer_checks.diagnostics.run import CheckResult
    from sae_steer_checks.report.plots import PlotData

__all__ = ["REPORT_FILES", "build_report", "report_files", "write_report"]

#: The files every report folder holds; the PNGs of ``plots.PLOT_FILES`` come after them.
REPORT_FILES = ("report.json", "report.md")


def build_report(
    result: CheckResult | Mapping[str, Any], *, provenance: Mapping[str, Any] | None = None
) -> Report:
    """The full report: sections, provenance, versions, schema version and verdicts, validated.

    Args:
        result: a :class:`~sae_steer_checks.diagnostics.run.CheckResult`, or a report dict (its
            sections are kept; schema version and verdicts are recomputed).
        provenance: entries merged over the run's provenance (e.g. model, dataset, seed, command).

    Returns:
        A :class:`~sae_steer_checks.report.schema.Report`.

    Raises:
        ValueError: when the sections do not match the schema, naming the first bad key.
    """
    if isinstance(result, Mapping):
        report: dict[str, Any] = copy.deepcopy(dict(result))
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
    activations: Tensor | None = None,
    plot_data: PlotData | None = None,
) -> Report:
    """Write ``report.json`` (sorted keys), ``report.md`` and the plots into the folder ``out``, atomically.

    Everything is written into a temporary folder beside ``out`` and moved into place at the end,
    so an interrupted run leaves nothing half-written; an existing non-empty ``out`` is replaced
    only with ``force``. Without matplotlib the plots are skipped and the Markdown says so.

    Args:
        result: a ``CheckResult`` (or a report dict, see :func:`build_report`).
        out: the report folder.
        provenance: entries merged over the run's provenance.
        plots: draw the PNGs (from the result's numbers, or ``plot_data``).
        force: replace a non-empty ``out``.
        activations: activation sample ``[n, d_in]`` for the norm histogram (default: the norms of
            the sample the checks used, kept on the result).
        plot_data: the figures' numbers, for a report dict (a ``CheckResult`` supplies its own).

    Returns:
        The report written to ``report.json``.
    """
    from sae_steer_checks.report import plots as plotting
    from sae_steer_checks.report.files import atomic_output_dir, write_json

    report = build_report(result, provenance=provenance)
    if plots and plot_data is None and not isinstance(result, Mapping):
        plot_data = plotting.plot_data_from_result(result, activations)
    with atomic_output_dir(out, force=force) as tmp:
        images: dict[str, str] = {}
        note = None
        if plots and plot_data is not None:
            if plotting.matplotlib_available():
                images = plotting.render_plots(plot_data, tmp)
            else:
                note = PLOTS_SKIPPED
        write_json(tmp / "report.json", dict(report))
        (tmp / "report.md").write_text(
            render_markdown(report, plots=images, plots_note=note), encoding="utf-8"
        )
    return report


def report_files(out: str | Path) -> list[str]:
    """The report files in the folder ``out``: report.json, report.md, then the PNGs in section order."""
    from sae_steer_checks.report.plots import PLOT_FILES

    folder = Path(out)
    return [*REPORT_FILES, *(name for name in PLOT_FILES.values() if (folder / name).is_file())]
