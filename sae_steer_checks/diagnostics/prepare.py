"""The inputs every check shares, validated and computed once before the checks run.

The SAE's input space and scale (:class:`~sae_steer_checks.diagnostics.space.SaeSpace`), the codes of
the ordinary activations and of the prompts, the per-item differences, the resampled and
label-shuffled vectors with their codes, and one random stream per use are all built here; each check
then reads what it needs from :class:`SharedInputs` and rebuilds none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sae_steer_checks._validate import validate_batch, validate_vector
from sae_steer_checks.diagnostics.resample import SaeDraws, encode_draws, item_differences, vector_draws
from sae_steer_checks.diagnostics.space import EncodedSample, SaeSpace, encode_sample, sae_space
from sae_steer_checks.sae.protocol import SAELike, describe_sae, validate_sae
from sae_steer_checks.stats.draws import streams

__all__ = ["STREAMS", "SharedInputs", "prepare_inputs"]

#: The random streams spawned from the run's seed, one per use.
STREAMS = ("draws", "leaning", "nulls", "retention", "ablation")


@dataclass(frozen=True)
class SharedInputs:
    """What the checks of one run read, computed once (see the module docstring)."""

    space: SaeSpace
    """The SAE in float32 with its weights on the CPU and the scale of its input space."""
    description: dict[str, Any]
    """The SAE as given (class, architecture, widths, dtype), for the provenance."""
    vector: Tensor
    """The steering vector ``[d_in]`` (float32, model space)."""
    v_sae: Tensor
    """The steering vector in the SAE's input space ``[d_in]``."""
    pos: Tensor
    """Positive activations ``[n_pairs, d_in]`` (float32)."""
    neg: Tensor
    """Negative activations ``[n_pairs, d_in]``, paired row by row with ``pos``."""
    item_ids: Tensor | None
    """The item of each pair ``[n_pairs]`` (long), or None: every pair is its own item."""
    activations: Tensor | None
    """The ordinary activations ``[n, d_in]`` as given (float32), or None."""
    ordinary: EncodedSample
    """The ordinary activations (``pos`` and ``neg`` together without them) with their codes."""
    diffs: Tensor
    """Per-item differences ``pos - neg`` ``[n_items, d_in]`` (float64)."""
    pos_codes: Tensor
    """Codes of the positive prompts ``[n_pairs, d_sae]`` (float32, CPU)."""
    neg_codes: Tensor
    """Codes of the negative prompts ``[n_pairs, d_sae]`` (float32, CPU)."""
    code_diffs: Tensor
    """Per-item differences of the prompts' codes ``[n_items, d_sae]`` (float64)."""
    draws: SaeDraws | None
    """Bootstrap and label-shuffled vectors with their codes (None with fewer than 2 items)."""
    rng: dict[str, torch.Generator]
    """One generator per use (:data:`STREAMS`), spawned from the run's seed."""

    @property
    def source(self) -> str:
        """Where the ordinary activations came from: ``activations`` or ``pos+neg``."""
        return "activations" if self.activations is not None else "pos+neg"


def prepare_inputs(
    sae: SAELike,
    vector: Tensor,
    pos: Tensor,
    neg: Tensor,
    activations: Tensor | None = None,
    *,
    item_ids: Tensor | None = None,
    n_boot: int = 200,
    n_null: int = 39,
    seed: int = 0,
    batch_size: int = 4096,
) -> SharedInputs:
    """Validate the inputs of a run and compute what its checks share.

    Args:
        sae: any :class:`SAELike` (computed in float32 whatever its dtype).
        vector: steering vector ``[d_in]``.
        pos: positive activations ``[n_pairs, d_in]``.
        neg: negative activations ``[n_pairs, d_in]``, paired row by row with ``pos``.
        activations: ordinary activations ``[n, d_in]``; without them ``pos`` and ``neg`` stand in.
        item_ids: the item of each pair ``[n_pairs]``: rows sharing an id count as one unit.
        n_boot: bootstrap draws of the vector.
        n_null: label-shuffled vectors of its norm.
        seed: the seed every random stream is spawned from.
        batch_size: rows encoded at once.

    Returns:
        A :class:`SharedInputs`.

    Raises:
        ValueError: naming the bad argument.
    """
    d_in, _ = validate_sae(sae)
    v = validate_vector(vector, d_in, "vector")
    pos = validate_batch(pos, d_in, "pos")
    neg = validate_batch(neg, d_in, "neg")
    if pos.shape[0] != neg.shape[0]:
        raise ValueError(f"pos and neg must pair up row by row, got {pos.shape[0]} and {neg.shape[0]} rows")
    if activations is not None:
        activations = validate_batch(activations, d_in, "activations")
    sample = torch.cat([pos, neg]) if activations is None else activations
    if item_ids is not None:
        item_ids = torch.as_tensor(item_ids, dtype=torch.long).reshape(-1)
        if item_ids.numel() != pos.shape[0]:
            raise ValueError(f"item_ids must give one id per pair ({pos.shape[0]}), got {item_ids.numel()}")
    space = sae_space(sae, sample, batch_size=batch_size)
    rng = streams(seed, STREAMS)
    diffs = item_differences(pos, neg, item_ids)
    draws = None
    if diffs.shape[0] >= 2:
        drawn = vector_draws(v, diffs, n_boot=n_boot, n_shuffled=n_null, generator=rng["draws"])
        draws = encode_draws(space, drawn)
    pos_codes, neg_codes = space.encode_activations(pos).cpu(), space.encode_activations(neg).cpu()
    return SharedInputs(
        space=space,
        description=describe_sae(sae),
        vector=v,
        v_sae=space.to_sae(v),
        pos=pos,
        neg=neg,
        item_ids=item_ids,
        activations=activations,
        ordinary=encode_sample(space, sample),
        diffs=diffs,
        pos_codes=pos_codes,
        neg_codes=neg_codes,
        code_diffs=item_differences(pos_codes, neg_codes, item_ids),
        draws=draws,
        rng=rng,
    )
