"""Writing reports without leaving anything half-written: atomic folders and stable JSON."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sae_steer_checks._validate import InputError

__all__ = ["atomic_output_dir", "validate_out_dir", "write_json"]


def validate_out_dir(out: str | Path, *, force: bool, name: str = "--out") -> Path:
    """Check before any work that ``out`` may receive a report; returns it as a ``Path``.

    ``out`` may be missing or an empty folder; a non-empty folder needs ``force``; a file never works.
    """
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"{name} {out}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise InputError(f"{name} {out}: folder exists and is not empty; pass --force to replace it")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise InputError(f"{name} {out}: parent folder {parent} does not exist")
    return path


@contextlib.contextmanager
def atomic_output_dir(out: str | Path, *, force: bool, name: str = "--out") -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``out``; on success move it into place as ``out``.

    If the body raises (or the process is interrupted) the temporary folder is removed and ``out``
    is left as it was. An existing non-empty ``out`` is replaced only with ``force``; the old one
    is moved aside first and deleted only after the new one is in place.
    """
    path = validate_out_dir(out, force=force, name=name)
    parent = path.resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
    try:
        yield tmp
        old: Path | None = None
        if path.exists():
            # Re-check: something may have been written to ``out`` while we worked.
            validate_out_dir(out, force=force, name=name)
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=parent))
            path.replace(old / path.name)
        tmp.replace(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON with sorted keys, 2-space indent and a final newline.

    Non-finite floats become ``null`` (``NaN`` is not JSON), so the file parses everywhere.
    """
    text = json.dumps(_finite(data), sort_keys=True, indent=2, allow_nan=False)
    out = Path(path)
    out.write_text(text + "\n", encoding="utf-8")
    return out


def _finite(value: Any) -> Any:
    # NaN/inf become null so the file stays valid JSON; the report says "not available" for them.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
