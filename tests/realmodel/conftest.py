"""Session-scoped real-model fixtures: Gemma 3 270M, the bundled SAE and the Gemma 2 stand-ins, once per run.

Loading happens inside the fixtures (never at import), so collecting this tier without
``--run-realmodel`` costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch

from sae_steer_checks.lm.models import LoadedModel, load_model

if TYPE_CHECKING:
    from tests.helpers.gemma2_standins import Standins

BUNDLED_SAE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "gemma3-270m-sae"


@pytest.fixture(scope="session")
def gemma3_270m() -> LoadedModel:
    """The packaged Gemma 3 270M in float32 on the CPU (first run ~1 min, later ~4 s)."""
    return load_model("gemma3-270m", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def gemma3_270m_bf16() -> LoadedModel:
    """The packaged Gemma 3 270M in bfloat16 on the CPU (about 4x faster forwards than float32)."""
    return load_model("gemma3-270m", device="cpu", dtype=torch.bfloat16)


@pytest.fixture(scope="session")
def bundled_sae_dir() -> Path:
    """Folder of the SAE bundled in ``fixtures/`` (sae-lens format)."""
    return BUNDLED_SAE_DIR


@pytest.fixture(scope="session")
def bundled_sae(bundled_sae_dir: Path) -> Any:
    """The bundled SAE as a float32 sae-lens SAE on the CPU; it takes raw residual activations."""
    from sae_steer_checks.sae.loading import load_sae_folder

    return load_sae_folder(bundled_sae_dir)


@pytest.fixture(scope="session")
def bundled_sae_metadata(bundled_sae: Any) -> dict[str, Any]:
    """Training recipe and quality recorded in the bundled SAE's ``cfg.json`` metadata."""
    return dict(bundled_sae.cfg.metadata.__dict__)


@pytest.fixture(scope="session")
def gemma2_standins(tmp_path_factory: pytest.TempPathFactory) -> Standins:
    """All Gemma 2 tier stand-ins in the real on-disk layouts, built once per session (~12 s, 350 MB)."""
    from tests.helpers.gemma2_standins import build_standins

    return build_standins(tmp_path_factory.mktemp("gemma2-standins"))
