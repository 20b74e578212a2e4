"""Full-ranking evaluation speed on Amazon-Baby's shape: cranerec's evaluator against a plain
NumPy argsort implementation of the same protocol (MMRec: mask training items, rank all items).

    .venv/bin/python benchmarks/eval_speed.py [--data ../shared/datasets/amazon-baby]
        [--embeddings RUN_DIR/embeddings.npz] [--repeats 5] [--threads 0]

Prints seconds per full evaluation (all users with a test interaction, K = 10, 20, 50, five
metrics) for both, their ratio, and checks that both give the same Recall@20 / NDCG@20.
Target: under 0.5 s per evaluation on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from cranerec.data import load_dataset
from cranerec.eval import EvalConfig, Evaluator

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "amazon-baby"


def numpy_reference(data, user_emb, item_emb, ks=(10, 20, 50)):
    """The same protocol with NumPy: scores, -inf on training items, full argsort per batch."""
    test, train = data.test, data.train
    users = np.nonzero((np.diff(test.indptr) > 0) & (np.diff(train.indptr) > 0))[0]
    kmax = max(ks)
    recall, ndcg = [], []
    discount = 1.0 / np.log2(np.arange(2, kmax + 2))
    for start in range(0, len(users), 1024):
        b = users[start : start + 1024]
        scores = user_emb[b] @ item_emb.T
        sub = train[b]
        scores[np.repeat(np.arange(len(b)), np.diff(sub.indptr)), sub.indices] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :kmax]
        rel = test[b]
        hits = np.take_along_axis(rel.toarray() > 0, top, axis=1)[:, :20]
        n_rel = np.diff(rel.indptr)
        recall.append(hits.sum(1) / n_rel)
        idcg = np.cumsum(discount)[np.minimum(n_rel, 20) - 1]
        ndcg.append((hits * discount[:20]).sum(1) / idcg)
    return float(np.concatenate(recall).mean()), float(np.concatenate(ndcg).mean())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DEFAULT))
    p.add_argument("--embeddings", help="embeddings.npz of a run (default: random, seeded)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    args = p.parse_args()
    if not Path(args.data).exists():
        print(f"skipped: dataset not found at {args.data}")
        return 0
    torch.set_num_threads(args.threads or os.cpu_count())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_dataset(path=args.data)
    if args.embeddings:
        z = np.load(args.embeddings)
        user_emb, item_emb = z["user_emb"], z["item_emb"]
    else:
        rng = np.random.default_rng(0)
        user_emb = rng.normal(size=(data.n_users, 64)).astype(np.float32)
        item_emb = rng.normal(size=(data.n_items, 64)).astype(np.float32)
    ev = Evaluator(data, EvalConfig())
    u, i = torch.from_numpy(user_emb), torch.from_numpy(item_emb)
    ev.evaluate(u, i, "test")  # warm-up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        res = ev.evaluate(u, i, "test")
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    ref_recall, ref_ndcg = numpy_reference(data, user_emb, item_emb)
    ref_s = time.perf_counter() - t
    ours = float(np.median(times))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"data: {data.name} ({data.n_users} users x {data.n_items} items), "
        f"{len(res.users)} users evaluated on test"
    )
    print(
        f"cranerec evaluator: {ours:.3f} s per full evaluation (median of {args.repeats}; "
        f"min {min(times):.3f})"
    )
    print(f"numpy argsort reference: {ref_s:.3f} s")
    print(f"speed-up: {ref_s / ours:.1f}x   target < 0.5 s: {'met' if ours < 0.5 else 'NOT met'}")
    same = (
        abs(res.metrics["recall@20"] - ref_recall) < 1e-9
        and abs(res.metrics["ndcg@20"] - ref_ndcg) < 1e-9
    )
    print(
        f"recall@20 {res.metrics['recall@20']:.6f} vs reference {ref_recall:.6f}; ndcg@20 "
        f"{res.metrics['ndcg@20']:.6f} vs {ref_ndcg:.6f}: {'identical' if same else 'DIFFERENT'}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
