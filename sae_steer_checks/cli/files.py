"""Reading the user's tensor files and writing extracted tensors (safetensors).

A steering vector is stored under the key ``vector`` with shape ``[d]``, a set of activations under
the key ``activations`` with shape ``[n, d]``, the item of each positive/negative pair under the key
``item_ids`` with shape ``[n]`` (integers). Every problem raises :class:`InputError` whose one-line
message names the input and what was expected.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from sae_steer_checks._validate import InputError, one_line

__all__ = [
    "ACTIVATIONS_KEY",
    "ITEM_IDS_KEY",
    "VECTOR_KEY",
    "load_activations",
    "load_item_ids",
    "load_tensor",
    "load_vector",
    "save_tensors",
]

VECTOR_KEY = "vector"

ACTIVATIONS_KEY = "activations"

ITEM_IDS_KEY = "item_ids"


def _read_tensor(path: str | Path, key: str, name: str, *, hint: str = "") -> Tensor:
    """The tensor under ``key`` in the safetensors file ``path``; one-line errors name ``name``.

    ``hint`` is appended to the missing-key message (what the input was expected to hold).
    """
    from safetensors import SafetensorError, safe_open

    where = f"{name} {path}"
    file = _readable_file(path, name)
    try:
        with safe_open(str(file), framework="pt") as handle:
            keys = sorted(handle.keys())
            if key not in keys:
                raise InputError(f"{where}: no tensor under key '{key}' (found keys: {keys}){hint}")
            return handle.get_tensor(key)
    except SafetensorError as error:
        raise InputError(f"{where}: not a readable safetensors file ({one_line(error)})") from None


def load_tensor(path: str | Path, key: str, *, ndim: int, name: str, width: int | None = None) -> Tensor:
    """Load ``key`` from the safetensors file ``path`` as a finite float32 tensor.

    ``ndim`` is the expected number of dimensions, ``width`` (if given) the expected size of the
    last one. ``name`` is how the input is called in error messages (e.g. ``"--vector"``).
    Returns a float32 CPU tensor of shape ``[d]`` (ndim 1) or ``[n, d]`` (ndim 2).
    """
    where = f"{name} {path}"
    tensor = _read_tensor(path, key, name)
    expected = "[d]" if ndim == 1 else "[n, d]"
    if tensor.ndim != ndim:
        raise InputError(f"{where}: tensor '{key}' must have shape {expected}, got {list(tensor.shape)}")
    if not tensor.is_floating_point():
        raise InputError(f"{where}: tensor '{key}' must be floating point, got {tensor.dtype}")
    if tensor.numel() == 0:
        raise InputError(f"{where}: tensor '{key}' is empty (shape {list(tensor.shape)})")
    if width is not None and tensor.shape[-1] != width:
        raise InputError(
            f"{where}: tensor '{key}' has width {tensor.shape[-1]} but the SAE expects d_in={width}"
        )
    tensor = tensor.to(torch.float32)
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(f"{where}: tensor '{key}' contains {bad} NaN or infinite value(s)")
    return tensor


def load_vector(path: str | Path, *, name: str = "--vector", width: int | None = None) -> Tensor:
    """The steering vector ``[d]`` stored under key ``vector``."""
    return load_tensor(path, VECTOR_KEY, ndim=1, name=name, width=width)


def load_activations(path: str | Path, *, name: str, width: int | None = None) -> Tensor:
    """Activations ``[n, d]`` stored under key ``activations``."""
    return load_tensor(path, ACTIVATIONS_KEY, ndim=2, name=name, width=width)


def load_item_ids(
    path: str | Path, *, rows: int, name: str = "--item-ids", rows_name: str = "--pos"
) -> Tensor:
    """The item of each pair, ``[n]`` integers stored under key ``item_ids``, as an int64 tensor.

    Pairs sharing an id (an A/B item and its choice-swapped copy) count as one unit in the checks.

    Args:
        path: the safetensors file.
        rows: the number of pairs (rows of ``rows_name``) the ids must match.
        name: how the input is called in error messages.
        rows_name: the input whose rows the ids label, for error messages.

    Returns:
        An int64 CPU tensor of shape ``[rows]``.

    Raises:
        InputError: the file is missing or unreadable, lacks the key, or the tensor is not a 1-D
            integer tensor of length ``rows``.
    """
    where = f"{name} {path}"
    expected = f"one integer id per row of {rows_name} (shape [{rows}])"
    tensor = _read_tensor(path, ITEM_IDS_KEY, name, hint=f"; expected {expected}")
    if tensor.ndim != 1:
        raise InputError(
            f"{where}: tensor '{ITEM_IDS_KEY}' has shape {list(tensor.shape)}; expected {expected}"
        )
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise InputError(f"{where}: tensor '{ITEM_IDS_KEY}' is {tensor.dtype}; expected {expected}")
    if tensor.shape[0] != rows:
        raise InputError(
            f"{where}: tensor '{ITEM_IDS_KEY}' has {tensor.shape[0]} ids but {rows_name} has {rows} rows; "
            f"expected {expected}"
        )
    return tensor.to(torch.int64)


def save_tensors(
    path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None
) -> Path:
    """Write ``tensors`` (contiguous CPU copies) to a safetensors file; returns the path."""
    from safetensors.torch import save_file

    out = Path(path)
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(out), metadata)
    return out


def _readable_file(path: str | Path, name: str) -> Path:
    file = Path(path).expanduser()
    if not file.exists():
        raise InputError(f"{name} {path}: file not found")
    if not file.is_file():
        raise InputError(f"{name} {path}: expected a file, got a folder")
    try:
        with open(file, "rb") as handle:
            handle.read(1)
    except OSError as error:
        raise InputError(f"{name} {path}: cannot read ({error.strerror})") from None
    return file
