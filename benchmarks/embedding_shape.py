"""What a trained model's vectors look like: the users' shared direction and the popularity of
what it recommends (the mechanism behind the contrastive term's cost, docs/crane.md).

    .venv/bin/python benchmarks/embedding_shape.py --data DATA NAME=RUN_DIR [NAME=RUN_DIR ...]

For each run (its ``embeddings.npz``, the kept weights): ||mean_u z_u|| / mean_u ||z_u|| (1: every
user vector points the same way, 0: no common direction), the mean training degree of the items
in the top-20 of 3,000 users drawn with seed 0 (training items excluded), the number of distinct
items in those top-20 lists, and the mean vector norms.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _data import load_or_skip

from cranerec.utils.ranking import topk_items


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR")
    args = p.parse_args()
    bad = [r for r in args.runs if "=" not in r]
    if bad:
        p.error(f"runs are NAME=RUN_DIR pairs, got {bad}")
    data = load_or_skip(args.data)
    if data is None:
        return
    degree = np.asarray(data.train.sum(axis=0)).ravel()
    users = np.random.default_rng(0).choice(
        data.n_users, min(args.users, data.n_users), replace=False
    )
    seen = data.train[users].tocoo()
    print(f"data: {data.name}; mean item training degree {degree.mean():.1f}")
    print(
        "| run | shared direction | degree of top-20 items | distinct items in top-20 | mean norm of z_u | mean norm of z_i |"
    )
    print("|---|---|---|---|---|---|")
    for name, run in (r.split("=", 1) for r in args.runs):
        path = Path(run) / "embeddings.npz"
        if not path.exists():
            p.error(f"{path} not found: give a finished run directory")
        z = np.load(path)
        u, i = torch.from_numpy(z["user_emb"]), torch.from_numpy(z["item_emb"])
        if u.shape[0] != data.n_users or i.shape[0] != data.n_items:
            p.error(f"{path}: {tuple(u.shape)} / {tuple(i.shape)} vectors do not match {args.data}")
        shared = (u.mean(0).norm() / u.norm(dim=1).mean()).item()
        scores = u[torch.from_numpy(users)] @ i.T
        scores[torch.from_numpy(seen.row).long(), torch.from_numpy(seen.col).long()] = -torch.inf
        top = topk_items(scores, 20)[1].numpy()  # the evaluator's order and tie rule
        print(
            f"| {name} | {shared:.3f} | {degree[top].mean():.1f} | {len(np.unique(top))} | "
            f"{u.norm(dim=1).mean():.3f} | {i.norm(dim=1).mean():.3f} |"
        )


if __name__ == "__main__":
    main()
