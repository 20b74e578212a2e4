"""Paired comparison of two finished runs over their test users (the figures quoted in
docs/results/sports_text.md): relative difference of the mean and the paired t-test p-value,
per metric, from each run's ``per_user.npz``.

    .venv/bin/python benchmarks/paired_runs.py RUN_A RUN_B [--metrics recall@20 ndcg@20]

Reads B against A: "+12%" means B's mean is 12% above A's.
"""

from __future__ import annotations

import argparse

import numpy as np

from cranerec.experiments.stats import paired_ttest, per_user


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--metrics", nargs="+", default=["recall@20", "ndcg@20"])
    p.add_argument("--split", default="test", choices=["valid", "test"])
    args = p.parse_args()
    for metric in args.metrics:
        a, b = per_user(args.run_a, metric, args.split), per_user(args.run_b, metric, args.split)
        users = sorted(set(a) & set(b))
        x = np.array([a[u] for u in users])
        y = np.array([b[u] for u in users])
        pval = paired_ttest(y, x)
        shown = "undefined" if pval is None else f"{pval:.2g}"
        print(
            f"{metric}: A {x.mean():.4f}  B {y.mean():.4f}  B/A - 1 = {y.mean() / x.mean() - 1:+.1%}"
            f"  paired t-test p = {shown}  ({len(users):,} users)"
        )


if __name__ == "__main__":
    main()
