#!/usr/bin/env bash
# Set up and pass the tests: the fast CPU tier, the real-model tier on Gemma 3 270M, lint and type checks.
# Each nox session builds its own virtual environment with the versions pinned in constraints.txt, torch first.
# A tier that collects no test fails (pytest exit code 5 is not treated as success).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "nox>=2024.3"
python -m nox -s tests realmodel lint typecheck
