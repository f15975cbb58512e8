#!/usr/bin/env bash
# Rebuild the shipped source model from nothing: the standard benchmark, 60 extra source scans,
# then training with the recorded seed. About 1 h 10 min on a 2-core CPU (see docs/model.md).
# Usage: bash scripts/train_source_model.sh [OUT_MODEL]   (default runs/source_model.safetensors)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "synth"
OUT="${1:-runs/source_model.safetensors}"
mkdir -p "$(dirname "$OUT")"
[ -f data/standard/source_train/manifest.csv ] ||
  .venv/bin/wmhda synth --preset standard --workers 2 --out data/standard
[ -f data/source_extra/manifest.csv ] ||
  .venv/bin/wmhda synth --domain source --n 60 --seed 50 --workers 2 --out data/source_extra
.venv/bin/wmhda train \
  --train data/standard/source_train/manifest.csv data/source_extra/manifest.csv \
  --val data/standard/source_val/manifest.csv --domain source \
  --epochs 60 --steps-per-epoch 20 --lr-decay 0.95 --patience 12 --lesion-balance 0.5 --seed 0 \
  --out "$OUT"
