"""Seconds per training step of CRANE with the item graph rebuilt at every step or once per epoch.

    .venv/bin/python benchmarks/crane_cadence.py [--data ../shared/datasets/tiktok] [--steps 3]
        [--set model.rca_rounds=3 ...]

Times a few optimiser steps (forward, loss, backward, Adam) of each cadence on the same batches:
``step`` rebuilds RCA and the item graph at every step (RCA gets gradient at every step);
``epoch`` rebuilds on the first step only and reuses the graph (later steps are cheap). Prints
the median step time of each and what a full epoch would cost at this batch size.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from _data import load_or_skip

from cranerec.models import get_model_class
from cranerec.train import build_config
from cranerec.train.sampler import InteractionSampler

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiktok"


def time_steps(model, batches, steps: int) -> list[float]:
    """Seconds of each of ``steps`` optimiser steps, the first after ``pre_epoch``."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    model.pre_epoch(0, np.random.default_rng(0))
    times = []
    for batch in batches[:steps]:
        start = time.perf_counter()
        opt.zero_grad()
        model.loss(batch)[0].backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(DEFAULT))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--set", nargs="*", default=[])
    args = p.parse_args()
    data = load_or_skip(args.data)
    if data is None:
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    cfg = build_config(model="crane", data=args.data, overrides=args.set)
    sampler = InteractionSampler(data.train)
    rng = np.random.default_rng(0)
    batches = list(sampler.epoch("triples", cfg.train.batch_size, rng, torch.device("cpu")))
    per_epoch = math.ceil(data.train.nnz / cfg.train.batch_size)
    results = {}
    for cadence in ("epoch", "step"):
        torch.manual_seed(0)
        model = get_model_class("crane")(data, replace(cfg.model, graph_cadence=cadence))
        times = time_steps(model, batches, args.steps + (1 if cadence == "epoch" else 0))
        results[cadence] = times
        print(f"cadence={cadence}: steps {[round(t, 2) for t in times]} s")
    step_med = statistics.median(results["step"])
    epoch_total = results["epoch"][0] + statistics.median(results["epoch"][1:]) * (per_epoch - 1)
    print(f"{per_epoch} steps per epoch at batch {cfg.train.batch_size}: "
          f"cadence=step ~{step_med * per_epoch:.0f} s/epoch, cadence=epoch ~{epoch_total:.1f} s/epoch "
          f"(ratio {step_med * per_epoch / epoch_total:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
