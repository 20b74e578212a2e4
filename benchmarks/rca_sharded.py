"""Exact RCA sharded over W processes (``train --distributed``) against one process, side by side
in one run: the time of one RCA forward + backward (CRANE's once-per-epoch rebuild step) at a
given shape, and the all-gather traffic.

    python benchmarks/rca_sharded.py [--users 9319] [--items 6710] [--width 64] [--modalities 2]
        [--rounds 3] [--world 1 2] [--threads 2] [--repeats 3]

Defaults are TikTok's shape with CRANE's defaults. Each configuration gets the same ``--threads``
cores in all: one process with T threads, or W gloo ranks with T / W threads each (the fair
comparison on one machine; across machines each rank has its own cores, and the time per rank is
the single-process time / W plus the all-gathers). Prints the median over ``--repeats`` of the
slowest rank's time, and the ratio to one process; the outputs of W ranks are checked against
one process's (max absolute difference). Independent of a trained model: RCA's weights at their
initialisation, random inputs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _setup(args):
    from cranerec.nn import RecursiveCrossModalAttention

    torch.manual_seed(0)
    n = args.users + args.items
    xs = [torch.randn(n, args.width).requires_grad_(True) for _ in range(args.modalities)]
    rows = torch.arange(args.users, n)  # the last round computes the item rows (CRANE)
    make = lambda attention: RecursiveCrossModalAttention(  # noqa: E731
        args.modalities, args.width, rounds=args.rounds, value_scale=1.0 / n,
        score_scale=args.width**-0.5, block_size=args.block, attention=attention,
    )  # fmt: skip
    return xs, rows, make


def _step(rca, xs, rows) -> tuple[float, torch.Tensor]:
    for x in xs:
        x.grad = None
    t0 = time.perf_counter()
    outs = rca(xs, rows)
    sum(o.square().sum() for o in outs).backward()
    return time.perf_counter() - t0, torch.cat([o.detach() for o in outs], dim=1)


def _rank(rank: int, world: int, init: str, args, result: str) -> None:
    from cranerec.nn import ShardedTanhAttention

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(max(1, args.threads // world))
    try:
        xs, rows, make = _setup(args)
        rca = make(ShardedTanhAttention(block_size=args.block))
        times = []
        for _ in range(args.repeats):
            seconds, out = _step(rca, xs, rows)
            slowest = torch.tensor([seconds])
            dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
            times.append(float(slowest))
        if rank == 0:
            torch.save({"times": times, "out": out}, result)
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=9319)
    parser.add_argument("--items", type=int, default=6710)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--modalities", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--world", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    xs, rows, make = _setup(args)
    single = make(None)
    base = [_step(single, xs, rows) for _ in range(args.repeats)]
    base_s, reference = statistics.median(t for t, _ in base), base[-1][1]
    n = args.users + args.items
    print(
        f"RCA forward + backward, {args.users:,} users + {args.items:,} items, width "
        f"{args.width}, {args.modalities} modalities, {args.rounds} rounds, {args.threads} "
        f"threads in all; {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    )
    print("| processes | threads each | seconds (slowest rank) | / one process | max |diff| | "
          "all-gathered per step (MB) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    print(f"| 1 | {args.threads} | {base_s:.2f} | 1.00 | 0 | 0 |")
    gathers = args.modalities * ((args.rounds - 1) * n + args.items)  # rows gathered, forward
    for world in [w for w in args.world if w > 1]:
        with tempfile.TemporaryDirectory() as tmp:
            result = f"{tmp}/result.pt"
            mp.spawn(_rank, args=(world, f"file://{tmp}/pg", args, result), nprocs=world)
            got = torch.load(result)
        seconds = statistics.median(got["times"])
        diff = float((got["out"] - reference).abs().max())
        traffic = 2 * gathers * args.width * 4 / 1e6  # gathered forward, all-reduced backward
        print(f"| {world} | {max(1, args.threads // world)} | {seconds:.2f} | "
              f"{seconds / base_s:.2f} | {diff:.1e} | {traffic:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
