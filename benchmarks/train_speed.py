"""Seconds per training epoch and per validation pass, measured on a quiet machine.

    .venv/bin/python benchmarks/train_speed.py [--data ../shared/datasets/tiktok]
        [--models pop bpr lightgcn] [--epochs 5]

Trains each model for a few epochs with the default settings (no early stopping involved) and
prints the median seconds of a training epoch and of a validation pass (forward to embeddings +
full-ranking evaluation), as the trainer records them in metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import warnings
from pathlib import Path

import torch

from cranerec.data import load_dataset
from cranerec.train import build_config, train_run

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiktok"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(DEFAULT))
    p.add_argument("--models", nargs="+", default=["bpr", "lightgcn"])
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()
    if args.data != "synthetic" and not Path(args.data).exists():
        print(f"skipped: dataset not found at {args.data}")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_dataset(path=args.data)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"data: {data.name} ({data.n_users} users, {data.n_items} items, {data.train.nnz} train)")
    for model in args.models:
        cfg = build_config(
            model=model, data=args.data,
            overrides=[f"train.epochs={args.epochs}", "train.progress=false"],
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            train_run(cfg, tmp, data)
            recs = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
        ep = statistics.median(r["epoch_seconds"] for r in recs)
        ev = statistics.median(r["eval_seconds"] for r in recs)
        print(
            f"{model:>10}: {ep:.3f} s/epoch, {ev:.3f} s/validation "
            f"(median of {len(recs)} epochs, {torch.get_num_threads()} threads)"
        )


if __name__ == "__main__":
    main()
