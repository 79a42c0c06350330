"""Hard planted worlds for calibration: imperfect dictionaries, skewed heavy tails, swapped copies, width.

The planted world (``sae_steer_checks.synthetic``) generates activations from a known dictionary. A
hard world makes every shortcut fail:

- **imperfect dictionary:** the SAE's decoder (and tied encoder) rows are the generating rows plus
  noise, renormalised, so SAE codes are not the generating coefficients;
- **correlated context:** both prompts of an item share their ordinary context features;
- **skewed, heavy-tailed noise:** each prompt gets independent noise along a few fixed directions with
  lognormal (skewed) and Student-t (3 df, heavy-tailed) magnitudes, on top of Gaussian noise; positive
  and negative prompts draw it from one distribution, so labels stay exchangeable in null worlds;
- **swapped copies:** each item also appears with its choices swapped, as balanced CAA extracts it:
  the copy shares the item's question (its activations are the item's plus a letter direction and a
  little noise) and its id;
- **width:** ``"small"`` (128 wide, 256 features), ``"2k"`` (512 wide, 2,048 features) and ``"16k"``
  (2,304 wide, 16,384 features, thousands active on the prompts, as Gemma Scope on Gemma 2 2B).

Effect worlds plant ``n_behaviour`` behaviour features (40 of them at the wide widths, so v is a signed
combination of 40 decoder rows, as in the study), ``negative_fraction`` of them leaning negative; each
is present in every item with a per-item strength of 0.5x-1.5x its lean.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sae_steer_checks.synthetic import PlantedWorld, WorldConfig, build_world

Width = Literal["small", "2k", "16k"]
Noise = Literal["gauss", "heavy"]

# d_model, d_sae, ordinary features per context, nuisance features per prompt, behaviour features
_WIDTHS: dict[str, tuple[int, int, int, int, int]] = {
    "small": (128, 256, 4, 2, 8),
    "2k": (512, 2048, 16, 4, 40),
    "16k": (2304, 16384, 40, 4, 40),
}


@dataclass(frozen=True)
class HardWorld:
    """One hard world's SAE and samples (everything ``run_checks`` takes)."""

    world: PlantedWorld
    """The generating world (its SAE is the perfect dictionary; ``sae`` below is the one checked)."""
    sae: torch.nn.Module
    """The SAE handed to the checks (a sae-lens SAE with a noisy decoder)."""
    pos: Tensor
    """Positive activations ``[n_rows, d_model]`` (two rows per item with swapped copies)."""
    neg: Tensor
    """Negative activations ``[n_rows, d_model]``, paired with ``pos``."""
    activations: Tensor
    """Ordinary activations ``[n_acts, d_model]``."""
    item_ids: Tensor | None
    """Item of each row ``[n_rows]`` (None without swapped copies)."""
    vector: Tensor
    """The CAA vector: mean over items of the item-averaged differences ``[d_model]``."""


def _noisy_sae(world: PlantedWorld, decoder_noise: float, gen: torch.Generator) -> torch.nn.Module:
    """A copy of the world's SAE whose decoder rows carry relative noise ``decoder_noise`` (encoder tied)."""
    sae = copy.deepcopy(world.sae)
    if decoder_noise <= 0:
        return sae
    W = sae.W_dec.detach().to(torch.float64)
    noise = torch.randn(W.shape, generator=gen, dtype=torch.float64) * decoder_noise / math.sqrt(W.shape[1])
    W = torch.nn.functional.normalize(W + noise, dim=1)
    with torch.no_grad():
        sae.W_dec.copy_(W.to(sae.W_dec.dtype))
        sae.W_enc.copy_(W.T.to(sae.W_enc.dtype))
    return sae


def _prompt_noise(n: int, directions: Tensor, scale: float, kind: Noise, gen: torch.Generator) -> Tensor:
    """``[n, d]`` noise along ``directions [k, d]``: lognormal (skewed) and t3 (heavy-tailed) magnitudes."""
    if kind == "gauss":
        return torch.zeros(n, directions.shape[1])
    k = directions.shape[0]
    skewed = torch.exp(torch.randn(n, k, generator=gen)) - math.exp(0.5)  # mean 0, right-skewed
    g = torch.randn(n, k, generator=gen)
    v = torch.randn(n, k, 3, generator=gen).pow(2).sum(-1) / 3  # chi2(3)/3
    heavy = g / v.sqrt()  # Student t, 3 df
    return scale * (skewed + heavy) @ directions


@functools.lru_cache(maxsize=4)
def _built(config: WorldConfig, decoder_noise: float) -> tuple[PlantedWorld, torch.nn.Module]:
    """The world of ``config`` and its noisy SAE, built once per process (a 16k world takes a minute)."""
    world = build_world(config)
    return world, _noisy_sae(world, decoder_noise, torch.Generator().manual_seed(config.seed + 99_991))


def hard_world(
    seed: int,
    *,
    sample_seed: int | None = None,
    width: Width = "2k",
    n_items: int = 24,
    effect: bool = False,
    noise: Noise = "heavy",
    swapped: bool = True,
    decoder_noise: float = 0.3,
    n_activations: int = 1000,
    lean: float = 6.0,
    negative_fraction: float = 0.4,
    n_behaviour: int | None = None,
) -> HardWorld:
    """Build one hard world and its samples (see the module docstring).

    Args:
        seed: Seed of the world (its dictionary, planted features and the SAE's decoder noise).
        sample_seed: Seed of the samples (default ``seed``): several samples of one world are
            independent draws of the same data-generating process.
        width: ``"small"``, ``"2k"`` or ``"16k"``.
        n_items: A/B items (rows: twice as many with swapped copies).
        effect: Plant behaviour features (else a null world: no feature leans).
        noise: ``"heavy"`` (skewed and heavy-tailed prompt noise) or ``"gauss"``.
        swapped: Add each item's choice-swapped copy, sharing its id.
        decoder_noise: Relative noise on the SAE's decoder rows (0: the perfect dictionary).
        n_activations: Ordinary activations.
        lean: Typical planted lean of a behaviour feature.
        negative_fraction: Share of behaviour features leaning negative.
        n_behaviour: Behaviour features in effect worlds (default by width).

    Returns:
        A :class:`HardWorld`.
    """
    d_model, d_sae, n_active, n_nuisance, n_beh = _WIDTHS[width]
    config = WorldConfig(
        d_model=d_model,
        d_sae=d_sae,
        n_active=n_active,
        n_nuisance=n_nuisance,
        n_behaviour_features=(n_beh if n_behaviour is None else n_behaviour) if effect else 0,
        negative_fraction=negative_fraction,
        behaviour_magnitude=lean,
        n_aligned_pairs=2 if effect else 0,
        seed=seed,
    )
    world, sae = _built(config, decoder_noise)
    gen = torch.Generator().manual_seed(10_007 * (seed if sample_seed is None else sample_seed) + 17)
    pos, neg = world.sample_contrastive(n_items, gen)
    acts = world.sample_activations(n_activations, gen)
    directions = torch.nn.functional.normalize(torch.randn(4, d_model, generator=gen), dim=1)
    scale = 0.5 * config.feature_magnitude
    pos = pos + _prompt_noise(n_items, directions, scale, noise, gen)
    neg = neg + _prompt_noise(n_items, directions, scale, noise, gen)
    acts = acts + _prompt_noise(n_activations, directions, scale, noise, gen)
    item_ids = None
    if swapped:
        letter = torch.nn.functional.normalize(torch.randn(d_model, generator=gen), dim=0) * scale
        jitter = 0.1 * scale
        pos_copy = pos + jitter * torch.randn(pos.shape, generator=gen)
        neg_copy = neg + jitter * torch.randn(neg.shape, generator=gen)
        # the original has the matching answer on A (+letter on pos), the copy on B
        pos = torch.cat([pos + letter / 2, pos_copy - letter / 2])
        neg = torch.cat([neg - letter / 2, neg_copy + letter / 2])
        item_ids = torch.arange(n_items).repeat(2)
    diffs = pos - neg
    if item_ids is not None:
        diffs = (diffs[:n_items] + diffs[n_items:]) / 2
    return HardWorld(world, sae, pos, neg, acts, item_ids, diffs.mean(0))
