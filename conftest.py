"""Test-suite configuration: strict tiers, gate options and hypothesis profiles.

Tiers: the fast CPU tier runs by default; ``realmodel`` and ``gpu`` tests (every test under
``tests/realmodel`` and ``tests/gpu``) run only when asked (``--run-realmodel``, ``--run-gpu``, or the
matching nox session), and so do the fast tier's ``slow`` tests (calibrations over many simulated
worlds, very wide worlds, whole surveys: ``--run-slow`` or ``nox -s thorough``). A tier that is asked
for explicitly must not pass by skipping: when the GPU tier is requested on a machine without CUDA the
run fails at collection with a message naming what is missing.
The benchmark's smoke test lives in ``bench/`` and runs in ``nox -s bench`` only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each xdist worker is one process per core: intra-op threads would only contend, and tiny ops
    # (bmm, cholesky) slow down by orders of magnitude when two workers oversubscribe two cores.
    import torch

    torch.set_num_threads(1)

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=400,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_GATES = {
    "realmodel": (
        "--run-realmodel",
        "loads a real model; pass --run-realmodel or use `nox -s realmodel`",
    ),
    "gpu": ("--run-gpu", "needs a CUDA GPU; pass --run-gpu or use `nox -s gpu`"),
    "slow": ("--run-slow", "slow, left out of the fast tier; pass --run-slow or use `nox -s thorough`"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    for marker, (flag, _) in _GATES.items():
        parser.addoption(flag, action="store_true", default=False, help=f"run tests marked {marker}")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--run-gpu"):
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError(
                "--run-gpu was given but torch.cuda.is_available() is False: no CUDA GPU is visible "
                f"to torch {torch.__version__} on this machine, so the GPU tier cannot run."
            )


# Every test in a tier's folder carries the tier's marker, whether or not its file says so, so a test
# there can neither run in the fast tier nor be deselected from its own tier by `-m`.
_FOLDER_MARKERS = {"gpu": "gpu", "realmodel": "realmodel"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = config.rootpath / "tests"
    for item in items:
        try:
            folder = item.path.relative_to(tests_dir).parts[0]
        except ValueError:
            continue
        marker = _FOLDER_MARKERS.get(folder)
        if marker is not None and item.get_closest_marker(marker) is None:
            item.add_marker(marker)
    for marker, (flag, reason) in _GATES.items():
        if config.getoption(flag):
            continue
        skip = pytest.mark.skip(reason=f"not requested: {reason}")
        for item in items:
            # the marker itself, not `item.keywords`, which also holds folder names such as "gpu"
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Torch on one intra-op thread for a module of many small products (a second thread only contends).

    Module-scoped, so hypothesis tests may use it (``pytestmark = pytest.mark.usefixtures("one_thread")``).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
