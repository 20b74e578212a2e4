"""Approximate RCA (``model.rca_keys=S``) against exact RCA, side by side in one run: the error of
the refined item features and of the item graph built from them, and the time.

    python benchmarks/rca_approx.py [--data PATH] [--keys 512 2048 8192] [--set key=value ...]
        [--repeats 3]

Builds CRANE (default settings, seed 1, untrained: RCA's weights at their initialisation) on the
data, computes X_att (Eq. 13, the item rows) exactly, then with S sampled keys per attention for
each S, and prints for each: the time of one forward pass of RCA (median of ``--repeats``) and its
ratio to exact; the relative error ||X_S - X|| / ||X|| (median over the repeats, each with its own
draw); and, since CRANE uses X_att only to build the item graph, the fraction of each item's
top-``knn_k`` neighbours (Eq. 14) that the approximate graph shares with the exact one.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--keys", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from cranerec.data.loaders import load_dataset
    from cranerec.graph import knn_graph
    from cranerec.models import get_model_class
    from cranerec.train.run import build_config
    from cranerec.train.trainer import seed_everything

    config = build_config(model="crane", data=args.data, seed=1, overrides=args.overrides)
    dataset = load_dataset(config.data)
    torch.set_num_threads(config.train.n_threads)
    n = dataset.n_users + dataset.n_items
    synthetic = " (SYNTHETIC data)" if dataset.synthetic else ""
    print(f"{dataset.name}{synthetic}: {dataset.n_users:,} users + {dataset.n_items:,} items = "
          f"{n:,} RCA entities, modalities {', '.join(dataset.modalities)}; rounds "
          f"{config.model.rca_rounds}, width {config.model.rca_width}; {platform.machine()}, "
          f"torch {torch.__version__}, {config.train.n_threads} threads")  # fmt: skip

    def build(keys: int):
        seed_everything(1)  # the same weights for every S
        cfg = build_config(model="crane", data=args.data, seed=1,
                           overrides=[*args.overrides, f"model.rca_keys={keys}"])  # fmt: skip
        return get_model_class("crane")(dataset, cfg.model).eval()

    def run(model) -> tuple[float, torch.Tensor]:
        start = time.perf_counter()
        with torch.no_grad():
            x = model.fused_item_features()
        return time.perf_counter() - start, x

    k = config.model.knn_k
    exact_model = build(0)
    times, x = [], None
    for _ in range(args.repeats):
        t, x = run(exact_model)
        times.append(t)
    exact_s = statistics.median(times)
    exact_idx, _ = knn_graph(x, k)
    print(f"exact: {exact_s:.2f} s per RCA forward")
    print(
        "| keys S | S / n | time (s) | time / exact | relative error of X_att | item-graph neighbours kept |"
    )
    print("|---|---|---|---|---|---|")
    for keys in args.keys:
        model = build(keys)
        times, errors, kept = [], [], []
        for _ in range(args.repeats):
            t, xs = run(model)
            times.append(t)
            errors.append(float((xs - x).norm() / x.norm()))
            idx, _ = knn_graph(xs, k)
            same = (idx[:, :, None] == exact_idx[:, None, :]).any(-1).float().mean()
            kept.append(float(same))
        t = statistics.median(times)
        print(f"| {keys:,} | {keys / n:.3f} | {t:.2f} | {t / exact_s:.3f} | "
              f"{statistics.median(errors):.4f} | {statistics.median(kept):.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
