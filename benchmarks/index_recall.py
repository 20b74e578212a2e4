"""Approximate vector search against exact: recall@k and query time of HNSW and IVF.

    python benchmarks/index_recall.py [RUN_DIR] [--k 20] [--queries 2000]
                                      [--items 200000 --dim 64]   (random vectors, no RUN_DIR)

With RUN_DIR: the run's item vectors, its users as queries, their training items excluded (the
serving path). Without: random Gaussian vectors of the given size (a stand-in for a large
catalogue). Prints, per index, build time, mean query time per user, and recall@k = the mean
fraction of the exact top-k (``flat``) that the index returns.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from cranerec.serve import Recommender, VectorIndex

SETTINGS = [
    ("flat", {}),
    ("hnsw", {"hnsw_m": 32, "ef_search": 64}),
    ("hnsw", {"hnsw_m": 32, "ef_search": 128}),
    ("ivf", {"nprobe": 8}),
    ("ivf", {"nprobe": 32}),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    if args.run_dir:
        rec = Recommender.load(args.run_dir)
        items = rec.item_emb
        users = rng.choice(rec.n_users, size=min(args.queries, rec.n_users), replace=False)
        queries = rec.user_emb[users]
        exclude = [rec._seen_items(u) for u in users]
        what = f"run {args.run_dir} ({rec.config.model_name}): {len(items):,} items, d={items.shape[1]}, seen items excluded"
    else:
        items = rng.normal(size=(args.items, args.dim)).astype(np.float32)
        queries = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
        exclude = None
        what = f"random Gaussian vectors: {args.items:,} items, d={args.dim}"
    print(what)
    print(f"{len(queries):,} queries, k={args.k}")
    exact = None
    for kind, options in SETTINGS:
        t0 = time.perf_counter()
        index = VectorIndex(items, kind, **options)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, found = index.search(queries, args.k, exclude)
        per_query_ms = 1000 * (time.perf_counter() - t0) / len(queries)
        if exact is None:
            exact = found
        hits = [
            len(np.intersect1d(a[a >= 0], e[e >= 0])) / max(1, int((e >= 0).sum()))
            for a, e in zip(found, exact, strict=True)
        ]
        label = kind + "".join(f" {k}={v}" for k, v in options.items())
        print(
            f"{label:<28} build {build:7.2f} s   query {per_query_ms:7.3f} ms/user   "
            f"recall@{args.k} {np.mean(hits):.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
