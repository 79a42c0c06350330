"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

from tests.helpers.hand_saes import ARCHITECTURES

seeds = st.integers(0, 2**31 - 1)
"""A torch generator seed."""

architectures = st.sampled_from(ARCHITECTURES)
"""One of the hand-set SAE architectures ("jumprelu", "relu", "topk")."""


def scaled_examples(fraction: float) -> settings:
    """Settings running ``fraction`` of the active profile's ``max_examples`` (at least 2), for costly tests.

    The profile stays the one source of the count: the ``thorough`` profile scales these tests up too,
    where a fixed per-test ``max_examples`` would pin them at the same count under every profile.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    return settings(max_examples=max(2, round(settings.default.max_examples * fraction)))
