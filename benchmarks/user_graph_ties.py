"""How the user-user graph of DualGNN / DRAGON spreads its neighbour weight, by tie rule.

Each user keeps its k users with the most shared training items; most counts are 1 or 2, so
the order among equal counts picks most of the k slots. Prints, for ties to the lower index
(the code before 2026-12-06), ties in a seeded random order (today's), and optionally MMRec's
precomputed ``user_graph_dict.npy``: the share of all neighbour weight that lands on the 100
most-named users, how many distinct users are named, and the mean training degree of a
neighbour weighted by its weight.

    .venv/bin/python benchmarks/user_graph_ties.py --data ../shared/datasets/tiktok \
        [--mmrec-graph /path/to/mmrec/data/tiktok/user_graph_dict.npy] [--k 40]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from cranerec.data.loaders import load_dataset
from cranerec.graph.user_graph import cooccurrence_neighbours, sample_neighbours, slot_weights


def spread(users, counts, length, k: int, degree: np.ndarray) -> str:
    """The weight matrix's column mass: top-100 share, distinct users, weighted degree."""
    slots, slot_counts = sample_neighbours(users, counts, length, k, np.random.default_rng(0))
    weights = slot_weights(slot_counts, length, "softmax")
    mass = np.bincount(slots.ravel(), weights=weights.ravel(), minlength=len(degree))
    top = np.sort(mass)[::-1][:100].sum() / mass.sum()
    named = int((mass > 0).sum())
    mean_degree = float((mass * degree).sum() / mass.sum())
    return (
        f"top-100 share {top:.3f}  distinct users named {named}  weighted degree {mean_degree:.1f}"
    )


def mmrec_lists(path: str, n_users: int, n: int):
    """MMRec's {user: [neighbours, counts]} as the (users, counts, length) arrays."""
    table = np.load(path, allow_pickle=True).item()  # MMRec's own file, read as it reads it
    users = np.zeros((n_users, n), dtype=np.int64)
    counts = np.zeros((n_users, n), dtype=np.float32)
    length = np.zeros(n_users, dtype=np.int64)
    for u in range(n_users):
        nbrs, cnts = table[u][0][:n], table[u][1][:n]
        length[u] = len(nbrs)
        users[u, : len(nbrs)] = np.asarray(nbrs, dtype=np.int64)
        counts[u, : len(nbrs)] = np.asarray(cnts, dtype=np.float32)
    return users, counts, length


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--mmrec-graph", help="MMRec's user_graph_dict.npy for the same data")
    p.add_argument("--k", type=int, default=40)
    args = p.parse_args(argv)
    data = load_dataset(path=args.data)
    degree = np.diff(data.train.tocsr().indptr).astype(np.float64)
    rows = {
        "lower index": cooccurrence_neighbours(data.train, args.k),
        "random (seed 0)": cooccurrence_neighbours(data.train, args.k, np.random.default_rng(0)),
    }
    if args.mmrec_graph:
        rows["MMRec's file"] = mmrec_lists(args.mmrec_graph, data.n_users, args.k)
    for name, (users, counts, length) in rows.items():
        print(f"{name:16s} {spread(users, counts, length, args.k, degree)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
