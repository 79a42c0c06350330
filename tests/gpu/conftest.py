"""Fixtures of the GPU tier: Gemma 2 2B, Gemma Scope layer 14 (16k, L0 173) and the CAA corrigibility set.

Nothing is downloaded here (the hub is offline in tests): the weights must already be in the local
Hugging Face cache, or be named by path through the environment variables below. When something is
missing the tests skip with a reason naming it; when the tier was asked for (``--run-gpu``) they fail.

- ``SAE_STEER_CHECKS_GEMMA2_2B``: hub id or local directory of Gemma 2 2B (default ``google/gemma-2-2b``).
- ``SAE_STEER_CHECKS_GEMMA_SCOPE``: local directory holding ``params.npz`` of the Gemma Scope SAE
  (default: sae-lens ``gemma-scope-2b-pt-res`` / ``layer_14/width_16k/average_l0_173`` from the cache).
- ``SAE_STEER_CHECKS_CAA_DATA``: path(s) or URL(s), separated by whitespace, of the CAA
  corrigible-neutral-HHH A/B files (generate and test sets; the study used all 340 items).
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

import pytest
import torch

from sae_steer_checks.data.schema import ABItem, load_ab_items
from sae_steer_checks.lm.models import LoadedModel, load_model

LAYER = 14
SAE_RELEASE = "gemma-scope-2b-pt-res"
SAE_ID = "layer_14/width_16k/average_l0_173"
MODEL_ENV, SAE_ENV, DATA_ENV = (
    "SAE_STEER_CHECKS_GEMMA2_2B",
    "SAE_STEER_CHECKS_GEMMA_SCOPE",
    "SAE_STEER_CHECKS_CAA_DATA",
)


def missing(config: pytest.Config, reason: str) -> NoReturn:
    """Skip with ``reason``, or fail when the GPU tier was requested explicitly."""
    if config.getoption("--run-gpu"):
        pytest.fail(f"GPU tier requested but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def gemma_scope_sae(pytestconfig: pytest.Config) -> Any:
    """Gemma Scope residual SAE, layer 14, width 16k, average L0 173 (float32, CPU)."""
    from sae_lens import SAE

    path = os.environ.get(SAE_ENV)
    try:
        if path:
            sae = SAE.load_from_disk(path, device="cpu")
        else:
            sae = SAE.from_pretrained(SAE_RELEASE, SAE_ID, device="cpu")
    except Exception as err:
        where = path or f"the local cache ({SAE_RELEASE} / {SAE_ID}; HF_HUB_OFFLINE is set)"
        missing(
            pytestconfig,
            f"the Gemma Scope SAE weights are not reachable from {where}: {type(err).__name__}: "
            f"{str(err)[:200]} (set {SAE_ENV} to a local copy)",
        )
    return sae[0] if isinstance(sae, tuple) else sae


@pytest.fixture(scope="session")
def cuda_device(pytestconfig: pytest.Config) -> torch.device:
    """The first CUDA device."""
    if not torch.cuda.is_available():
        missing(pytestconfig, f"no CUDA GPU is visible to torch {torch.__version__}")
    return torch.device("cuda")


@pytest.fixture(scope="session")
def gemma2_2b(pytestconfig: pytest.Config, cuda_device: torch.device) -> LoadedModel:
    """Gemma 2 2B (base) in float32 on the GPU."""
    name = os.environ.get(MODEL_ENV, "google/gemma-2-2b")
    try:
        return load_model(name, device=cuda_device, dtype=torch.float32)
    except (OSError, ValueError) as err:
        missing(
            pytestconfig,
            f"the Gemma 2 2B weights {name!r} are not available locally: {str(err)[:200]} "
            f"(set {MODEL_ENV} to a local directory)",
        )


@pytest.fixture(scope="session")
def corrigibility_items(pytestconfig: pytest.Config) -> list[ABItem]:
    """The CAA corrigible-neutral-HHH A/B items named by ``SAE_STEER_CHECKS_CAA_DATA``."""
    sources = os.environ.get(DATA_ENV, "").split()
    if not sources:
        missing(
            pytestconfig,
            f"{DATA_ENV} is not set: give the path(s) or URL(s) of the CAA corrigible-neutral-HHH "
            "A/B JSON files (generate + test, 340 items in the study)",
        )
    items: list[ABItem] = []
    for source in sources:
        try:
            items.extend(load_ab_items(source))
        except (OSError, ValueError) as err:
            missing(pytestconfig, f"{DATA_ENV} source {source!r} could not be read: {err}")
    return items
