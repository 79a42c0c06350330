"""Default multipliers of a behaviour sweep, set relative to the activation norm.

CAA's plain multipliers (-1..1) presume a vector whose norm is a sizeable share of the activations'.
A difference of means is often far shorter (0.5% of the norm is common), so at -1..1 it moves nothing;
the sweep instead pushes by fixed fractions of the typical activation norm.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from sae_steer_checks.steering.slopes import relative_multipliers

__all__ = ["DEFAULT_FRACTIONS", "default_multipliers"]

#: Signed fractions of the median activation norm that ``||m v||`` reaches, one multiplier each.
DEFAULT_FRACTIONS = (-0.5, -0.25, 0.0, 0.25, 0.5)


def default_multipliers(
    vector: Tensor, activations: Tensor, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> tuple[float, ...]:
    """Multipliers ``m`` with ``|m| * ||vector||`` at each of ``fractions`` of the median activation norm.

    ``vector`` is ``[d]``, ``activations`` ``[n, d]`` (ordinary text activations at the vector's layer,
    or the positive and negative activations it was read from). With the default fractions the sweep
    reaches half the median norm on either side. A zero vector, or activations of median norm 0, give
    CAA's plain ``(-1.0, 0.0, 1.0)``.
    """
    if vector.ndim != 1:
        raise ValueError(f"vector must be [d], got shape {list(vector.shape)}")
    if activations.ndim != 2 or activations.shape[1] != vector.shape[0] or activations.shape[0] == 0:
        shape = list(activations.shape)
        raise ValueError(f"activations must be a non-empty [n, {vector.shape[0]}] tensor, got shape {shape}")
    median = float(activations.float().norm(dim=1).median())
    v_norm = float(vector.float().norm())
    if v_norm == 0 or median == 0:
        return (-1.0, 0.0, 1.0)
    return relative_multipliers(v_norm, median, fractions)
