"""Where one model's training step spends its time: seconds per step and torch.profiler's top ops.

    .venv/bin/python benchmarks/step_profile.py --data DATA --model NAME [--preset P] [--steps 5]

Builds the model as ``cranerec train`` would (preset, then ``--set`` overrides), draws batches of
2,048 training interactions with random negatives (seed 0), runs 2 warm-up steps, then times and
profiles ``--steps`` steps of loss, backward and an Adam step. For CRANE, which rebuilds its item
graph on an epoch's first step, use benchmarks/crane_profile.py instead.
"""

from __future__ import annotations

import argparse
import time

import torch
from _data import load_or_skip

from cranerec.models.base import Batch
from cranerec.models.registry import get_model_class
from cranerec.train import build_config


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--preset")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args()
    data = load_or_skip(args.data)
    if data is None:
        return
    torch.set_num_threads(args.threads)
    try:
        cfg = build_config(
            model=args.model, data=args.data, preset=args.preset, overrides=args.overrides
        )
        model = get_model_class(args.model)(data, cfg.model).train()
    except (ValueError, KeyError) as e:  # ConfigError is a ValueError
        p.error(str(e))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    coo, gen = data.train.tocoo(), torch.Generator().manual_seed(0)
    users, items = torch.from_numpy(coo.row).long(), torch.from_numpy(coo.col).long()

    def step() -> None:
        k = torch.randint(0, len(users), (args.batch,), generator=gen)
        neg = torch.randint(0, data.n_items, (args.batch,), generator=gen)
        opt.zero_grad()
        model.loss(Batch(users[k], items[k], neg))[0].backward()
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
