"""The budgeted search that chose CRANE's ``tiktok`` preset, on TikTok's validation split only.

    .venv/bin/python benchmarks/crane_search.py RUNS_DIR [--data ../shared/datasets/tiktok]
        [--stage 1|2|all] [--table]

Every trial is a named list of ``--set`` overrides trained with ``train_run`` into
``RUNS_DIR/<trial>`` (so an interrupted search resumes where it stopped, and a finished trial is
never run again). Selection reads ``best valid Recall@20`` only; the test split is never looked
at here. ``--table`` prints the trials' best validation Recall@20 / NDCG@20, best epoch and
seconds per epoch, without training.

Budget (stated, not open-ended): stage 1 screens the parts that do not involve RCA with the
``concat`` fusion (2 s/epoch; up to 80 epochs, patience 10): semantic user profile rule,
contrastive weight and temperature, GCN weights, DropEdge mode, leave-one-out scoring. Stage 2
trains the RCA model with the best stage-1 setting (up to 30 epochs, patience 10; 14 s/epoch) to
choose the RCA scalings and the feature normalisation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _data import load_or_skip

from cranerec.train import build_config, train_run

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiktok"

# the model the trials ran with (CRANE's defaults then): trials override parts of it;
# project_before_profile=true pins that default too (no effect with concat)
THEN = ["model.gcn_weights=true", "model.semantic_user=sum", "model.cl_weight=0.1",
        "model.init=torch", "model.rca_width=64", "model.rca_keys=0"]  # fmt: skip
STAGE1_COMMON = [
    "model.fusion=concat", "model.project_before_profile=true", "train.patience=10", "train.epochs=80",
]  # fmt: skip
STAGE1 = {
    # round 1: a small contrastive weight (the paper's term) with the structural choices
    "s1-mean-cl01-de": ["model.semantic_user=mean", "model.cl_weight=0.01", "model.gcn_weights=false"],
    "s1-mean-cl0-de": ["model.semantic_user=mean", "model.cl_weight=0", "model.gcn_weights=false"],
    "s1-sum-cl01-de": ["model.semantic_user=sum", "model.cl_weight=0.01", "model.gcn_weights=false"],
    "s1-mean-cl01-de-gw": ["model.semantic_user=mean", "model.cl_weight=0.01", "model.gcn_weights=true"],
    # round 2 (round 1 showed the contrastive term hurting at any tried weight): without it
    "s1-sum-cl0-de": ["model.semantic_user=sum", "model.cl_weight=0", "model.gcn_weights=false"],
    "s1-mean-cl0-de-gw": ["model.semantic_user=mean", "model.cl_weight=0", "model.gcn_weights=true"],
    "s1-mean-cl0-none": ["model.semantic_user=mean", "model.cl_weight=0", "model.gcn_weights=false", "model.dropedge=none"],
    "s1-mean-cl0-paper": ["model.semantic_user=mean", "model.cl_weight=0", "model.gcn_weights=false", "model.dropedge=paper"],
    "s1-mean-cl1-t5-de": ["model.semantic_user=mean", "model.cl_weight=0.1", "model.temperature=0.5", "model.gcn_weights=false"],
    "s1-mean-cl001-de": ["model.semantic_user=mean", "model.cl_weight=0.001", "model.gcn_weights=false"],
    "s1-mean-cl0-de-loo": ["model.semantic_user=mean", "model.cl_weight=0", "model.gcn_weights=false", "model.exclude_target=true"],
    "s1-sum-cl0-de-loo": ["model.semantic_user=sum", "model.cl_weight=0", "model.gcn_weights=false", "model.exclude_target=true"],
    "s1-mean-cl0-de-ii0": ["model.semantic_user=mean", "model.cl_weight=0", "model.gcn_weights=false", "model.ii_layers=0"],
}  # fmt: skip
STAGE2_COMMON = ["train.patience=10", "train.epochs=30"]
# the stage-1 winner (mean semantic profiles, no contrastive term, no W^(l)) with RCA fusion
STAGE2_BASE = [
    "model.semantic_user=mean", "model.cl_weight=0", "model.gcn_weights=false",
    "model.project_before_profile=true",
]  # fmt: skip
STAGE2 = {
    name: [*STAGE2_BASE, *sets]
    for name, sets in {
        "s2-rca": [],  # feature_norm l2, score scale 1/sqrt(w), value scale 1/(M+N), project first
        "s2-rca-value-none": ["model.rca_value_scale=none"],
        "s2-rca-score1": ["model.rca_score_scale=1.0"],
        "s2-rca-feat-raw": ["model.feature_norm=none"],
        "s2-rca-project-after": ["model.project_before_profile=false"],  # overrides the base
    }.items()
}
STAGES = {"1": (STAGE1_COMMON, STAGE1), "2": (STAGE2_COMMON, STAGE2)}


def trial_row(run_dir: Path) -> dict | None:
    """Best validation figures of one trial, read from its metrics.jsonl (None if not started)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if not rows:
        return None
    best = max(rows, key=lambda r: r["valid"]["recall@20"])
    return {
        "recall@20": best["valid"]["recall@20"],
        "ndcg@20": best["valid"]["ndcg@20"],
        "best_epoch": best["epoch"],
        "epochs": len(rows),
        "s_per_epoch": sum(r["epoch_seconds"] for r in rows) / len(rows),
        "finished": (run_dir / "results.json").exists(),
    }


def print_table(runs: Path) -> None:
    print("| stage | trial | settings | valid R@20 | valid N@20 | best epoch / run | s/epoch |")
    print("|---|---|---|---|---|---|---|")
    for stage, (_, trials) in STAGES.items():
        for name, sets in trials.items():
            row = trial_row(runs / name)
            if row is None:
                continue
            mark = "" if row["finished"] else " (running)"
            print(
                f"| {stage} | {name} | {' '.join(s.removeprefix('model.') for s in sets)} | "
                f"{row['recall@20']:.4f} | {row['ndcg@20']:.4f} | {row['best_epoch']} / "
                f"{row['epochs']}{mark} | {row['s_per_epoch']:.1f} |"
            )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", type=Path)
    p.add_argument("--data", default=str(DEFAULT))
    p.add_argument("--stage", default="all", choices=["1", "2", "all"])
    p.add_argument("--table", action="store_true")
    args = p.parse_args()
    if args.table:
        print_table(args.runs)
        return
    data = load_or_skip(args.data)
    if data is None:
        return
    for stage in ("1", "2") if args.stage == "all" else (args.stage,):
        common, trials = STAGES[stage]
        for name, sets in trials.items():
            overrides = ["train.progress=false", *THEN, *common, *sets]
            train_run(
                build_config(model="crane", data=args.data, overrides=overrides),
                args.runs / name,
                data,
            )
    print_table(args.runs)


if __name__ == "__main__":
    main()
