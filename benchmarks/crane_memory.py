"""Peak memory and time of one CRANE training epoch on synthetic data of a given shape
(default: Amazon-Baby's, 19,445 users, 7,050 items, 160,792 interactions, 4096-d and 384-d
features, as in the MMRec release).

    .venv/bin/python benchmarks/crane_memory.py [--users 19445 --items 7050 --interactions 160792]
        [--widths 4096 384] [--set model.knn_k=15 train.device=cuda ...]

Prints the epoch's seconds and the process's peak RSS (target for Baby's shape: under 8 GB),
and with ``--set train.device=cuda`` the peak GPU memory.
The data are random (SYNTHETIC): this measures cost, not quality.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import scipy.sparse as sp

from cranerec.data import Dataset
from cranerec.train import build_config, train_run
from cranerec.utils.env import peak_gpu_suffix, peak_rss_mb


def make_data(
    n_users: int, n_items: int, n_inter: int, widths: list[int], seed: int = 0
) -> Dataset:
    rng = np.random.default_rng(seed)
    users = np.concatenate([np.arange(n_users), rng.integers(0, n_users, n_inter)])
    items = np.concatenate([rng.integers(0, n_items, n_users), rng.integers(0, n_items, n_inter)])
    keys = np.unique(users.astype(np.int64) * n_items + items)[:n_inter]
    users, items = keys // n_items, keys % n_items
    labels = rng.choice(3, len(keys), p=[0.8, 0.1, 0.1])
    labels[np.unique(users, return_index=True)[1]] = 0  # every user keeps a training item
    mats = {
        s: sp.csr_matrix((np.ones((labels == c).sum(), np.float32), (users[labels == c], items[labels == c])),
                         shape=(n_users, n_items))
        for c, s in enumerate(("train", "valid", "test"))
    }  # fmt: skip
    feats = {f"m{w}": rng.normal(size=(n_items, w)).astype(np.float32) for w in widths}
    return Dataset("synthetic-shape", user_ids=np.arange(n_users), item_ids=np.arange(n_items),
                   features=feats, synthetic=True, **mats)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=19445)
    p.add_argument("--items", type=int, default=7050)
    p.add_argument("--interactions", type=int, default=160792)
    p.add_argument("--widths", type=int, nargs="+", default=[4096, 384])
    p.add_argument("--set", nargs="*", default=[])
    args = p.parse_args()
    data = make_data(args.users, args.items, args.interactions, args.widths)
    print(
        f"SYNTHETIC data: {data.n_users} users, {data.n_items} items, {data.train.nnz} train, "
        f"features {args.widths}; peak RSS after building it {peak_rss_mb():.0f} MB"
    )
    cfg = build_config(
        model="crane", overrides=["train.epochs=1", "train.progress=false", *args.set]
    )
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = train_run(cfg, tmp, data)
        total = time.perf_counter() - t
    print(
        f"one CRANE epoch: {res['epoch_seconds_mean']:.1f} s training + {res['eval_seconds_mean']:.1f} s "
        f"validation ({total:.1f} s with set-up and final evaluation); peak RSS {peak_rss_mb():.0f} MB "
        f"(target < 8192 MB){peak_gpu_suffix(cfg.train.device)}"
    )


if __name__ == "__main__":
    main()
