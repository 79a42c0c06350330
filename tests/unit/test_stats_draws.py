from __future__ import annotations

import pytest
import torch

from sae_steer_checks.stats.draws import stream_seed, streams, streams_from

NAMES = ("draws", "leaning", "nulls", "retention")


def test_every_stream_draws_differently() -> None:
    gens = streams(0, NAMES)
    draws = {name: torch.randn(64, generator=g) for name, g in gens.items()}
    for a in NAMES:
        for b in NAMES:
            if a < b:
                assert not torch.allclose(draws[a], draws[b]), (a, b)


def test_a_stream_depends_on_the_seed_and_its_name_only() -> None:
    assert stream_seed(3, "nulls") == stream_seed(3, "nulls")
    assert stream_seed(3, "nulls") != stream_seed(4, "nulls")
    # adding a stream leaves the others where they were
    one = torch.randn(8, generator=streams(3, ["nulls"])["nulls"])
    two = torch.randn(8, generator=streams(3, ["draws", "nulls", "x"])["nulls"])
    assert torch.equal(one, two)


def test_stream_seeds_fit_a_torch_generator() -> None:
    for name in NAMES:
        seed = stream_seed(2**40, name)
        assert 0 <= seed < 2**63
        torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seeds_are_named(seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        stream_seed(seed, "x")  # type: ignore[arg-type]


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct"):
        streams(0, ["a", "a"])


def test_streams_from_a_seed_or_a_generator() -> None:
    names = ["a", "b"]
    for seed in (None, 0, 7):
        ours, ref = streams_from(seed, names), streams(seed or 0, names)
        for n in names:
            assert torch.equal(torch.rand(3, generator=ours[n]), torch.rand(3, generator=ref[n]))
    parent = torch.Generator().manual_seed(1)
    first = streams_from(parent, names)
    seeds = torch.randint(0, 2**62, (2,), generator=torch.Generator().manual_seed(1)).tolist()
    for n, seed in zip(names, seeds, strict=True):  # each stream seeded by one draw of the parent, in order
        expected = torch.rand(3, generator=torch.Generator().manual_seed(int(seed)))
        assert torch.equal(torch.rand(3, generator=first[n]), expected)
    assert not torch.equal(torch.rand(3, generator=first["a"]), torch.rand(3, generator=first["b"]))
    with pytest.raises(ValueError, match="distinct"):
        streams_from(torch.Generator(), ["a", "a"])


def test_run_checks_nulls_share_no_draws() -> None:
    """Retention's random directions are not the decomposition null's isotropic vectors (one run seed)."""
    from sae_steer_checks import CheckConfig, WorldConfig, build_world, run_checks
    from sae_steer_checks.diagnostics.nulls import null_vectors

    world = build_world(WorldConfig(d_model=32, d_sae=64, n_aligned_pairs=0, seed=0))
    pos, neg = world.sample_contrastive(12, torch.Generator().manual_seed(1))
    acts = world.sample_activations(64, torch.Generator().manual_seed(2))
    v = (pos - neg).mean(0)
    seen: list[torch.Tensor] = []

    def score(u: torch.Tensor) -> torch.Tensor:
        seen.append(u.detach().clone())
        return world.item_scores(u, n_items=8)

    config = CheckConfig(k_max=8, signed_k=8, n_boot=20, seed=5)
    run_checks(world.sae, v, pos, neg, acts, score_fn=score, config=config)
    directions = torch.nn.functional.normalize(torch.stack([u for u in seen if float(u.norm()) > 0]), dim=1)
    iso = null_vectors(world.sae, 1.0, n_null=config.n_null, generator=streams(5, ["nulls"])["nulls"])
    assert float((directions @ iso["isotropic"].T).abs().max()) < 0.99
    # seeding both from the run seed itself, as one generator each, would repeat the draws
    same = null_vectors(world.sae, 1.0, n_null=config.n_null, generator=5)["isotropic"]
    assert float((same @ iso["isotropic"].T).abs().max()) < 0.99
    again = null_vectors(world.sae, 1.0, n_null=config.n_null, generator=5)["isotropic"]
    assert torch.equal(same, again)
