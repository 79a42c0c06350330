"""The ``sae-steer-checks`` command line: parser, commands, input adapters and the demo."""

from sae_steer_checks.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
