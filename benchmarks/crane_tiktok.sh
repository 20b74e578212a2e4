#!/usr/bin/env bash
# CRANE on TikTok (issue 4): the `tiktok` preset with 3 seeds, then each ablation with seed 1,
# then the report. Resumable: rerunning skips finished runs and resumes interrupted ones.
#   bash benchmarks/crane_tiktok.sh [OUT_DIR]   (default runs/crane)
# LightGCN's 3 seeds come from benchmarks/parity.sh (runs/parity/tiktok-lightgcn).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/crane}
DATA=../shared/datasets/tiktok
[ -d "$DATA" ] || { echo "skipped: $DATA not found"; exit 0; }
train() { .venv/bin/cranerec train --data "$DATA" --model crane --preset tiktok --set train.progress=false "$@"; }
train --seeds 1 2 3 --out "$OUT/crane-tiktok"
# Ablations (Sec. 4.5) as settings of the one model, one seed each. The preset already has
# beta = 0 (the contrastive term hurt on validation), so the CL row adds it back instead.
declare -A ABLATIONS=(
  [no_item_graph]="model.item_graph=false"
  [no_rca]="model.rca_rounds=1"
  [no_attention]="model.fusion=concat"
  [no_gcn]="model.ui_layers=0 model.ii_layers=0"
  [with_cl]="model.cl_weight=0.1 model.temperature=0.2"
  [late_fusion]="model.late_fusion=true"
  [paper_literal]="model.semantic_user=sum model.gcn_weights=true model.cl_weight=0.1 model.temperature=0.2"
)
for name in no_item_graph no_attention no_rca no_gcn late_fusion with_cl paper_literal; do
  mkdir -p "$OUT/ablations/$name"
  echo "${ABLATIONS[$name]}" > "$OUT/ablations/$name/settings.txt"
  # shellcheck disable=SC2086
  train --seeds 1 --out "$OUT/ablations/$name" --set ${ABLATIONS[$name]}
done
.venv/bin/python benchmarks/crane_report.py --crane "$OUT/crane-tiktok" \
  --lightgcn runs/parity/tiktok-lightgcn --ablations "$OUT/ablations"
