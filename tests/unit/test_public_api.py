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


def test_no_module_shares_its_name_with_a_function_or_class_of_its_package() -> None:
    # `import pkg.mod as m` must give the module: a same-named function in `pkg` (or in `mod`) would shadow it
    import importlib
    import inspect
    import pkgutil

    clashes = []
    for info in pkgutil.walk_packages(sae_steer_checks.__path__, "sae_steer_checks."):
        module = importlib.import_module(info.name)
        leaf = info.name.rsplit(".", 1)[1]
        parent = importlib.import_module(info.name.rsplit(".", 1)[0])
        for owner in (parent, module):
            value = owner.__dict__.get(leaf)
            if value is not None and not inspect.ismodule(value):
                clashes.append(f"{owner.__name__}.{leaf} is a {type(value).__name__}")
    assert not clashes, clashes
    import sae_steer_checks.report.verdicts as verdicts_module

    assert inspect.ismodule(verdicts_module)
    assert callable(verdicts_module.clears)
