"""The SAE as every check sees it, prepared once: float32, weights on the CPU, the map into its input space.

sae-lens SAEs may normalise each input at run time; a steering vector (or the zero vector) is mapped
into the SAE's input space with the scale a typical activation of the sample receives
(:func:`~sae_steer_checks.sae.protocol.vector_to_sae_space`). That scale depends on the sample only,
so :func:`sae_space` reads it once and every check maps its vectors with it. The codes of the
ordinary activations are computed once too (:func:`encode_sample`), kept sparse (an SAE code has few
active features) so that a large sample fits in memory, and read back chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from sae_steer_checks._validate import validate_batch, validate_positive_int
from sae_steer_checks.sae.protocol import (
    SAELike,
    applies_b_dec_to_input,
    as_float32,
    encode_activations,
    encode_in_sae_space,
    input_normalization,
    validate_sae,
    vector_to_sae_space,
)

__all__ = ["EncodedSample", "SaeSpace", "encode_sample", "sae_space"]


@dataclass(frozen=True)
class SaeSpace:
    """An SAE ready for the checks, with the scale of its input space read once from the sample."""

    sae: SAELike
    """The SAE in float32 (a copy when it was stored in lower precision)."""
    W_dec: Tensor
    """Decoder ``[d_sae, d_in]`` (float32, CPU)."""
    W_enc: Tensor
    """Encoder ``[d_in, d_sae]`` (float32, CPU)."""
    normalization: str
    """The SAE's run-time input normalisation (``none``, ``constant_norm_rescale``, ``layer_norm``, ...)."""
    factor: float
    """What that normalisation multiplies a typical activation of the sample by (1 without one)."""
    subtract_b_dec: bool
    """The SAE's own decoder-bias convention (``b_dec`` subtracted before encoding)."""
    batch_size: int = 4096
    """Rows encoded at once."""

    @property
    def d_in(self) -> int:
        """Input width."""
        return int(self.W_dec.shape[1])

    @property
    def d_sae(self) -> int:
        """Number of features."""
        return int(self.W_dec.shape[0])

    def to_sae(self, x: Tensor) -> Tensor:
        """Directions ``[..., d_in]`` in the SAE's input space (float32, on ``x``'s device).

        Equal to ``vector_to_sae_space(sae, x, sample)``: centred for ``layer_norm``, then scaled.
        """
        v = x.to(torch.float32)
        if self.normalization == "layer_norm":
            v = v - v.mean(dim=-1, keepdim=True)
        return v * self.factor

    def from_sae(self, x: Tensor) -> Tensor:
        """Directions ``[..., d_in]`` of the SAE's input space back in model space.

        Equal to ``vector_from_sae_space(sae, x, sample)``.
        """
        return x.to(torch.float32) / self.factor

    def encode(self, x: Tensor, *, subtract_b_dec: bool | None = None) -> Tensor:
        """Codes ``[n, d_sae]`` (float32, CPU) of inputs ``[n, d_in]`` already in the SAE's input space.

        ``subtract_b_dec=None`` uses the SAE's own convention (see ``encode_in_sae_space``).
        """
        return encode_in_sae_space(self.sae, x, subtract_b_dec=subtract_b_dec, batch_size=self.batch_size)

    def encode_activations(self, x: Tensor) -> Tensor:
        """Codes ``[n, d_sae]`` (float32, CPU) of model activations ``[n, d_in]``, normalisation included."""
        return encode_activations(self.sae, x, batch_size=self.batch_size)


def sae_space(sae: SAELike | SaeSpace, sample: Tensor | None = None, *, batch_size: int = 4096) -> SaeSpace:
    """The :class:`SaeSpace` of ``sae``, with the scale that typical rows of ``sample [n, d_in]`` receive.

    A :class:`SaeSpace` is returned as it is. ``sample`` is needed only when the SAE normalises its
    inputs at run time (``constant_norm_rescale``, ``layer_norm``); it is then read once, here.

    Raises:
        TypeError: when ``sae`` lacks an SAE's weights.
        ValueError: on a bad width, or a normalising SAE without ``sample``.
    """
    if isinstance(sae, SaeSpace):
        return sae
    d_in, _ = validate_sae(sae)
    batch_size = validate_positive_int(batch_size, "batch_size")
    sae = as_float32(sae)
    # e_0 - e_1 is left as it is by layer_norm's centring, so its first entry is the scale itself; read
    # through vector_to_sae_space, the scale cannot disagree with it
    probe = torch.zeros(d_in)
    probe[0] = 1.0
    if d_in > 1:
        probe[1] = -1.0
    factor = float(vector_to_sae_space(sae, probe, sample)[0])
    return SaeSpace(
        sae=sae,
        W_dec=sae.W_dec.detach().to(torch.float32).cpu(),
        W_enc=sae.W_enc.detach().to(torch.float32).cpu(),
        normalization=input_normalization(sae),
        factor=factor,
        subtract_b_dec=applies_b_dec_to_input(sae),
        batch_size=batch_size,
    )


@dataclass(frozen=True)
class EncodedSample:
    """Ordinary activations with their SAE codes, encoded once and read by every check that needs them."""

    space: SaeSpace
    """The SAE that encoded them."""
    rows: Tensor
    """The activations ``[n, d_in]`` (float32, model space)."""
    codes: tuple[Tensor, ...]
    """Their codes as sparse ``[chunk, d_sae]`` tensors, one per ``space.batch_size`` rows."""

    def chunks(self, *, in_sae_space: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """``(rows [b, d_in], codes [b, d_sae])`` chunk by chunk, the codes dense (float32, CPU).

        With ``in_sae_space`` the rows are mapped into the SAE's input space (:meth:`SaeSpace.to_sae`).
        """
        step = self.space.batch_size
        for i, codes in enumerate(self.codes):
            rows = self.rows[i * step : (i + 1) * step]
            yield (self.space.to_sae(rows) if in_sae_space else rows), codes.to_dense()

    @property
    def live(self) -> Tensor:
        """Features that fire (code > 0) on at least one row ``[d_sae]`` (bool)."""
        live = torch.zeros(self.space.d_sae, dtype=torch.bool)
        for codes in self.codes:
            live[codes.indices()[1][codes.values() > 0]] = True
        return live


def encode_sample(space: SaeSpace, activations: Tensor | EncodedSample) -> EncodedSample:
    """Encode ordinary activations ``[n, d_in]`` once, ``space.batch_size`` rows at a time.

    An :class:`EncodedSample` is returned as it is.
    """
    if isinstance(activations, EncodedSample):
        return activations
    rows = validate_batch(activations, space.d_in, "activations")
    step = space.batch_size
    codes = tuple(
        space.encode_activations(rows[start : start + step]).to_sparse()
        for start in range(0, rows.shape[0], step)
    )
    return EncodedSample(space=space, rows=rows, codes=codes)
