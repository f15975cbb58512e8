#!/usr/bin/env bash
# The main job on the embedded demo data, on a fresh machine: set-up, then `wmhda demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "synth,plots"
.venv/bin/wmhda demo --out "${1:-demo}"
