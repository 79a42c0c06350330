"""The report: verdicts, Markdown, plots and atomic writing of report.json, report.md and the PNGs."""

from sae_steer_checks.report.markdown import render_markdown, write_report
from sae_steer_checks.report.verdicts import Verdict, verdicts

__all__ = ["Verdict", "render_markdown", "verdicts", "write_report"]
