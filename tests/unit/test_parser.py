"""cli.parser: train-sae's defaults are TrainConfig's (the bundled SAE's recipe); --device: CUDA if any."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sae_steer_checks.cli.commands import train_config
from sae_steer_checks.cli.parser import TrainDefault, build_parser
from sae_steer_checks.train import TrainConfig


def test_train_sae_defaults_are_the_train_config() -> None:
    args = build_parser().parse_args(["train-sae", "--layer", "10", "--out", "x"])
    config = TrainConfig()
    for name in ("width", "k", "l0_coefficient", "epochs", "architecture", "corpora"):
        default = getattr(args, name)
        assert isinstance(default, TrainDefault), name
        assert default.value() == getattr(config, name), name
    assert train_config(args) == dataclasses.replace(config, layer=10, seed=0)


def test_given_options_override_the_train_config() -> None:
    argv = ["train-sae", "--layer", "3", "--out", "x", "--width", "64", "--corpora", "lee", "--seed", "5"]
    config = train_config(build_parser().parse_args(argv))
    assert (config.layer, config.width, config.corpora, config.seed) == (3, 64, ("lee",), 5)
    assert config.k == TrainConfig().k


def test_help_shows_the_train_config_defaults() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices["train-sae"].format_help()  # type: ignore[attr-defined]
    assert f"(default {TrainConfig().width})" in text
    assert "(default: lee pydoc)" in text


@pytest.mark.parametrize("command", ["run", "diagnose", "extract", "train-sae", "demo"])
def test_device_defaults_to_cuda_when_available(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sae_steer_checks.cli.commands import _device

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    parser = sub.choices[command]  # type: ignore[attr-defined]
    assert parser.get_default("device") is None
    assert "default: cuda when available, else cpu" in " ".join(parser.format_help().split())
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert _device(None) == torch.device("cuda")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert _device(None) == torch.device("cpu")
    assert _device("cpu") == torch.device("cpu")
