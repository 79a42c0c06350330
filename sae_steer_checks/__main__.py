"""``python -m sae_steer_checks``: the same command line as ``sae-steer-checks``."""

from __future__ import annotations

import sys

from sae_steer_checks.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
