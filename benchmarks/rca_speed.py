"""Speed and memory of the exact blocked RCA kernel (CRANE Eq. 10-11).

    .venv/bin/python benchmarks/rca_speed.py [--entities 16018] [--width 64] [--block 512 1024 2048]
        [--cache-mb 1024]

Times forward+backward of tanh(Q K^T) V over ``entities`` rows (TikTok: 9,308 users + 6,710
items = 16,018) and prints GFLOP/s (14 n^2 d flops per call) next to a plain ``torch.matmul``
doing the same number of flops as [4096, n] @ [n, d] products, their ratio (target >= 0.5), and
the peak extra memory of the blocked call against the n x n matrix it avoids. First it times
``torch.tanh_`` against the kernel's ``2 sigmoid(2x) - 1`` on one [512, n] score block. With
``--cache-mb M`` each block size is also timed with up to M MiB of score blocks kept from the
forward for the backward (the share of rows that fit is printed), side by side.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import psutil
import torch

from cranerec.nn import blocked_tanh_attention
from cranerec.nn.attention import _tanh_


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--entities", type=int, default=16018)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--block", type=int, nargs="+", default=[256, 512, 1024, 2048])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--cache-mb", type=float, default=0.0)
    args = p.parse_args()
    n, d = args.entities, args.width
    torch.manual_seed(0)
    q, k, v = (torch.randn(n, d, requires_grad=True) for _ in range(3))
    flops = 14.0 * n * n * d
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"RCA kernel: n = {n} entities, d = {d}; {flops / 1e9:.0f} GFLOP per forward+backward")

    scores, work = 3 * torch.randn(512, n), torch.empty(512, n)
    t_tanh = _best_of(lambda: work.copy_(scores).tanh_(), 5 * args.repeats)
    t_sig = _best_of(lambda: _tanh_(work.copy_(scores)), 5 * args.repeats)
    t_copy = _best_of(lambda: work.copy_(scores), 5 * args.repeats)
    err = (_tanh_(scores.clone()) - scores.tanh()).abs().max().item()
    print(
        f"tanh on a [512, n] block: torch.tanh_ {(t_tanh - t_copy) * 1e3:.1f} ms, "
        f"2 sigmoid(2x) - 1 {(t_sig - t_copy) * 1e3:.1f} ms (max abs difference {err:.1e})"
    )

    a, b = torch.randn(4096, n), torch.randn(n, d)
    reps = max(1, round(flops / (2 * 4096 * n * d)))
    t_mm = _best_of(lambda: [a @ b for _ in range(reps)], args.repeats)
    mm_rate = 2 * 4096 * n * d * reps / t_mm / 1e9
    print(f"plain torch.matmul [4096, n] @ [n, d], same flops: {mm_rate:.1f} GFLOP/s")
    process = psutil.Process()
    for block, cache in [(b, c) for b in args.block for c in sorted({0.0, args.cache_mb})]:

        def step(block=block, cache=cache):
            out = blocked_tanh_attention(q, k, v, block, cache_mb=cache)
            out.sum().backward()

        t = _best_of(step, args.repeats)
        kept = min(1.0, (cache * 2**20 // (block * n * 4)) * block / n)
        rss_before = process.memory_info().rss
        step()
        rss_after = process.memory_info().rss
        rate = flops / t / 1e9
        print(
            f"block {block:>5}, scores cached for {kept:4.0%} of rows: {t:.2f} s, {rate:.1f} GFLOP/s, ratio to matmul {rate / mm_rate:.2f}; "
            f"score block {block * n * 4 / 2**20:.0f} MiB vs full C {n * n * 4 / 2**20:.0f} MiB; "
            f"RSS growth {max(0, rss_after - rss_before) / 2**20:.0f} MiB"
        )


if __name__ == "__main__":
    main()
