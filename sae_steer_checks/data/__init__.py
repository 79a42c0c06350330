"""A/B and free-form contrast datasets, prompt building, offline text corpora and the bundled sets."""

from sae_steer_checks.data.prompts import ab_pairs, ab_prompt, freeform_pairs, tokenize
from sae_steer_checks.data.schema import (
    BUNDLED_AB,
    BUNDLED_FREEFORM,
    HELDOUT_FRACTION,
    ABItem,
    ContrastivePair,
    FreeformDataset,
    FreeformItem,
    load_ab_items,
    load_dataset,
    load_freeform,
    sample_dataset,
    split_dataset,
    split_items,
    swap_choices,
)

__all__ = [
    "BUNDLED_AB",
    "BUNDLED_FREEFORM",
    "HELDOUT_FRACTION",
    "ABItem",
    "ContrastivePair",
    "FreeformDataset",
    "FreeformItem",
    "ab_pairs",
    "ab_prompt",
    "freeform_pairs",
    "load_ab_items",
    "load_dataset",
    "load_freeform",
    "sample_dataset",
    "split_dataset",
    "split_items",
    "swap_choices",
    "tokenize",
]
