"""A report redrawn from its ``report.json`` alone: ``sae-steer-checks render DIR``.

``report.json`` holds every number the Markdown and the plots show (the plots' in its ``figures``
section), so ``report.md`` and the PNGs can be drawn again (after a library update, or on a
machine with matplotlib) without the model, the SAE or the activations. :func:`render_report`
draws through the same :func:`~sae_steer_checks.report.write.draw_report` as ``write_report``,
so a fresh report and one redrawn from its file are the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import cast

from sae_steer_checks._validate import InputError, one_line
from sae_steer_checks.report.files import atomic_output_dir
from sae_steer_checks.report.plots import PLOT_FILES
from sae_steer_checks.report.schema import Report, validate_report
from sae_steer_checks.report.write import draw_report

__all__ = ["load_report", "render_report"]


def load_report(folder: str | Path) -> Report:
    """The report in ``folder/report.json``, checked against the schema.

    Raises:
        InputError: one line naming the file, when it is missing, not JSON or not a valid report.
    """
    return _read(folder)[0]


def render_report(
    folder: str | Path, out: str | Path | None = None, *, force: bool = False, plots: bool = True
) -> list[str]:
    """Redraw ``report.md`` and the PNGs of ``folder/report.json``, in ``folder`` or into ``out``.

    In place (``out`` None or ``folder`` itself) only ``report.md`` and the PNGs are replaced, each
    moved into place once drawn; ``report.json`` and any other file stay as they are, and a PNG the
    report no longer draws is removed (unless no plot could be drawn at all). Into another folder,
    ``report.json`` is copied byte for byte beside the new files and the folder is written
    atomically (a non-empty ``out`` is replaced only with ``force``; a folder holding ``folder``
    never is).

    Returns:
        The names of the files written (``report.md`` and the PNGs; ``report.json`` first when copied).

    Raises:
        InputError: for a missing or invalid ``report.json`` or an ``out`` that may not be written.
    """
    src = Path(folder).expanduser()
    report, raw = _read(src)
    if out is None or Path(out).expanduser().resolve() == src.resolve():
        return _render_in_place(report, src, plots=plots)
    dest = Path(out).expanduser()
    if src.resolve().is_relative_to(dest.resolve()):
        raise InputError(f"--out {out}: holds {folder}; replacing it would delete the report read from it")
    with atomic_output_dir(dest, force=force) as tmp:
        (tmp / "report.json").write_bytes(raw)
        images = draw_report(report, tmp, plots=plots)
    return ["report.json", "report.md", *images.values()]


def _render_in_place(report: Report, folder: Path, *, plots: bool) -> list[str]:
    # drawn into a hidden folder inside ``folder`` (same file system), then moved file by file
    tmp = Path(tempfile.mkdtemp(prefix=".render.tmp-", dir=folder))
    try:
        images = draw_report(report, tmp, plots=plots)
        names = ["report.md", *images.values()]
        for name in names:
            os.replace(tmp / name, folder / name)
        if images:  # PNGs drawn before stay when none could be drawn now (no figures, no matplotlib)
            for name in sorted(set(PLOT_FILES.values()) - set(images.values())):
                (folder / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return names


def _read(folder: Path | str) -> tuple[Report, bytes]:
    src = Path(folder).expanduser()
    path = src / "report.json"
    if not src.is_dir():
        raise InputError(f"{folder}: not a folder (expected a report folder holding report.json)")
    if not path.is_file():
        inside = sorted(p.parent.name for p in src.glob("*/report.json"))
        hint = f"; its subfolders {', '.join(inside)} hold one each" if inside else ""
        raise InputError(f"{path}: not found{hint}")
    raw = path.read_bytes()
    try:
        report = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({one_line(error)})") from None
    if not isinstance(report, dict):
        raise InputError(f"{path}: not a report (expected a JSON object, got {type(report).__name__})")
    try:
        validate_report(report)
    except ValueError as error:
        hint = ""
        if isinstance(report.get("provenance"), dict) and ": missing" in str(error):
            hint = (
                f" (a report written by another version of sae_steer_checks, schema_version "
                f"{report.get('schema_version')!r}, may lack keys this one reads: rerun the command that "
                "wrote it)"
            )
        raise InputError(f"{path}: not a valid report: {one_line(error)}{hint}") from None
    return cast(Report, report), raw
