"""SAE training on planted sparse data and on a tiny random model (fast, nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from sae_lens import JumpReLUSAE, TopKSAE
from torch import Tensor

from sae_steer_checks.data.corpus import CORPORA, split_corpus
from sae_steer_checks.sae.loading import load_sae_folder
from sae_steer_checks.train import TrainConfig, collect_activations, evaluate_sae, fit_sae, train_sae
from tests.helpers.tiny_lm import tiny_model, tiny_tokenizer

D_IN = 16


def _planted(n: int, seed: int, offset: float = 0.0) -> Tensor:
    """Sparse sums of 24 fixed directions (3 active per row) on top of a shared offset."""
    generator = torch.Generator().manual_seed(seed)
    fixed = torch.Generator().manual_seed(1234)
    directions = torch.nn.functional.normalize(torch.randn(24, D_IN, generator=fixed), dim=-1)
    mean = torch.randn(D_IN, generator=fixed) * offset / D_IN**0.5
    active = torch.rand(n, 24, generator=generator).argsort(dim=-1)[:, :3]
    coefficients = torch.zeros(n, 24).scatter_(1, active, 1.0 + torch.rand(n, 3, generator=generator))
    return mean + 10.0 * coefficients @ directions


_FAST = {"width": 32, "batch_size": 256, "epochs": 8.0, "target_l0": 4.0, "lr": 3e-3}


@pytest.fixture(scope="module")
def planted_sae() -> tuple[JumpReLUSAE, TrainConfig]:
    config = TrainConfig(**_FAST)
    return fit_sae(_planted(4096, seed=0, offset=5000.0), config), config


def test_fit_recovers_planted_data_with_large_offset(planted_sae: tuple) -> None:
    sae, _ = planted_sae
    assert isinstance(sae, JumpReLUSAE)
    assert sae.cfg.apply_b_dec_to_input is False  # Gemma Scope's encoding convention
    assert sae.W_dec.dtype == torch.float32
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(32), rtol=0, atol=1e-5)
    # the offset (norm 5000, far above the signal) is folded into the weights: raw inputs work
    quality = evaluate_sae(sae, _planted(2048, seed=1, offset=5000.0))
    # predicting the mean scores 0 and an unfolded offset far below; 8 epochs reach ~0.64
    assert quality.explained_variance > 0.5
    assert 1.0 <= quality.mean_l0 <= 12.0
    assert quality.n_tokens == 2048


def test_same_seed_same_sae() -> None:
    data = _planted(1024, seed=0)
    config = TrainConfig(**{**_FAST, "epochs": 1.0})
    first, again = fit_sae(data, config), fit_sae(data, config)
    for name, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name


def test_input_scale_is_folded_exactly() -> None:
    # scaling the inputs by a power of two leaves the scaled training data bit-identical, so the
    # saved SAE's features and reconstructions must scale by exactly that factor
    data = _planted(1024, seed=0, offset=50.0)
    config = TrainConfig(**{**_FAST, "epochs": 1.0})
    base, scaled = fit_sae(data, config), fit_sae(data * 1024.0, config)
    probe = _planted(256, seed=2, offset=50.0)
    base_feats = base.encode(probe)
    torch.testing.assert_close(scaled.encode(probe * 1024.0), base_feats * 1024.0)
    torch.testing.assert_close(scaled.decode(scaled.encode(probe * 1024.0)), base(probe) * 1024.0)
    assert (base_feats != 0).any()


def test_topk_option_keeps_exactly_k_features() -> None:
    config = TrainConfig(**{**_FAST, "epochs": 2.0, "architecture": "topk", "k": 5})
    sae = fit_sae(_planted(2048, seed=0, offset=100.0), config)
    assert isinstance(sae, TopKSAE)
    feats = sae.encode(_planted(512, seed=3, offset=100.0))
    assert ((feats != 0).sum(-1) <= 5).all()
    assert evaluate_sae(sae, _planted(512, seed=3, offset=100.0)).mean_l0 > 4.0


def test_evaluate_sae_on_a_hand_built_sae() -> None:
    # identity dictionary: perfect reconstruction, L0 = nonzero count, features never used are dead
    sae = JumpReLUSAE.from_dict(
        {"architecture": "jumprelu", "d_in": 4, "d_sae": 6, "apply_b_dec_to_input": False}
    )
    with torch.no_grad():
        sae.W_enc.zero_()
        sae.W_enc[:, :4] = torch.eye(4)
        sae.W_dec.zero_()
        sae.W_dec[:4] = torch.eye(4)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.threshold.fill_(0.5)
    x = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 3.0, 1.0, 0.0]])
    quality = evaluate_sae(sae, x)
    assert quality.explained_variance == pytest.approx(1.0)
    assert quality.mean_l0 == pytest.approx(2.0)
    assert quality.dead_fraction == pytest.approx(3 / 6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 0}, "width"),
        ({"architecture": "gated"}, "architecture"),
        ({"architecture": "topk", "k": 40, "width": 32}, "k must be"),
        ({"lr": -1.0}, "lr"),
        ({"epochs": 0.0}, "epochs"),
        ({"layer": -1}, "layer"),
        ({"revive_coefficient": float("nan")}, "revive_coefficient"),
    ],
)
def test_bad_config_is_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_fit_refuses_too_few_rows() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        fit_sae(torch.zeros(10, D_IN), TrainConfig(batch_size=256))


_DOCS = [" ".join(f"w{i} {j}" for j in range(40)) + "." for i in range(12)]


def test_train_sae_end_to_end_saves_recipe_and_quality(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(CORPORA, "tinytext", lambda: list(_DOCS))
    model_dir = tmp_path / "tiny-llama"
    tiny_model("llama", n_layers=2).save_pretrained(model_dir)
    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(model_dir)
    config = TrainConfig(
        layer=1, corpora=("tinytext",), window=32, heldout_fraction=0.2, **{**_FAST, "epochs": 2.0}
    )
    result = train_sae(
        tmp_path / "sae", config, model=str(model_dir), model_dtype=torch.float32, progress=False
    )
    assert result.path == tmp_path / "sae"
    meta = json.loads((result.path / "cfg.json").read_text())["metadata"]
    assert meta["layer"] == 1
    assert meta["hook_name"] == "blocks.1.hook_resid_post"
    assert meta["width"] == 32
    assert meta["seed"] == 0
    assert meta["corpus"] == ["tinytext"]
    assert meta["n_train_tokens"] == result.n_train_tokens > 0
    assert meta["explained_variance"] == result.heldout.explained_variance
    assert meta["mean_l0"] == result.heldout.mean_l0
    assert meta["dead_fraction"] == result.heldout.dead_fraction
    assert meta["recipe"]["width"] == 32
    # the reloaded SAE reproduces the recorded held-out figures on freshly collected activations
    sae = load_sae_folder(result.path)
    assert isinstance(sae, JumpReLUSAE)
    split = split_corpus(tokenizer, ["tinytext"], window=32, heldout_fraction=0.2, seed=0)
    model = tiny_model("llama", n_layers=2)
    heldout = collect_activations(model, split.heldout, 1)
    again = evaluate_sae(sae, heldout)
    assert again.explained_variance == pytest.approx(meta["explained_variance"], abs=1e-6)
    assert again.mean_l0 == pytest.approx(meta["mean_l0"])


def test_load_sae_folder_missing_dir_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cfg\.json"):
        load_sae_folder(tmp_path)
