"""Fixtures of the GPU tier: the real Gemma Scope file, Gemma 2 2B, the CAA files and one run of the tier.

Nothing is downloaded (the hub is offline in tests): the weights must be in the local Hugging Face cache
or be named by path (environment variables in ``tests/gpu/replication.py``). Without them the tests skip
with the exact path that is missing; when the tier was asked for (``--run-gpu``) they fail instead. A
stand-in of the rehearsal (same shapes, the study's values planted) is refused as "not the real file".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import pytest
import torch

from tests.gpu.figures import Figure, Row, load_expectations, replication_table, tier_figures, weight_figures
from tests.gpu.replication import (
    DATA_ENV,
    MODEL_ENV,
    OUT_ENV,
    SAE_ENV,
    STANDIN_MARKER,
    TierConfig,
    TierRun,
    caa_sources,
    is_standin,
    load_tier_sae,
    model_source,
    run_tier,
    sae_params_path,
    weight_codes,
    write_replication_table,
)

STUDY = Path(__file__).with_name("study.json")


def missing(config: pytest.Config, reason: str) -> NoReturn:
    """Skip with ``reason``, or fail when the GPU tier was requested explicitly (``--run-gpu``)."""
    if config.getoption("--run-gpu"):
        pytest.fail(f"GPU tier requested but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def study() -> dict[str, dict[str, Any]]:
    """The study's figures with tolerances and reasons (``tests/gpu/study.json``)."""
    return load_expectations(STUDY)


@pytest.fixture(scope="session")
def real_params(pytestconfig: pytest.Config) -> Path:
    """Path of the REAL Gemma Scope ``params.npz`` (layer 14, width 16k, average L0 173)."""
    path, looked_at = sae_params_path()
    if path is None:
        missing(pytestconfig, f"the Gemma Scope params.npz is missing: no file at {looked_at}")
    if is_standin(path):
        missing(
            pytestconfig,
            f"{path} is a rehearsal stand-in (a {STANDIN_MARKER} marker sits above it), not the real "
            f"Gemma Scope file: point {SAE_ENV} or the Hugging Face cache at the real weights",
        )
    return path


@pytest.fixture(scope="session")
def weight_only_figures(real_params: Path) -> dict[str, Figure]:
    """The figures read from the SAE's weights alone (no model, no GPU)."""
    sae, _ = load_tier_sae(str(real_params), device="cpu")
    return weight_figures(weight_codes(sae))


@pytest.fixture(scope="session")
def cuda_device(pytestconfig: pytest.Config) -> str:
    """The first CUDA device."""
    if not torch.cuda.is_available():
        missing(pytestconfig, f"no CUDA GPU is visible to torch {torch.__version__}")
    return "cuda"


def _model_missing() -> str | None:
    """Where the model was looked for, when it is not there; None when it is."""
    name = model_source()
    path = Path(name).expanduser()
    if path.is_dir():
        return None if (path / "config.json").is_file() else f"no config.json in {path} ({MODEL_ENV})"
    import huggingface_hub
    from huggingface_hub import constants

    for filename in ("config.json", "model.safetensors.index.json"):
        if not isinstance(huggingface_hub.try_to_load_from_cache(name, filename), str):
            repo = Path(constants.HF_HUB_CACHE) / f"models--{name.replace('/', '--')}"
            return f"no file at {repo}/snapshots/<revision>/{filename} (or set {MODEL_ENV} to a local folder)"
    return None


def _caa_missing() -> str | None:
    sources = caa_sources()
    absent = [s for s in sources if "://" not in s and not Path(s).expanduser().is_file()]
    if absent:
        return f"no CAA file at {', '.join(absent)} (set {DATA_ENV} to the generate and test files)"
    return None


@pytest.fixture(scope="session")
def tier(
    pytestconfig: pytest.Config, cuda_device: str, real_params: Path, study: dict[str, dict[str, Any]]
) -> tuple[TierRun, list[Row], Path]:
    """One run of the whole tier on the real weights (bfloat16, CUDA), its report and replication table.

    Written to ``$SAE_STEER_CHECKS_GPU_OUT`` (default ``gpu-report`` under the repository root).
    """
    for problem in (_model_missing(), _caa_missing()):
        if problem is not None:
            missing(pytestconfig, problem)
    out = Path(os.environ.get(OUT_ENV) or pytestconfig.rootpath / "gpu-report")
    config = TierConfig.from_env(device=cuda_device, dtype=torch.bfloat16)
    run = run_tier(config, out)
    rows = replication_table(tier_figures(run), study)
    write_replication_table(rows, out)
    return run, rows, out
