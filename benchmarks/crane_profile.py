"""Where a CRANE training epoch spends its time: the item-graph rebuild step (RCA forward and
backward, kNN) against the steps that reuse the graph, and the top operators of the rebuild step.

    .venv/bin/python benchmarks/crane_profile.py [--data ../shared/datasets/tiktok]
        [--preset tiktok] [--set key=value ...] [--top 12]
        [--shape USERS ITEMS INTERACTIONS [--widths 4096 384]] [--steps N]
        [--compare lightgcn freedom] [--profile-reuse] [--ab-item-layer N]

Builds the model as `cranerec train --model crane --preset P` would (seed 1), trains one epoch to
warm up, then times every step of a second epoch (the first step of an epoch rebuilds RCA and
the item graph, ``graph_cadence=epoch``), and profiles one more rebuild step with
torch.profiler: its operators by self CPU time (the exact RCA kernel's forward and backward show
as ``_BlockedTanhAttention`` / ``_BlockedTanhAttentionBackward``; their matmuls as ``aten::mm``
and ``aten::addmm``). ``--shape`` uses SYNTHETIC random data of that shape instead
(``benchmarks/crane_memory.py``'s generator; cost only) and ``--steps N`` times only the first N
steps of each epoch (for large shapes). ``--compare M ...`` times the same steps of those models
(their defaults, the same data and batch size) in the same process, after CRANE, and prints the
ratio of CRANE's steps to theirs: the cost an epoch pays whatever RCA costs. ``--profile-reuse``
also profiles one step that reuses the item graph (what the other steps of an epoch do).
``--ab-item-layer N`` times 2N further steps that reuse the item graph, alternating the item-graph
layer between its CSR product (``graph.KnnProduct``) and the gather used before it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _data import load_or_skip

from cranerec.models import get_model_class
from cranerec.train import build_config
from cranerec.train.sampler import InteractionSampler
from cranerec.train.trainer import seed_everything

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiktok"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT))
    p.add_argument("--preset", default="tiktok", help="a crane preset, or none (the defaults)")
    p.add_argument("--set", action="append", default=[], dest="overrides")
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--shape", type=int, nargs=3, metavar=("USERS", "ITEMS", "INTERACTIONS"))
    p.add_argument("--widths", type=int, nargs="+", default=[4096, 384])
    p.add_argument("--steps", type=int, default=0, help="time only the first N steps (0: all)")
    p.add_argument("--compare", nargs="*", default=[], metavar="MODEL")
    p.add_argument("--profile-reuse", action="store_true")
    p.add_argument("--ab-item-layer", type=int, default=0, metavar="N")
    args = p.parse_args()
    if args.shape:
        from crane_memory import make_data

        data = make_data(*args.shape, args.widths)
    else:
        data = load_or_skip(args.data)
    if data is None:
        return
    preset = None if args.preset == "none" else args.preset
    config = build_config(model="crane", preset=preset, overrides=args.overrides, seed=1)
    torch.set_num_threads(config.train.n_threads)
    seed_everything(1)
    model = get_model_class("crane")(data, config.model)
    sampler = InteractionSampler(data.train)
    times, forward_s, optimizer = _time_epoch(model, data, sampler, config, args.steps)
    print(f"{data.name}: {data.n_users:,} users, {data.n_items:,} items; crane --preset "
          f"{args.preset} {' '.join(args.overrides)}; {torch.get_num_threads()} threads, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")  # fmt: skip
    rest = times[1:]
    reuse = statistics.median(rest) if rest else 0.0
    print(f"epoch {sum(times):.2f} s: rebuild step {times[0]:.2f} s "
          f"({times[0] / sum(times):.0%}), {len(rest)} other steps {sum(rest):.2f} s "
          f"(median {reuse:.3f} s); inference forward {forward_s:.2f} s")  # fmt: skip
    n_steps = -(-data.train.nnz // config.train.batch_size)
    if args.steps:
        print(f"a whole epoch of {n_steps} steps: about {times[0] + (n_steps - 1) * reuse:.0f} s "
              f"(the rebuild step + {n_steps - 1} x the median other step)")  # fmt: skip

    rng = np.random.default_rng(2)
    for label, reused in [("rebuild", False)] + [("reuse", True)] * args.profile_reuse:
        model.train()
        model.pre_epoch(2, rng)
        batches = iter(sampler.epoch("triples", config.train.batch_size, rng, torch.device("cpu")))
        if reused:  # the rebuild step, then the step that builds the cached S~ product
            for _ in range(2):
                _step(model, optimizer, next(batches))
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            _step(model, optimizer, next(batches))
        print(f"\n{label} step, top {args.top} operators by self CPU time:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))

    if args.ab_item_layer:  # steps that reuse S~, alternately with its CSR product and a gather
        batches = iter(sampler.epoch("triples", config.train.batch_size, rng, torch.device("cpu")))
        csr, ab = model._item_step, {"csr": [], "gather": []}

        def gather(idx, values, h):  # the item-graph layer as it was before KnnProduct
            return (values.unsqueeze(-1) * h[idx]).sum(dim=1)

        for i in range(2 * args.ab_item_layer + 2):
            name = "csr" if i % 2 == 0 else "gather"
            model._item_step = csr if name == "csr" else gather
            t = _step(model, optimizer, next(batches))
            if i >= 2:  # the first pair warms up (and builds the CSR product)
                ab[name].append(t)
        model._item_step = csr
        a, b = (statistics.median(ab[k]) for k in ("csr", "gather"))
        print(f"\nsteps reusing S~, alternated in this process ({args.ab_item_layer} each): "
              f"CSR product median {a:.3f} s, gather {b:.3f} s; CSR / gather {a / b:.2f}")  # fmt: skip

    for name in args.compare:
        cfg = build_config(
            model=name, seed=1, overrides=[f"train.batch_size={config.train.batch_size}"]
        )
        seed_everything(1)
        other = get_model_class(name)(data, cfg.model)
        t, _, _ = _time_epoch(other, data, sampler, cfg, args.steps)
        med = statistics.median(t[1:] or t)
        print(f"{name} (defaults): median step {med:.3f} s over {len(t)} steps; crane's other "
              f"steps / {name}'s: {reuse / med:.2f}x; crane's epoch / {name}'s: "
              f"{(times[0] + (n_steps - 1) * reuse) / (n_steps * med):.2f}x")  # fmt: skip


def _step(model, optimizer, batch) -> float:
    t0 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss, _ = model.loss(batch)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - t0


def _time_epoch(model, data, sampler, config, steps: int):
    """Seconds of each step of a second epoch (after a warm-up epoch), of one inference
    forward, and the optimizer (warm). ``steps``: only the first N steps of each epoch (0: all)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    rng = np.random.default_rng(1)

    def epoch(e: int) -> list[float]:
        model.train()
        model.pre_epoch(e, rng)
        kind = model.batch_kind
        batches = sampler.epoch(kind, config.train.batch_size, rng, torch.device("cpu"))
        return [
            _step(model, optimizer, b) for b, _ in zip(batches, range(steps or 10**9), strict=False)
        ]

    epoch(0)  # warm-up
    times = epoch(1)
    t0 = time.perf_counter()
    model.export_embeddings()
    return times, time.perf_counter() - t0, optimizer


if __name__ == "__main__":
    main()
