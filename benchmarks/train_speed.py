"""Seconds per training epoch and per validation pass, measured on a quiet machine.

    .venv/bin/python benchmarks/train_speed.py [--data ../shared/datasets/tiktok]
        [--models pop bpr lightgcn] [--epochs 5] [--presets crane=tiktok freedom=reference]
        [--device cuda]

Trains each model for a few epochs with the default settings (no early stopping involved) and
prints the median seconds of a training epoch and of a validation pass (forward to embeddings +
full-ranking evaluation), as the trainer records them in metrics.jsonl, and the peak RSS of
the process after each model (a high-water mark: run one model per call for its own figure).
``--presets MODEL=PRESET`` trains that model with a named preset instead of its defaults.
``--device cuda`` trains on the GPU and also prints each model's peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import torch
from _data import load_or_skip

from cranerec.train import build_config, train_run
from cranerec.utils.env import peak_gpu_suffix, resolve_device

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiktok"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(DEFAULT))
    p.add_argument("--models", nargs="+", default=["bpr", "lightgcn"])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--presets", nargs="*", default=[], metavar="MODEL=PRESET")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = p.parse_args()
    try:
        resolve_device(args.device)
    except (ValueError, RuntimeError) as e:
        p.error(str(e))
    data = load_or_skip(args.data)
    if data is None:
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    cuda = args.device.startswith("cuda")
    if cuda:
        print(f"device: {torch.cuda.get_device_name(torch.device(args.device))}")
    print(f"data: {data.name} ({data.n_users} users, {data.n_items} items, {data.train.nnz} train)")
    bad = [x for x in args.presets if "=" not in x]
    if bad:
        p.error(f"--presets takes MODEL=PRESET pairs, got {bad}")
    presets = dict(x.split("=", 1) for x in args.presets)
    for model in args.models:
        cfg = build_config(
            model=model, data=args.data, preset=presets.get(model),
            overrides=[f"train.epochs={args.epochs}", "train.progress=false",
                       f"train.device={args.device}"],
        )  # fmt: skip
        if cuda:
            torch.cuda.reset_peak_memory_stats(args.device)
        with tempfile.TemporaryDirectory() as tmp:
            results = train_run(cfg, tmp, data)
            log = Path(tmp) / "metrics.jsonl"
            recs = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
        if not recs:
            print(f"{model:>16}: not trained ({results['stop_reason']})")
            continue
        ep = statistics.median(r["epoch_seconds"] for r in recs)
        ev = statistics.median(r["eval_seconds"] for r in recs)
        label = f"{model} ({presets[model]})" if model in presets else model
        print(
            f"{label:>16}: {ep:.3f} s/epoch, {ev:.3f} s/validation "
            f"(median of {len(recs)} epochs, {torch.get_num_threads()} threads), "
            f"peak RSS {results['peak_rss_mb']:.0f} MB{peak_gpu_suffix(args.device)}"
        )


if __name__ == "__main__":
    main()
