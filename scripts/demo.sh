#!/usr/bin/env bash
# Set up and run the main job on the embedded default; the report lands in ${1:-demo-report}.
# torch comes from constraints.txt (the project's one pin) unless this environment already has one.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch" 2>/dev/null || python -m pip install -q -c constraints.txt torch
python -m pip install -q -e ".[gemma,plots]"
python -m sae_steer_checks demo --out "${1:-demo-report}" --force
