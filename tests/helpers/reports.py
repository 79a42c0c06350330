"""An example report for the schema, verdict and Markdown tests: a planted run's keys, the study's figures."""

from __future__ import annotations

import copy
import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def _planted_sections() -> dict[str, Any]:
    """``CheckResult.to_report()`` of a small planted-world run: every key the diagnostics write."""
    from sae_steer_checks.cli.inputs import planted_inputs
    from sae_steer_checks.diagnostics.run import CheckConfig, run_checks

    c = planted_inputs(seed=0, n_pairs=48, n_activations=256)
    config = CheckConfig(multipliers=(-1.0, 0.0, 1.0), n_null=19, n_boot=50, leaning_n_perm=500, k_max=16)
    result = run_checks(c.sae, c.vector, c.pos, c.neg, c.activations, score_fn=c.score_fn, config=config)
    return result.to_report()


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def example_report() -> dict[str, Any]:
    """Report sections shaped like ``CheckResult.to_report()``, with the study's Gemma 2 2B figures.

    The keys come from a real (planted-world) run, so the example cannot drift from the schema; the
    figures named in the study are written over them.
    """
    return _merge(_planted_sections(), _study_figures())


def _study_figures() -> dict[str, Any]:
    return {
        "provenance": {
            "model": "google/gemma-2-2b",
            "layer": 14,
            "dataset": "corrigible-neutral-HHH.json",
            "dataset_sha256": "ab" * 32,
            "sae_source": {
                "source": "release",
                "release": "gemma-scope-2b-pt-res",
                "sae_id": "layer_14/width_16k/average_l0_173",
            },
            "versions": {"torch": "2.13.0", "sae-lens": "6.54.12"},
            "seed": 0,
            "device": "cuda",
            "dtype": "float32",
            "d_model": 2304,
            "d_sae": 16384,
            "sae": {"class": "SAE", "architecture": "jumprelu"},
            "n_pairs": 340,
            "n_activations": 200000,
            "activation_source": "activations",
            "reconstruction": "decoder-bias-free feature part decode(f) - decode(0)",
        },
        "norm": {
            "steering_norm": 12.5,
            "activation_norm_median": 150.0,
            "quantiles": {"0.01": 120.0, "0.5": 150.0, "0.99": 300.0},
            "ratio": 12.5 / 150.0,
            "percentile": 0.0,
            "n_activations": 200000,
            "bound_percentile": 1.0,
            "bound": 120.0,
            "population_norm": 11.0,
            "interval": [10.0, 12.0],
            "verdict_interval": [10.0, 12.5],
            "verdict": "problem",
        },
        "bias": {
            "top_k": 5,
            "top_features_vector": [
                {"feature": 4888, "value": 95.04},
                {"feature": 15603, "value": 36.34},
                {"feature": 12695, "value": 22.64},
                {"feature": 7589, "value": 18.89},
                {"feature": 2350, "value": 11.35},
            ],
            "top_features_zero": [
                {"feature": 4888, "value": 89.06},
                {"feature": 15603, "value": 35.94},
                {"feature": 7589, "value": 19.80},
                {"feature": 2350, "value": 10.74},
                {"feature": 101, "value": 3.0},
            ],
            "overlap": 4 / 6,
            "mass_in_zero": 0.81,
            "decoder_bias_subtracted": False,
            "same_support": False,
            "l0_vector": 45,
            "l0_zero": 40,
            "other_convention": {
                "decoder_bias_subtracted": True,
                "overlap": 1.0,
                "mass_in_zero": 0.97,
                "top_features_vector": [{"feature": 4888, "value": 86.2}],
                "top_features_zero": [{"feature": 4888, "value": 85.0}],
                "same_support": True,
                "l0_vector": 1,
                "l0_zero": 1,
            },
            "delta_top_features": [{"feature": 14004, "value": 1.5}],
        },
        "negative_leaning": {
            "fraction": 0.512,
            "n_active": 1000,
            "n_negative": 512,
            "significant_fraction": 0.4,
            "n_significant": 30,
            "n_significant_negative": 12,
            "alpha": 0.05,
            "n_pairs": 340,
            "dropped_by_encoder": [14004, 77],
        },
        "aligned_pairs": {
            "threshold": -0.5,
            "n_pairs": 3,
            "n_live": 1,
            "n_dead": 2,
            "n_mixed": 0,
            "truncated": False,
            "pairs": [
                {"feature": 14004, "partner": 3517, "cosine": -0.82, "status": "live"},
                {"feature": 5, "partner": 6, "cosine": -0.7, "status": "dead"},
                {"feature": 8, "partner": 9, "cosine": -0.6, "status": "dead"},
            ],
            "max_share": 0.9,
            "share_interval": [0.7, 0.95],
            "share_null": {"mean": 0.85, "q05": 0.0, "q95": 1.0, "n": 32, "percentile": 60.0},
            "share_reference": {"mean": 0.01, "q05": 0.0, "q95": 0.05, "n": 200000, "percentile": 100.0},
            "share_bound": 0.5,
            "verdict": "problem",
            "spurious": [
                {
                    "feature": 3517,
                    "explained_by": 14004,
                    "share": 0.9,
                    "cosine": -0.82,
                    "value": 4.2,
                    "partner_projection": -1.0,
                }
            ],
            "bias_explained": [4888, 15603],
            "unexplained": [],
            "sign_conflicts": [
                {"feature": 4888, "value": 95.0, "projection": -0.3, "signed_coefficient": -0.1}
            ],
            "rare_rate": 0.05,
        },
        "decompositions": {
            "sae": _dec(0.31, 0.95, 45, 0, "sae_encoder"),
            "signed": {**_dec(0.98, 0.2, 32, 12, "omp"), "k": 32},
            "omp": {**_dec(0.98, 0.2, 32, 12, "omp"), "k": 32},
            "gradient_pursuit": {**_dec(0.97, 0.25, 32, 11, "gradient_pursuit"), "k": 32},
        },
        "retention": {
            "multipliers": [-1.0, 0.0, 1.0],
            "slopes": {"original": 2.0, "sae": 0.3, "signed": 1.9},
            "stderr": {"original": 0.1, "sae": 0.05, "signed": None},
            "scores": {"original": [-2.0, 0.0, 2.0], "sae": [-0.3, 0.0, 0.3], "signed": [-1.9, 0, 1.9]},
            "ratio_sae": 0.15,
            "ratio_signed": 0.95,
        },
    }


def _dec(cosine: float, rel_error: float, l0: int, n_negative: int, method: str) -> dict[str, Any]:
    return {
        "cosine": cosine,
        "rel_error": rel_error,
        "error_norm": rel_error * 12.5,
        "l0": l0,
        "n_negative": n_negative,
        "method": method,
    }
