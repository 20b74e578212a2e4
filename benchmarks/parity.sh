#!/usr/bin/env bash
# Parity runs against the MMRec reference numbers (3 seeds each, the default settings of
# `cranerec train`). Resumable: rerunning skips finished seeds and resumes interrupted ones.
#   bash benchmarks/parity.sh [OUT_DIR]   (default runs/parity)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/parity}
SHARED=../shared/datasets
for data in tiktok amazon-baby; do
  [ -d "$SHARED/$data" ] || { echo "skipped: $SHARED/$data not found"; continue; }
  for model in lightgcn bpr; do
    .venv/bin/cranerec train --data "$SHARED/$data" --model "$model" --seeds 1 2 3 --out "$OUT/$data-$model"
  done
  .venv/bin/cranerec train --data "$SHARED/$data" --model pop --out "$OUT/$data-pop"
done
