"""Where one model's training step spends its time: seconds per step and torch.profiler's top ops.

    .venv/bin/python benchmarks/step_profile.py --data DATA --model NAME [--preset P] [--steps 5]
        [--set data.features_dir=DIR --set "data.modalities=[text]"]

Builds the model as ``cranerec train`` would (preset, then ``--set`` overrides) and feeds it one
epoch's batches from the trainer's own sampler (the config's batch size and negative pool, the
model's batch kind, ``pre_epoch`` first; seed 0): 2 warm-up steps, then times and profiles
``--steps`` steps of loss, backward and an Adam step. For CRANE, which rebuilds its item
graph on an epoch's first step, use benchmarks/crane_profile.py instead.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from _data import exists_or_skip

from cranerec.data import load_dataset
from cranerec.models.registry import get_model_class
from cranerec.train import build_config
from cranerec.train.sampler import InteractionSampler


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--preset")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args()
    if not exists_or_skip(args.data):
        return
    torch.set_num_threads(args.threads)
    try:
        cfg = build_config(
            model=args.model, data=args.data, preset=args.preset, overrides=args.overrides
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = load_dataset(cfg.data)  # with --set data.* (features_dir, modalities)
        model = get_model_class(args.model)(data, cfg.model).train()
    except (ValueError, KeyError) as e:  # ConfigError is a ValueError
        p.error(str(e))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    rng = np.random.default_rng(0)
    model.pre_epoch(0, rng)
    sampler = InteractionSampler(data.train, cfg.train.negative_pool)
    batches = sampler.epoch(model.batch_kind, cfg.train.batch_size, rng, torch.device("cpu"))
    if len(sampler) < (args.steps + 2) * cfg.train.batch_size:
        p.error(f"one epoch has fewer than {args.steps + 2} batches: lower --steps")

    def step() -> None:
        opt.zero_grad()
        model.loss(next(batches))[0].backward()
        opt.step()

    for _ in range(2):
        step()
    with torch.profiler.profile() as prof:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = (time.perf_counter() - start) / args.steps
    label = f"{args.model} ({args.preset})" if args.preset else args.model
    print(
        f"{label} on {data.name}: {seconds:.3f} s a step (mean of {args.steps}, {args.threads} threads)"
    )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
