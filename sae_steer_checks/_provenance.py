"""Provenance shared by every report: library versions and file hashes."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

__all__ = ["VERSIONED_LIBRARIES", "file_sha256", "versions"]

#: Distributions whose versions shape the numbers in a report.
VERSIONED_LIBRARIES = ("sae-steer-checks", "torch", "sae-lens", "transformers", "numpy", "scipy")


def versions() -> dict[str, str]:
    """Versions of Python and of :data:`VERSIONED_LIBRARIES` (``"not installed"`` when absent)."""
    out = {"python": platform.python_version()}
    for dist in VERSIONED_LIBRARIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
