"""Random draws of the checks: generators, one stream per use, and the draws every null shares.

One seed for the run is spawned into independent streams (:func:`streams`), one per null, bootstrap and
random-direction set: two nulls seeded alike would draw the same numbers (retention's random directions
were once exactly the first decomposition-null vectors). A stream's name, not its position, picks its
child of a :class:`numpy.random.SeedSequence`, so adding a stream leaves every other stream's draws
unchanged. Covariance-shaped vectors and whole-item label flips are drawn here, once, for every check.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "GeneratorLike",
    "as_generator",
    "covariance_draws",
    "label_flips",
    "stream_seed",
    "streams",
    "streams_from",
]

GeneratorLike = torch.Generator | int | None


def as_generator(generator: GeneratorLike) -> torch.Generator:
    """``generator`` itself, or a CPU generator seeded by the int (None: seed 0)."""
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(0 if generator is None else int(generator))


def stream_seed(seed: int, name: str) -> int:
    """A 63-bit seed for the stream ``name`` of the run seeded ``seed`` (stable across runs and platforms).

    Args:
        seed: The run's seed (a non-negative integer).
        name: The stream's name, e.g. ``"leaning"`` or ``"retention.random_directions"``.

    Returns:
        An integer seed for a ``torch.Generator``; distinct names give independent streams.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    # The name's CRC32 is the spawn key: the child depends on (seed, name) only.
    child = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode()),))
    return int(child.generate_state(2, np.uint64)[0] >> np.uint64(1))


def streams(seed: int, names: Iterable[str]) -> dict[str, torch.Generator]:
    """One independent CPU ``torch.Generator`` per name, all spawned from ``seed``.

    Args:
        seed: The run's seed.
        names: Stream names (distinct).

    Returns:
        Name -> generator seeded with :func:`stream_seed`.
    """
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"stream names must be distinct, got {names}")
    return {n: torch.Generator().manual_seed(stream_seed(seed, n)) for n in names}


def streams_from(generator: GeneratorLike, names: Iterable[str]) -> dict[str, torch.Generator]:
    """One CPU ``torch.Generator`` per name, from an int seed (:func:`streams`; None: seed 0) or a generator.

    A ``torch.Generator`` seeds the streams with one draw each, in the order of ``names``.
    """
    names = list(names)
    if not isinstance(generator, torch.Generator):
        return streams(0 if generator is None else int(generator), names)
    if len(set(names)) != len(names):
        raise ValueError(f"stream names must be distinct, got {names}")
    seeds = torch.randint(0, 2**62, (len(names),), generator=generator, device=generator.device)
    return {n: torch.Generator().manual_seed(int(k)) for n, k in zip(names, seeds.tolist(), strict=True)}


def covariance_draws(activations: Tensor, n: int, generator: GeneratorLike = None) -> Tensor:
    """``n`` draws from N(0, Sigma), Sigma the covariance of ``activations [m, d]``, as ``[n, d]`` float64.

    A draw is ``X_c^T g / sqrt(m - 1)`` with ``X_c`` the centred activations and ``g ~ N(0, I_m)``, so no
    ``d x d`` matrix is formed and the draws' covariance is the unbiased sample covariance.
    """
    x = activations.detach().to(device="cpu", dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"activations must be [m >= 2, d], got shape {list(x.shape)}")
    x = x - x.mean(0)
    g = torch.randn(n, x.shape[0], generator=as_generator(generator), dtype=torch.float64)
    return g @ x / math.sqrt(x.shape[0] - 1)


def label_flips(n: int, n_items: int, generator: GeneratorLike = None) -> Tensor:
    """``[n, n_items]`` float64 signs (+1 or -1), one per item: whole-item label flips."""
    bits = torch.randint(0, 2, (n, n_items), generator=as_generator(generator))
    return 1.0 - 2.0 * bits.to(torch.float64)
