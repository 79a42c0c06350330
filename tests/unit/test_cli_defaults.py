"""The train-sae command's defaults are the recipe of TrainConfig (the bundled SAE's recipe)."""

from __future__ import annotations

from sae_steer_checks.cli.commands import build_parser
from sae_steer_checks.train import TrainConfig


def test_train_sae_defaults_match_the_train_config() -> None:
    args = build_parser().parse_args(["train-sae", "--layer", "10", "--out", "x"])
    config = TrainConfig()
    assert args.width == config.width
    assert args.k == config.k
    assert args.l0_coefficient == config.l0_coefficient
    assert args.epochs == config.epochs
    assert args.architecture == config.architecture
    assert tuple(args.corpora) == config.corpora
