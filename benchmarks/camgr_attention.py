"""Time and peak memory of exact softmax attention kernels (CAmgr Eq. 18 over all users and items).

    .venv/bin/python benchmarks/camgr_attention.py [--queries 8000] [--keys 8000] [--threads 1]

Runs each kernel in its own subprocess (so ``ru_maxrss`` measures that kernel alone) on random
fp32 inputs of width 64 and prints forward and backward seconds and the peak extra memory after
the forward and after forward + backward (of ``out.sum()``): torch's SDPA with 3-D inputs (the
dense math path), SDPA with 4-D inputs as ``sdpa_attention`` passes them (the fused flash
kernel), ``blocked_softmax_attention`` with a few block sizes, and dense autograd.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from cranerec.nn import blocked_softmax_attention, sdpa_attention

KERNELS = ["sdpa-3d", "sdpa", "blocked-256", "blocked-1024", "dense"]


def _call(kernel: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if kernel == "sdpa-3d":
        return F.scaled_dot_product_attention(q[None], k[None], v[None])[0]
    if kernel == "sdpa":
        return sdpa_attention(q, k, v)
    if kernel == "dense":
        return torch.softmax(q @ k.T / q.shape[1] ** 0.5, dim=1) @ v
    return blocked_softmax_attention(q, k, v, block_size=int(kernel.split("-")[1]))


def _measure(kernel: str, n_q: int, n: int, d: int) -> str:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(s, d, generator=g, requires_grad=True) for s in (n_q, n, n))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    out = _call(kernel, q, k, v)
    forward = time.perf_counter() - t
    mid = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    out.sum().backward()
    backward = time.perf_counter() - t
    end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (
        f"{kernel:13s} {n_q} x {n}: forward {forward:.2f} s, backward {backward:.2f} s, "
        f"peak extra {(mid - base) / 1024:.0f} MB (forward) / {(end - base) / 1024:.0f} MB "
        f"(forward + backward); dense scores {n_q * n * 4 / 2**20:.0f} MB"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--queries", type=int, default=8000)
    p.add_argument("--keys", type=int, default=8000)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kernel", choices=KERNELS, help="measure one kernel in this process")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.kernel:
        print(_measure(args.kernel, args.queries, args.keys, args.width))
        return
    print(f"torch {torch.__version__}, {args.threads} thread(s), width {args.width}")
    for kernel in KERNELS:
        cmd = [sys.executable, __file__, "--kernel", kernel]
        cmd += ["--queries", str(args.queries), "--keys", str(args.keys)]
        cmd += ["--width", str(args.width), "--threads", str(args.threads)]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
