"""Loading SAEs: load_sae gives the SAE, load_sae_metadata where it came from; errors name the argument."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from sae_steer_checks._provenance import file_sha256
from sae_steer_checks._validate import InputError
from sae_steer_checks.sae.loading import load_sae, load_sae_metadata, parse_sae_spec, sae_layer
from sae_steer_checks.synthetic import WorldConfig, build_world

GEMMA_SCOPE = "gemma-scope-2b-pt-res/layer_14/width_16k/average_l0_173"


@pytest.fixture(scope="module")
def sae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    world = build_world(WorldConfig(d_model=64, d_sae=128))
    path = tmp_path_factory.mktemp("sae")
    world.sae.save_model(path)
    return path


def test_sae_folder_loads_the_same_weights(sae_dir: Path) -> None:
    world = build_world(WorldConfig(d_model=64, d_sae=128))
    sae = load_sae(sae_dir)  # a Path or a str
    assert torch.equal(sae.W_dec.detach(), world.sae.W_dec.detach())
    assert torch.equal(load_sae(str(sae_dir)).W_enc.detach(), sae.W_enc.detach())


def test_dtype_and_device_are_the_ones_asked_for(sae_dir: Path) -> None:
    sae = load_sae(sae_dir, device=torch.device("cpu"), dtype=torch.float16)
    assert sae.W_dec.dtype == torch.float16
    assert sae.W_dec.device.type == "cpu"


def test_metadata_of_a_folder_is_its_path_and_weight_hash(sae_dir: Path) -> None:
    assert load_sae_metadata(sae_dir) == {
        "source": "folder",
        "path": str(sae_dir),
        "weights_sha256": file_sha256(sae_dir / "sae_weights.safetensors"),
    }


def test_metadata_of_a_release_is_its_release_and_id() -> None:
    assert load_sae_metadata(GEMMA_SCOPE) == {
        "source": "release",
        "release": "gemma-scope-2b-pt-res",
        "sae_id": "layer_14/width_16k/average_l0_173",
    }


def test_sae_spec_errors_name_the_argument(tmp_path: Path, sae_dir: Path) -> None:
    assert parse_sae_spec(str(sae_dir)).kind == "folder"
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "cfg.json").write_text("{}")
    with pytest.raises(
        InputError,
        match=rf"^sae {re.escape(str(tmp_path / 'half'))}: the folder lacks sae_weights\.safetensors",
    ):
        load_sae(tmp_path / "half")
    with pytest.raises(InputError, match="got a file"):
        parse_sae_spec(str(sae_dir / "cfg.json"))
    with pytest.raises(
        InputError, match=r"^sae no-such-release/layer_0: no such folder, and not a known sae-lens"
    ):
        load_sae_metadata("no-such-release/layer_0")
    with pytest.raises(InputError, match="unknown id 'layer_99/nothing' in sae-lens release"):
        parse_sae_spec("gemma-scope-2b-pt-res/layer_99/nothing")
    # a command line names its option instead
    with pytest.raises(InputError, match=r"^--sae no-such-release/layer_0: "):
        load_sae("no-such-release/layer_0", name="--sae")


def test_release_id_with_slashes_is_split_at_the_release() -> None:
    source = parse_sae_spec(GEMMA_SCOPE)
    assert source.kind == "release"
    assert source.release == "gemma-scope-2b-pt-res"
    assert source.sae_id == "layer_14/width_16k/average_l0_173"


def test_a_load_failure_is_one_line_and_keeps_its_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cause = OSError("offline: not in the local cache\nsecond line")

    def refuse(*args: object, **kwargs: object) -> None:
        raise cause

    monkeypatch.setattr("sae_lens.SAE.from_pretrained", refuse)
    with pytest.raises(InputError) as info:
        load_sae(GEMMA_SCOPE)
    assert (
        str(info.value)
        == f"sae {GEMMA_SCOPE}: could not load the SAE (OSError: offline: not in the local cache)"
    )
    assert info.value.__cause__ is cause


def test_sae_layer_reads_the_layer_or_the_hook_name() -> None:
    def sae(**metadata: object) -> SimpleNamespace:
        return SimpleNamespace(cfg=SimpleNamespace(metadata=SimpleNamespace(**metadata)))

    assert sae_layer(sae(layer=10)) == 10
    assert sae_layer(sae(hook_name="blocks.14.hook_resid_post")) == 14
    with pytest.raises(ValueError, match="names no layer"):
        sae_layer(sae(hook_name="blocks.14.hook_mlp_out"))
    with pytest.raises(ValueError, match="names no layer"):
        sae_layer(sae(layer=True))


def test_sae_layer_of_a_trained_sae_comes_from_its_cfg_json(sae_dir: Path) -> None:
    from sae_lens.saes.sae import SAEMetadata

    sae = load_sae(sae_dir)
    sae.cfg.metadata = SAEMetadata(hook_name="blocks.3.hook_resid_post")
    assert sae_layer(sae) == 3
