"""A plain-object SAE (no sae-lens, no nn.Module) is an SAE to every entry point, with sae-lens's answers.

The plain SAE repeats sae-lens's arithmetic in the same order, so on the same weights every figure of
the report must be identical, not merely close; only the SAE's description (class, architecture) may
differ.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor

from sae_steer_checks.diagnostics import CheckConfig, run_checks
from sae_steer_checks.sae.protocol import (
    SAELike,
    applies_b_dec_to_input,
    decode_features,
    encode_activations,
    encode_in_sae_space,
    validate_sae,
)
from sae_steer_checks.synthetic import PlantedWorld, WorldConfig, build_world


class PlainSAE:
    """A JumpReLU (with ``threshold``) or ReLU SAE in four tensors; a ``cfg`` only if it subtracts b_dec."""

    def __init__(
        self,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        *,
        threshold: Tensor | None = None,
        subtract_b_dec: bool = False,
    ) -> None:
        self.W_enc, self.b_enc, self.W_dec, self.b_dec = W_enc, b_enc, W_dec, b_dec
        self.threshold = threshold
        if subtract_b_dec:
            # the one sae-lens config field the library reads from an SAE that has a config
            self.cfg = SimpleNamespace(apply_b_dec_to_input=True)
        self._subtract = subtract_b_dec

    def encode(self, x: Tensor) -> Tensor:
        """Feature activations ``[..., d_sae]`` of inputs ``[..., d_in]``."""
        x = x.to(self.W_enc.dtype)
        pre = (x - self.b_dec * self._subtract) @ self.W_enc + self.b_enc
        acts = torch.relu(pre)
        if self.threshold is not None:
            acts = acts * (pre > self.threshold).to(acts.dtype)
        return acts

    def decode(self, feature_acts: Tensor) -> Tensor:
        """Reconstruction ``[..., d_in]`` of feature activations ``[..., d_sae]``."""
        return feature_acts @ self.W_dec + self.b_dec


def plain_copy(sae: Any) -> PlainSAE:
    """A :class:`PlainSAE` with the weights (cloned) and encoding convention of a sae-lens SAE."""
    threshold = getattr(sae, "threshold", None)
    return PlainSAE(
        *(getattr(sae, name).detach().clone() for name in ("W_enc", "b_enc", "W_dec", "b_dec")),
        threshold=None if threshold is None else threshold.detach().clone(),
        subtract_b_dec=bool(sae.cfg.apply_b_dec_to_input),
    )


@pytest.fixture(scope="module", params=["jumprelu", "relu"])
def world(request: pytest.FixtureRequest) -> PlantedWorld:
    # jumprelu: Gemma Scope's convention (b_dec not subtracted, so the plain copy has no cfg);
    # relu: sae-lens StandardSAE subtracting b_dec (the plain copy says so through its cfg)
    return build_world(WorldConfig(d_model=48, d_sae=128, architecture=request.param, seed=3))


def test_plain_sae_satisfies_the_protocol_and_validates(world: PlantedWorld) -> None:
    plain = plain_copy(world.sae)
    assert isinstance(plain, SAELike)
    assert not isinstance(plain, torch.nn.Module)
    assert validate_sae(plain) == validate_sae(world.sae) == (48, 128)
    assert applies_b_dec_to_input(plain) == applies_b_dec_to_input(world.sae)
    assert applies_b_dec_to_input(plain) == (world.config.architecture == "relu")


def test_plain_sae_with_a_wrong_shape_is_named() -> None:
    W = torch.randn(8, 16)
    with pytest.raises(ValueError, match=r"b_enc must have shape \[8\]"):
        validate_sae(PlainSAE(W.T.clone(), torch.zeros(7), W, torch.zeros(16)))
    with pytest.raises(TypeError, match="lacks encode, decode"):
        validate_sae(SimpleNamespace(W_enc=W.T, b_enc=torch.zeros(8), W_dec=W, b_dec=torch.zeros(16)))


def test_plain_sae_encodes_and_decodes_as_sae_lens(world: PlantedWorld) -> None:
    plain = plain_copy(world.sae)
    x = world.sample_activations(64, torch.Generator().manual_seed(0))
    f_lens = encode_activations(world.sae, x, batch_size=16)
    f_plain = encode_activations(plain, x, batch_size=16)
    assert f_plain.shape == (64, 128)
    assert int((f_plain > 0).sum()) > 0  # the comparison is not between two zero tensors
    torch.testing.assert_close(f_plain, f_lens, rtol=0, atol=0)
    for subtract in (None, True, False):
        torch.testing.assert_close(
            encode_in_sae_space(plain, x, subtract_b_dec=subtract),
            encode_in_sae_space(world.sae, x, subtract_b_dec=subtract),
            rtol=0,
            atol=0,
        )
    torch.testing.assert_close(
        decode_features(plain, f_lens), decode_features(world.sae, f_lens), rtol=0, atol=0
    )


def _without_sae_description(report: dict[str, Any]) -> dict[str, Any]:
    provenance = {k: v for k, v in report["provenance"].items() if k != "sae"}
    return {**report, "provenance": provenance}


def test_run_checks_gives_the_same_report_for_the_plain_and_the_sae_lens_sae(world: PlantedWorld) -> None:
    pos, neg = world.sample_contrastive(80, torch.Generator().manual_seed(1))
    acts = world.sample_activations(120, torch.Generator().manual_seed(2))
    vector = (pos - neg).mean(dim=0)
    config = CheckConfig(signed_k=8)
    lens = run_checks(world.sae, vector, pos, neg, acts, config=config, block_size=64).to_report()
    plain = run_checks(
        plain_copy(world.sae), vector, pos, neg, acts, config=config, block_size=64
    ).to_report()
    assert _without_sae_description(plain) == _without_sae_description(lens)
    assert plain["provenance"]["sae"]["class"] == "PlainSAE"
    assert (
        plain["provenance"]["sae"]["apply_b_dec_to_input"]
        == lens["provenance"]["sae"]["apply_b_dec_to_input"]
    )
    # the planted world has behaviour features leaning both ways: the reports hold real findings
    assert lens["negative_leaning"]["n_significant"] > 0
