"""One calibration world through ``run_checks`` with its defaults, and the population figures it estimates.

Shared by ``bench/calibration.py`` (the full grid) and ``tests/property/test_calibration_nulls.py``
(the fast tier's cheaper version).
"""

from __future__ import annotations

from typing import Any

import torch

from sae_steer_checks import CheckConfig, run_checks
from sae_steer_checks.diagnostics.decompose import omp
from sae_steer_checks.diagnostics.spurious import largest_shares
from sae_steer_checks.report.write import build_report
from sae_steer_checks.sae.protocol import decode_features, encode_activations, encode_in_sae_space
from tests.helpers.hard_worlds import hard_world
from tests.helpers.readouts import Side, with_readout

VERDICTS = {
    "norm": "out of distribution",
    "bias": "encoder bias",
    "leaning": "negative projections lost",
    "pairs": "negatively aligned pairs",
    "decomposition": "signed decomposition",
    "ablation": "lost projections carry the behaviour",
}
"""Verdict key -> its mechanism (the report's ``mechanism``, lower-cased)."""


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else 0.0


def truths(world_seed: int, width: str, effect: bool) -> dict[str, float]:
    """The figures of the population CAA vector mu (the world's planted steering vector)."""
    hw = hard_world(world_seed, width=width, n_items=2000, effect=effect, swapped=False)
    sae = hw.sae
    mu = hw.world.truth.steering_vector.to(torch.float32) if effect else torch.zeros(hw.vector.shape)
    codes = encode_in_sae_space(sae, torch.stack([mu, torch.zeros_like(mu)]))
    f_mu, f_0 = codes[0], codes[1]
    total = float(f_mu.sum())
    mass = float(torch.minimum(f_mu, f_0).clamp_min(0).sum()) / total if total > 0 else 0.0
    out = {"norm": float(mu.norm()), "bias": mass}
    c_pos = encode_activations(sae, hw.pos)
    c_neg = encode_activations(sae, hw.neg)
    fires = torch.cat([c_pos, c_neg]) > 0
    rate = fires.float().mean(0)
    negative = (c_pos - c_neg).mean(0) < 0
    out["pairs"] = float(
        largest_shares(sae.W_dec, sae.W_enc, mu[None], f_mu[None], rate, negative=negative & (rate > 0))[0]
    )
    if effect:
        W_dec = sae.W_dec.detach()
        recon = decode_features(sae, f_mu[None])[0]  # the "sae" account the verdict judges
        k = max(1, min(int((f_mu > 0).sum()), 64))
        fit = omp(W_dec, mu[None], k)
        out["decomposition"] = _cos(mu, fit.reconstruct(W_dec)[0]) - _cos(mu, recon)
    return out


def one_world(
    width: str, n_items: int, effect: bool, seed: int, world_seed: int, readout: Side | None = None
) -> dict[str, Any]:
    """Statuses and intervals of one sample of one world, through ``run_checks`` with its defaults.

    With ``readout`` the behaviour reads that leaning side of the planted vector
    (:func:`~tests.helpers.readouts.with_readout`) and is scored per item, so retention and the
    ablation run too; without it there is no score and both are ``not run``.
    """
    hw = hard_world(world_seed, sample_seed=seed, width=width, n_items=n_items, effect=effect)
    score_fn = None if readout is None else with_readout(hw.world, readout).item_scores
    result = run_checks(
        hw.sae, hw.vector, hw.pos, hw.neg, hw.activations, item_ids=hw.item_ids, score_fn=score_fn,
        config=CheckConfig(seed=seed),
    )  # fmt: skip
    report = build_report(result)
    by_name = {v["mechanism"].lower(): v["status"] for v in report["verdicts"]}
    statuses = {key: by_name[name] for key, name in VERDICTS.items()}
    norm = report["norm"]
    nulls = report["decomposition_nulls"] or {}
    intervals = {
        "norm": norm["interval"],
        "bias": report["bias"]["mass_interval"],
        "pairs": report["aligned_pairs"]["share_interval"],
        "decomposition": nulls.get("verdict_gap_interval"),
    }
    return {"statuses": statuses, "intervals": intervals}
