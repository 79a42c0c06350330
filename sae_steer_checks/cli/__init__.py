"""The ``sae-steer-checks`` command line: parser, commands, input adapters and the demo."""

from sae_steer_checks.cli.commands import main
from sae_steer_checks.cli.parser import build_parser

__all__ = ["build_parser", "main"]
