"""The report: schema, verdicts, Markdown, plots and atomic writing of report.json, report.md and the PNGs."""

from sae_steer_checks.report.markdown import render_markdown
from sae_steer_checks.report.schema import SCHEMA_VERSION, Report, validate_report
from sae_steer_checks.report.verdicts import Verdict, collect_verdicts
from sae_steer_checks.report.write import build_report, write_report

__all__ = [
    "SCHEMA_VERSION",
    "Report",
    "Verdict",
    "build_report",
    "collect_verdicts",
    "render_markdown",
    "validate_report",
    "write_report",
]
