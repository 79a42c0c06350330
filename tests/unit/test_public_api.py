"""The public API: every exported name resolves, and importing the package loads nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sae_steer_checks


@pytest.mark.parametrize("name", sorted(set(sae_steer_checks.__all__) - {"__version__"}))
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(sae_steer_checks, name) is not None


def test_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = sae_steer_checks.nope  # type: ignore[attr-defined]


def test_import_is_light() -> None:
    code = (
        "import sys, sae_steer_checks; "
        "print(sorted(m for m in ('torch', 'transformers', 'sae_lens') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
