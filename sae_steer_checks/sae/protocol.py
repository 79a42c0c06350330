"""The SAE as this library sees it: a Protocol, validation and float32 encoding helpers.

Any object with ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``,
``b_dec [d_in]``, ``encode`` and ``decode`` works: a sae-lens ``SAE`` (JumpReLU, Standard, TopK,
...), a Gemma Scope SAE loaded through sae-lens, or a hand-built toy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "SAELike",
    "applies_b_dec_to_input",
    "as_float32",
    "decode_features",
    "describe_sae",
    "encode_activations",
    "encode_in_sae_space",
    "input_normalization",
    "raw_input_space",
    "sae_dims",
    "validate_sae",
    "vector_from_sae_space",
    "vector_to_sae_space",
]

_REQUIRED = ("W_enc", "b_enc", "W_dec", "b_dec")


@runtime_checkable
class SAELike(Protocol):
    """What the diagnostics need from an SAE."""

    W_enc: Tensor
    b_enc: Tensor
    W_dec: Tensor
    b_dec: Tensor

    def encode(self, x: Tensor) -> Tensor:
        """Feature activations ``[..., d_sae]`` of inputs ``[..., d_in]``."""
        ...

    def decode(self, feature_acts: Tensor) -> Tensor:
        """Reconstruction ``[..., d_in]`` of feature activations ``[..., d_sae]``."""
        ...


def validate_sae(sae: Any, name: str = "sae") -> tuple[int, int]:
    """Validate that ``sae`` has consistent SAE weights and return ``(d_in, d_sae)``.

    Raises ``TypeError`` naming the missing attribute, or ``ValueError`` naming the inconsistent
    shape, so that a wrong object never fails deep inside torch.
    """
    missing = [attr for attr in (*_REQUIRED, "encode", "decode") if not hasattr(sae, attr)]
    if missing:
        raise TypeError(
            f"{name} must be an SAE with W_enc, b_enc, W_dec, b_dec, encode and decode "
            f"(e.g. a sae_lens.SAE); {type(sae).__name__} lacks {', '.join(missing)}"
        )
    W_dec = sae.W_dec
    if not isinstance(W_dec, Tensor) or W_dec.ndim != 2:
        raise ValueError(f"{name}.W_dec must be a 2-D tensor [d_sae, d_in], got {_shape(W_dec)}")
    d_sae, d_in = W_dec.shape
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "b_dec": (d_in,)}
    for attr, shape in expected.items():
        value = getattr(sae, attr)
        if not isinstance(value, Tensor) or tuple(value.shape) != shape:
            raise ValueError(
                f"{name}.{attr} must have shape {list(shape)} to match W_dec {list(W_dec.shape)}, "
                f"got {_shape(value)}"
            )
    return int(d_in), int(d_sae)


def sae_dims(sae: SAELike) -> tuple[int, int]:
    """``(d_in, d_sae)`` of a validated SAE."""
    return validate_sae(sae)


def applies_b_dec_to_input(sae: SAELike) -> bool:
    """Whether the SAE subtracts ``b_dec`` before encoding (sae-lens ``cfg.apply_b_dec_to_input``).

    Gemma Scope's JumpReLU SAEs do not; most ReLU and TopK SAEs trained with sae-lens do. Objects
    without a sae-lens config are taken not to.
    """
    cfg = getattr(sae, "cfg", None)
    return bool(getattr(cfg, "apply_b_dec_to_input", False))


def as_float32(sae: SAELike) -> SAELike:
    """Return ``sae`` itself if its weights are float32, else a float32 copy (original untouched).

    Diagnostics compute in float32 whatever precision the SAE was stored in.
    """
    if sae.W_dec.dtype == torch.float32:
        return sae
    copied = copy.deepcopy(sae)
    if isinstance(copied, torch.nn.Module):
        copied.to(torch.float32)
        cfg = getattr(copied, "cfg", None)
        if cfg is not None and hasattr(cfg, "dtype"):
            cfg.dtype = "float32"
        if hasattr(copied, "dtype"):
            with suppress(AttributeError, TypeError):
                setattr(copied, "dtype", torch.float32)  # noqa: B010 - nn.Module attribute
        return copied
    for attr in _REQUIRED:
        setattr(copied, attr, getattr(copied, attr).to(torch.float32))
    return copied


def describe_sae(sae: SAELike) -> dict[str, Any]:
    """A JSON-ready description of the SAE: class, architecture, widths, convention, Neuronpedia id."""
    d_in, d_sae = validate_sae(sae)
    cfg = getattr(sae, "cfg", None)
    architecture = None
    if cfg is not None and hasattr(cfg, "architecture"):
        arch = cfg.architecture
        architecture = arch() if callable(arch) else arch
    return {
        "class": type(sae).__name__,
        "architecture": architecture,
        "d_in": d_in,
        "d_sae": d_sae,
        "apply_b_dec_to_input": applies_b_dec_to_input(sae),
        "normalize_activations": getattr(cfg, "normalize_activations", "none"),
        "dtype": str(sae.W_dec.dtype).removeprefix("torch."),
        # sae-lens releases record their Neuronpedia dashboard id; report.md links feature ids to it
        "neuronpedia_id": getattr(getattr(cfg, "metadata", None), "neuronpedia_id", None),
    }


def _shape(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"shape {list(value.shape)}"
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------------------------------------
# Encoding helpers. sae-lens SAEs may normalise each input at run time (``constant_norm_rescale``
# rescales every row to norm sqrt(d_in); ``layer_norm`` centres and scales it). Applied to a
# steering vector or to the zero vector that is wrong (0 has no norm to rescale), so vectors are
# mapped into the SAE's input space with the scale typical activations receive and then encoded
# with the run-time normalisation switched off.
# ---------------------------------------------------------------------------------------------


def input_normalization(sae: SAELike) -> str:
    """The SAE's run-time input normalisation (sae-lens ``cfg.normalize_activations``)."""
    cfg = getattr(sae, "cfg", None)
    return str(getattr(cfg, "normalize_activations", "none") or "none")


def _normalisation_scale(sae: SAELike, activations: Tensor | None) -> tuple[str, float]:
    kind = input_normalization(sae)
    if kind not in ("constant_norm_rescale", "layer_norm"):
        # sae-lens folds every other option into the weights at load time.
        return kind, 1.0
    if activations is None or activations.shape[0] == 0:
        raise ValueError(
            f"activations are needed to map a vector into the input space of an SAE with "
            f"normalize_activations={kind!r} (the scale typical activations receive)"
        )
    x = activations.to(torch.float32)
    if kind == "constant_norm_rescale":
        typical = float(x.norm(dim=-1).median())
        return kind, float(x.shape[-1] ** 0.5) / max(typical, 1e-12)
    typical = float((x - x.mean(dim=-1, keepdim=True)).std(dim=-1).median())
    return kind, 1.0 / max(typical, 1e-12)


def vector_to_sae_space(sae: SAELike, vector: Tensor, activations: Tensor | None = None) -> Tensor:
    """Map a direction ``[..., d_in]`` into the SAE's (normalised) input space.

    Returns ``vector`` scaled by the factor that the SAE's run-time normalisation applies to a
    typical (median) activation of ``activations [n, d_in]``, and centred for ``layer_norm``; the
    vector itself when the SAE does not normalise at run time.
    """
    kind, scale = _normalisation_scale(sae, activations)
    v = vector.to(torch.float32)
    if kind == "layer_norm":
        v = v - v.mean(dim=-1, keepdim=True)
    return v * scale


def vector_from_sae_space(sae: SAELike, vector: Tensor, activations: Tensor | None = None) -> Tensor:
    """Inverse of :func:`vector_to_sae_space`: a direction ``[..., d_in]`` back in model space."""
    _, scale = _normalisation_scale(sae, activations)
    return vector.to(torch.float32) / scale


@contextmanager
def raw_input_space(sae: SAELike) -> Iterator[SAELike]:
    """Within the block, ``sae.encode``/``sae.decode`` skip the run-time input normalisation.

    The original normalisation functions are restored on exit, also after an error.
    """
    saved = {
        name: getattr(sae, name)
        for name in ("run_time_activation_norm_fn_in", "run_time_activation_norm_fn_out")
        if hasattr(sae, name)
    }
    try:
        for name in saved:
            setattr(sae, name, _identity)
        yield sae
    finally:
        for name, fn in saved.items():
            setattr(sae, name, fn)


def _identity(x: Tensor) -> Tensor:
    return x


def encode_in_sae_space(
    sae: SAELike, x: Tensor, *, subtract_b_dec: bool | None = None, batch_size: int = 4096
) -> Tensor:
    """Feature activations ``[n, d_sae]`` (float32) of inputs ``[n, d_in]`` already in SAE space.

    ``subtract_b_dec=None`` uses the SAE's own convention; ``True``/``False`` force
    ``pre = (x - b_dec) @ W_enc + b_enc`` or ``pre = x @ W_enc + b_enc`` (the SAE's own encoder is
    called on ``x`` shifted by ``b_dec``, so architecture details such as TopK stay intact).
    """
    own = applies_b_dec_to_input(sae)
    shift = None
    if subtract_b_dec is not None and subtract_b_dec != own:
        b_dec = sae.b_dec.detach().to(torch.float32)
        shift = b_dec if own else -b_dec
    dtype, device = sae.W_enc.dtype, sae.W_enc.device
    out = []
    # inputs go to the SAE's device (e.g. a GPU), codes come back to the CPU where the checks run
    with torch.no_grad(), raw_input_space(sae):
        for start in range(0, max(x.shape[0], 1), batch_size):
            chunk = x[start : start + batch_size].to(device=device, dtype=torch.float32)
            if shift is not None:
                chunk = chunk + shift
            out.append(sae.encode(chunk.to(dtype)).to(device="cpu", dtype=torch.float32))
    return torch.cat(out, dim=0)[: x.shape[0]]


def encode_activations(sae: SAELike, x: Tensor, *, batch_size: int = 4096) -> Tensor:
    """Feature activations ``[n, d_sae]`` (float32) of real activations ``[n, d_in]``.

    Calls the SAE exactly as it would be called on the model, run-time normalisation included.
    """
    dtype, device = sae.W_enc.dtype, sae.W_enc.device
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size].to(device=device, dtype=dtype)
            out.append(sae.encode(chunk).to(device="cpu", dtype=torch.float32))
    if not out:
        return torch.zeros(0, sae.W_dec.shape[0])
    return torch.cat(out, dim=0)


def decode_features(sae: SAELike, feature_acts: Tensor) -> Tensor:
    """The feature part ``decode(f) - decode(0)`` ``[..., d_in]`` in SAE space (no decoder bias).

    Going through ``sae.decode`` keeps architecture details such as TopK's rescaling by decoder
    norms.
    """
    dtype = sae.W_dec.dtype
    f = feature_acts.to(dtype)
    with torch.no_grad(), raw_input_space(sae):
        out = sae.decode(f) - sae.decode(torch.zeros_like(f))
    return out.to(torch.float32)
