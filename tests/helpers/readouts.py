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
