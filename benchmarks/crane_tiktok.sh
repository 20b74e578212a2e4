#!/usr/bin/env bash
# CRANE on TikTok (issue 4): the `tiktok` preset with 3 seeds, then each ablation with seed 1,
# then the report (`cranerec report $STORE` gives the ablation table with Holm-corrected p too).
# Resumable: rerunning skips finished runs and resumes interrupted ones.
#   [STORE=DIR] bash benchmarks/crane_tiktok.sh [OUT_DIR]   (default runs/crane, runs/experiments)
# LightGCN's 3 seeds come from benchmarks/parity.sh (runs/parity/tiktok-lightgcn).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/crane}
DATA=../shared/datasets/tiktok
[ -d "$DATA" ] || { echo "skipped: $DATA not found"; exit 0; }
train() { .venv/bin/cranerec train --data "$DATA" --model crane --preset tiktok --set train.progress=false "$@"; }
train --seeds 1 2 3 --out "$OUT/crane-tiktok"
# Ablations (Sec. 4.5): the `ablation` suite (cranerec/experiments/suites/ablation.yaml), one
# seed each, in the result store that the other suites share; its full-model run is seed 1 above,
# adopted rather than trained again.
STORE=${STORE:-runs/experiments}
.venv/bin/cranerec experiment ablation --store "$STORE" --adopt "$OUT/crane-tiktok/seed-1"
# Seeds 2-3 of the three ablations that train in minutes (their seed 1 and the full model's seeds
# are runs the store already holds), to tell their effect from seed-to-seed noise.
.venv/bin/cranerec experiment benchmarks/crane_ablation_seeds.yaml --store "$STORE" \
  --adopt "$OUT/crane-tiktok/seed-2" "$OUT/crane-tiktok/seed-3"
.venv/bin/python benchmarks/crane_report.py --crane "$OUT/crane-tiktok" \
  --lightgcn runs/parity/tiktok-lightgcn --ablations "$STORE"
.venv/bin/cranerec report "$STORE"
