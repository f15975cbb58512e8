#!/usr/bin/env bash
# Rebuild the shipped source model from nothing: the standard benchmark, 60 extra source scans,
# the 2D model (v4), then that model trained on with the neighbouring slices as extra inputs (v11).
# About 1 h 40 min on a 2-core CPU (see docs/model.md).
# Usage: bash scripts/train_source_model.sh [OUT_MODEL]   (default runs/source_model.safetensors)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "synth"
OUT="${1:-runs/source_model.safetensors}"
BASE_2D="${OUT%.safetensors}_2d.safetensors"
mkdir -p "$(dirname "$OUT")"
[ -f data/standard/source_train/manifest.csv ] ||
  .venv/bin/wmhda synth --preset standard --workers 2 --out data/standard
[ -f data/source_extra/manifest.csv ] ||
  .venv/bin/wmhda synth --domain source --n 60 --seed 50 --workers 2 --out data/source_extra
TRAIN=(--train data/standard/source_train/manifest.csv data/source_extra/manifest.csv
       --val data/standard/source_val/manifest.csv --domain source --lr-decay 0.95 --lesion-balance 0.5)
# 1. the 2D model, from He initialization (v4; 44 min)
.venv/bin/wmhda train "${TRAIN[@]}" --epochs 60 --steps-per-epoch 20 --patience 12 --seed 0 \
  --out "$BASE_2D"
# 2. on from its weights with the slices above and below as 4 more input channels, which start at
#    zero weight, at a lower learning rate (v11; 44 min with 1 thread beside another run). Seed 1:
#    of the seeds 0 (v8) and 1, the better on the 26 validation scans (docs/model.md)
.venv/bin/wmhda train "${TRAIN[@]}" --init-from "$BASE_2D" --context-slices 1 \
  --epochs 30 --steps-per-epoch 20 --lr 3e-4 --patience 10 --seed 1 --threads 1 --out "$OUT"
