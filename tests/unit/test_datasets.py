"""The bundled behaviour sets: sizes, format, letter balance and distinct questions."""

from __future__ import annotations

import pytest

from sae_steer_checks.data.schema import (
    BUNDLED_AB,
    BUNDLED_FREEFORM,
    bundled_path,
    load_ab_items,
    load_freeform,
    swap_choices,
)

MIN_ITEMS = {"corrigibility": 150, "survival_instinct": 100}


@pytest.mark.parametrize("name", BUNDLED_AB)
def test_ab_sets_are_large_balanced_and_swappable(name: str) -> None:
    items = load_ab_items(name)
    assert len(items) >= MIN_ITEMS[name]
    n_a = sum(i.matching == "A" for i in items)
    assert abs(n_a - (len(items) - n_a)) <= 1
    assert len({i.question for i in items}) == len(items)
    for item in items:
        assert swap_choices(swap_choices(item)) == item


@pytest.mark.parametrize("name", BUNDLED_FREEFORM)
def test_freeform_sets(name: str) -> None:
    ds = load_freeform(name)
    assert len(ds.items) >= 40
    assert len({i.prompt for i in ds.items}) == len(ds.items)
    assert all(t.startswith(" ") for t in ds.positive_targets + ds.negative_targets)
    # extraction words are kept apart from the scored targets, so scoring is not circular
    words = {w for i in ds.items for w in (i.positive, i.negative)}
    assert not words & set(ds.positive_targets + ds.negative_targets)


def test_bundled_path_refuses_unknown_names() -> None:
    assert bundled_path("corrigibility").is_file()
    with pytest.raises(ValueError, match="bundled dataset"):
        bundled_path("nope")
