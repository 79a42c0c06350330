"""Choosing the layer to steer: steerability of the CAA vector at each layer against a random null.

At every layer the vector is extracted from the training data and swept with multipliers that put
``||m v||`` at fixed fractions of the mean activation norm at that layer, so layers with different
activation scales are compared at the same relative push. The slope reported per layer is therefore
the change in score per unit fraction of the activation norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from tqdm.auto import tqdm

from sae_steer_checks.data.schema import ABItem, ContrastivePair, FreeformDataset
from sae_steer_checks.lm.models import validate_layer
from sae_steer_checks.steering.caa import Balance, extract_caa
from sae_steer_checks.steering.scoring import SteerPositions
from sae_steer_checks.steering.slopes import relative_multipliers, steerability
from sae_steer_checks.steering.tasks import BehaviourTask

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["LayerSteerability", "LayerSweep", "layer_sweep"]


@dataclass(frozen=True)
class LayerSteerability:
    """Steerability of the CAA vector at one layer."""

    layer: int
    """Decoder block steered (its output)."""
    vector_norm: float
    """Norm of the CAA vector at this layer."""
    activation_norm: float
    """Mean norm of the activations the vector was read from."""
    slope: float
    """Score change per unit fraction of the activation norm, steering vector."""
    slope_se: float
    """Standard error of ``slope`` across held-out items."""
    null_slope: float
    """The same for a random vector of equal norm."""
    null_slope_se: float
    """Standard error of ``null_slope``."""
    z: float
    """``(slope - null_slope)`` in combined standard errors."""
    steers: bool = False
    """Whether the vector beats its random null here (``Steerability.steers``; the Monte Carlo gate needs
    at least 19 random directions at 5%, so with the sweep's default single direction it is False and
    ``z`` is the figure to read)."""

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class LayerSweep:
    """Steerability per layer and the layer with the largest slope."""

    fractions: tuple[float, ...]
    """Signed fractions of the activation norm used as the sweep's x axis."""
    results: tuple[LayerSteerability, ...]
    """One entry per swept layer, in the order given."""

    def __post_init__(self) -> None:
        if not self.results:
            raise ValueError("results must hold at least one layer, got none")

    @property
    def best_layer(self) -> int:
        """Layer with the largest steerability slope."""
        return max(self.results, key=lambda r: r.slope).layer

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "fractions": list(self.fractions),
            "best_layer": self.best_layer,
            "layers": [r.to_dict() for r in self.results],
        }


def layer_sweep(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    train: Sequence[ABItem] | Sequence[ContrastivePair] | FreeformDataset,
    task: BehaviourTask,
    layers: Sequence[int],
    *,
    fractions: Sequence[float] = (-0.25, 0.0, 0.25),
    balance: Balance = "auto",
    n_random: int = 1,
    generator: torch.Generator | None = None,
    positions: SteerPositions = "answer",
    batch_size: int = 16,
    progress: bool = False,
) -> LayerSweep:
    """Extract CAA from ``train`` at each of ``layers`` and measure its steerability on ``task``.

    Multipliers are ``fractions`` of the layer's mean activation norm over the vector norm; the slope
    is rescaled to score per unit fraction. Returns a ``LayerSweep`` (``.best_layer``, ``.to_dict()``).
    """
    checked = [validate_layer(model, layer) for layer in layers]
    if not checked:
        raise ValueError("layers must name at least one decoder block, got none")
    results = []
    for layer in tqdm(checked, desc="layer sweep", disable=not progress):
        caa = extract_caa(model, tokenizer, train, layer, balance=balance, batch_size=batch_size)
        act_norm = float(torch.cat([caa.positive, caa.negative]).norm(dim=1).mean())
        multipliers = relative_multipliers(caa.norm, act_norm, fractions)
        steer = steerability(
            model,
            task,
            layer,
            caa.vector,
            multipliers,
            n_random=n_random,
            generator=generator,
            positions=positions,
            batch_size=batch_size,
        )
        # d score / d fraction = d score / d multiplier * (act_norm / ||v||)
        scale = act_norm / caa.norm
        results.append(
            LayerSteerability(
                layer=layer,
                vector_norm=caa.norm,
                activation_norm=act_norm,
                slope=steer.vector.slope * scale,
                slope_se=steer.vector.slope_se * scale,
                null_slope=steer.null_slope * scale,
                null_slope_se=steer.null_slope_se * scale,
                z=steer.z,
                steers=steer.steers,
            )
        )
    return LayerSweep(fractions=tuple(float(f) for f in fractions), results=tuple(results))
