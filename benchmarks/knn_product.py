"""The item-graph layer S h (CRANE's Eq. 15) forward + backward: the gather of each row's k
neighbours against the CSR product ``graph.KnnProduct`` uses when S's weights carry no gradient,
side by side in one run, with their largest difference.

    .venv/bin/python benchmarks/knn_product.py [--items 63001] [--k 10] [--dim 64] [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from cranerec.graph import KnnProduct


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=63001)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, args.items, (args.items, args.k), generator=g)
    values = torch.rand(args.items, args.k, generator=g)
    h = torch.randn(args.items, args.dim, generator=g, requires_grad=True)
    product = KnnProduct()

    def gather() -> torch.Tensor:
        return (values.unsqueeze(-1) * h[idx]).sum(dim=1)

    def csr() -> torch.Tensor:
        return product(idx, values, h)

    diff = (gather() - csr()).abs().max().item()
    times = {}
    for name, f in [("gather", gather), ("csr", csr)] * 2:  # the second round is the figure
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            f().sum().backward()
            h.grad = None
        times[name] = (time.perf_counter() - t0) / args.repeats
    print(f"S h forward + backward, {args.items:,} rows, k = {args.k}, d = {args.dim}; "
          f"{torch.get_num_threads()} threads, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}")  # fmt: skip
    print(f"gather {times['gather']:.3f} s, CSR {times['csr']:.3f} s "
          f"({times['gather'] / times['csr']:.1f}x); max |difference| {diff:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
