"""Planted worlds whose behaviour reads only one leaning side of the steering vector.

The planted readout is the whole steering vector ``lean @ W_dec``. Reading only the negative-leaning
features' part puts the behaviour in the span of their decoder rows (the projections SAE(v) loses);
reading only the positive-leaning part leaves it orthogonal to that span, since behaviour rows are
orthonormal. The world's samples are untouched: only ``truth.readout`` changes.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from sae_steer_checks.synthetic import PlantedWorld

Side = Literal["negative", "positive"]


def with_readout(world: PlantedWorld, side: Side) -> PlantedWorld:
    """``world`` whose behaviour reads only the ``side``-leaning features' part of the steering vector."""
    lean = world.truth.lean.to(torch.float64)
    mask = lean < 0 if side == "negative" else lean > 0
    readout = ((lean * mask) @ world.W_dec.detach().cpu().to(torch.float64)).to(torch.float32)
    return dataclasses.replace(world, truth=dataclasses.replace(world.truth, readout=readout))


def mixed_readout(without: torch.Tensor, removed: torch.Tensor, cost: float) -> torch.Tensor:
    """A readout ``w`` whose removal cost is exactly ``cost``: ``w . v = 1`` and ``w . removed = cost``.

    ``w = cost removed / ||removed||^2 + (1 - cost) without / ||without||^2`` for the split
    ``v = without + removed`` of :func:`~sae_steer_checks.diagnostics.ablation.lost_component`
    (``removed`` orthogonal to ``without``): it mixes the lost-span (negative-leaning) part of v and the
    rest, so steering without the lost span keeps ``1 - cost`` of v's slope. float64.
    """
    r, k = removed.to(torch.float64), without.to(torch.float64)
    return cost * r / r.dot(r) + (1.0 - cost) * k / k.dot(k)
