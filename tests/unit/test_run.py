"""diagnostics.run: run_checks, its config and its JSON report."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace

import pytest
import torch

from sae_steer_checks.diagnostics.run import CheckConfig, run_checks
from sae_steer_checks.sae.protocol import encode_in_sae_space, vector_to_sae_space
from sae_steer_checks.synthetic import WorldConfig, build_world
from tests.helpers.hand_saes import make_sae, orthonormal_rows
from tests.helpers.planted import CHEAP, PlantedCheck

STABLE = {
    "norm": {"steering_norm", "activation_norm_median", "ratio", "percentile"},
    "bias": {"top_k", "top_features_vector", "top_features_zero", "overlap", "decoder_bias_subtracted"},
    "negative_leaning": {
        "fraction",
        "n_active",
        "significant_fraction",
        "n_significant",
        "dropped_by_encoder",
    },
    "aligned_pairs": {"threshold", "pairs", "spurious"},
    "retention": {"multipliers", "slopes", "ratio_sae", "ratio_signed"},
}


@pytest.fixture(scope="module")
def world_inputs() -> tuple:
    world = build_world(WorldConfig(d_model=64, d_sae=192, seed=1))
    pos, neg = world.sample_contrastive(120)
    acts = world.sample_activations(200)
    return world, pos, neg, acts


def test_report_has_the_stable_keys_and_is_deterministic(planted_check: PlantedCheck) -> None:
    c = planted_check
    a = c.result
    b = run_checks(
        c.world.sae,
        c.vector.clone(),
        c.pos.clone(),
        c.neg.clone(),
        c.activations.clone(),
        score_fn=c.world.item_scores,
        config=c.config,
    )
    report = a.to_report()
    assert "schema_version" not in report  # added by report.build_report with the verdicts
    for section, keys in STABLE.items():
        assert keys <= set(report[section]), section
    assert {"sae", "signed"} <= set(report["decompositions"])
    assert {"cosine", "rel_error", "l0", "n_negative"} <= set(report["decompositions"]["signed"])
    assert set(report["retention"]["slopes"]) >= {"original", "sae", "signed"}
    assert {"versions", "sae", "d_model", "d_sae"} <= set(report["provenance"])
    assert report["provenance"]["seed"] == 0  # every null draw is seeded by CheckConfig.seed
    assert a.to_json() == b.to_json()
    assert json.loads(a.to_json()) == json.loads(json.dumps(report))
    pair = report["aligned_pairs"]["pairs"][0]
    assert type(pair["feature"]) is int
    assert type(pair["cosine"]) is float
    with pytest.raises(FrozenInstanceError):
        a.norm = None  # type: ignore[misc]


def test_zero_vector_gives_a_defined_report(world_inputs: tuple) -> None:
    world, pos, neg, acts = world_inputs
    result = run_checks(
        world.sae, torch.zeros(64), pos, neg, acts, score_fn=world.behaviour_score, config=CHEAP
    )
    report = json.loads(result.to_json())
    assert report["norm"]["steering_norm"] == 0.0
    assert report["bias"]["overlap"] == 1.0
    assert report["decompositions"]["signed"]["l0"] == 0
    assert report["decompositions"]["signed"]["rel_error"] is None
    assert report["retention"]["ratio_sae"] is None


def test_low_precision_sae_and_inputs_match_float32(world_inputs: tuple) -> None:
    world, pos, neg, acts = world_inputs
    v = (pos - neg).mean(0)
    full = run_checks(world.sae, v, pos, neg, acts, config=CHEAP).to_report()
    low_world = build_world(WorldConfig(d_model=64, d_sae=192, seed=1), dtype=torch.bfloat16)
    low_inputs = (v.bfloat16(), pos.bfloat16(), neg.bfloat16(), acts.bfloat16())
    low = run_checks(low_world.sae, *low_inputs, config=CHEAP).to_report()
    assert [f["feature"] for f in low["bias"]["top_features_zero"]] == [
        f["feature"] for f in full["bias"]["top_features_zero"]
    ]
    assert low["provenance"]["sae"]["dtype"] == "bfloat16"


def test_bad_inputs_name_the_argument(world_inputs: tuple) -> None:
    world, pos, neg, acts = world_inputs
    v = (pos - neg).mean(0)
    with pytest.raises(ValueError, match="vector must have shape \\[64\\]"):
        run_checks(world.sae, torch.zeros(63), pos, neg)
    with pytest.raises(ValueError, match="pair up row by row"):
        run_checks(world.sae, v, pos, neg[:-1])
    with pytest.raises(ValueError, match="neg must have shape"):
        run_checks(world.sae, v, pos, neg[:, :10])
    with pytest.raises(ValueError, match="pos must have at least 1 row"):
        run_checks(world.sae, v, pos[:0], neg[:0])
    with pytest.raises(ValueError, match="activations must be finite"):
        run_checks(world.sae, v, pos, neg, torch.full_like(acts, float("nan")))
    with pytest.raises(TypeError, match="lacks W_enc"):
        run_checks(object(), v, pos, neg)
    with pytest.raises(ValueError, match="signed_method must be one of"):
        CheckConfig(signed_method="lasso")
    with pytest.raises(ValueError, match="alpha must be"):
        CheckConfig(alpha=0.0)


def test_run_time_normalisation_is_applied_to_the_vector() -> None:
    W = orthonormal_rows(4, 9, seed=0)
    sae = make_sae(W, torch.tensor([1.0, 0.0, 0.0, 0.0]), architecture="relu")
    sae.cfg.normalize_activations = "constant_norm_rescale"
    sae._setup_activation_normalization()
    acts = 30.0 * torch.ones(10, 9) / 3.0  # norm 30: the SAE rescales to norm sqrt(9) = 3
    v = 2.0 * W[1]
    v_sae = vector_to_sae_space(sae, v, acts)
    assert float(v_sae.norm()) == pytest.approx(0.2, abs=1e-6)
    f = encode_in_sae_space(sae, torch.stack([v_sae, torch.zeros(9)]))
    assert f[1, 0] == pytest.approx(1.0)
    assert f[0, 1] == pytest.approx(0.2, abs=1e-6)
    assert torch.isfinite(f).all()
    with pytest.raises(ValueError, match="activations are needed"):
        vector_to_sae_space(sae, v)


def test_retention_multipliers_come_from_the_config(world_inputs: tuple) -> None:
    world, pos, neg, acts = world_inputs
    v = (pos - neg).mean(0)
    ms = (-3.0, 0.0, 0.5, 3.0)
    result = run_checks(
        world.sae, v, pos, neg, acts, score_fn=world.behaviour_score, config=replace(CHEAP, multipliers=ms)
    )
    assert result.retention is not None
    assert result.retention.multipliers == ms
    assert result.to_report()["retention"]["multipliers"] == list(ms)
    with pytest.raises(ValueError, match="multipliers must hold two distinct values"):
        CheckConfig(multipliers=(1.0, 1.0))
