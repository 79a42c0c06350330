"""Input checks shared by every layer: clear errors at the boundary, float32 inside."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = [
    "InputError",
    "one_line",
    "validate_batch",
    "validate_fraction",
    "validate_positive_int",
    "validate_vector",
]


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {list(value.shape)} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def _as_float_tensor(value: Any, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {_describe(value)}")
    if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
    return value.detach().to(torch.float32)


def _check_finite(value: Tensor, name: str) -> None:
    if not bool(torch.isfinite(value).all()):
        n_bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{name} must be finite, found {n_bad} NaN or infinite entries")


def validate_vector(vector: Any, d_in: int, name: str = "vector") -> Tensor:
    """Validate a single vector of width ``d_in`` and return it as float32 ``[d_in]``.

    A leading batch dimension of size one is accepted and dropped.
    """
    v = _as_float_tensor(vector, name)
    if v.ndim == 2 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 1 or v.shape[0] != d_in:
        raise ValueError(f"{name} must have shape [{d_in}] to match the SAE's d_in, got {_describe(v)}")
    _check_finite(v, name)
    return v


def validate_batch(batch: Any, d_in: int, name: str, *, min_rows: int = 1) -> Tensor:
    """Validate a batch of activations; return it as float32 ``[n, d_in]`` with ``n >= min_rows``.

    Extra leading dimensions (``[batch, seq, d_in]``) are flattened into rows.
    """
    x = _as_float_tensor(batch, name)
    if x.ndim < 2 or x.shape[-1] != d_in:
        raise ValueError(f"{name} must have shape [n, {d_in}] (rows of SAE input width), got {_describe(x)}")
    x = x.reshape(-1, d_in)
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} must have at least {min_rows} row(s), got {x.shape[0]}")
    _check_finite(x, name)
    return x


def validate_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an int after checking it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def validate_fraction(value: Any, name: str, *, open_low: bool = True) -> float:
    """Return ``value`` as a float after checking it lies in ``(0, 1)`` (or ``[0, 1)``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    low_ok = ok and (value > 0 if open_low else value >= 0)
    if not (low_ok and value < 1):
        interval = "(0, 1)" if open_low else "[0, 1)"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


class InputError(ValueError):
    """A bad input from the user; ``str(error)`` is one line naming the input and what was expected."""


def one_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
