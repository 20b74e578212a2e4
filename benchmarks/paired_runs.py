"""Paired comparison of two finished runs, or of two sets of seeds, over their test users (the
figures quoted in docs/results/sports_text.md): relative difference of the mean and the paired
t-test p-value, per metric, from each run's ``per_user.npz``.

    .venv/bin/python benchmarks/paired_runs.py RUN_A RUN_B [--metrics recall@20 ndcg@20]
    .venv/bin/python benchmarks/paired_runs.py --a A_SEED1 A_SEED2 A_SEED3 --b B_SEED1 B_SEED2 B_SEED3

Reads B against A: "+12%" means B's mean is 12% above A's. With several runs a side (the same
seeds, in the same order), each user's value is averaged over that side's runs before the test
over users (the ``main`` suite report's rule), and the runs' own test values are also paired by
position for a test over seeds.
"""

from __future__ import annotations

import argparse

import numpy as np

from cranerec.experiments.stats import mean_per_user, mean_std, paired_ttest
from cranerec.train.rundir import RunDir


def _p(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2g}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="*", help="RUN_A RUN_B (one run a side)")
    p.add_argument("--a", nargs="+", default=[], help="side A's runs, one per seed")
    p.add_argument("--b", nargs="+", default=[], help="side B's runs, the same seeds in order")
    p.add_argument("--metrics", nargs="+", default=["recall@20", "ndcg@20"])
    p.add_argument("--split", default="test", choices=["valid", "test"])
    args = p.parse_args()
    if args.runs and (args.a or args.b):
        p.error("give RUN_A RUN_B or --a ... --b ..., not both")
    side_a, side_b = (args.runs[:1], args.runs[1:]) if args.runs else (args.a, args.b)
    if not side_a or len(side_a) != len(side_b):
        p.error("need the same number of runs on each side (at least one)")
    for metric in args.metrics:
        a, b = mean_per_user(side_a, metric, args.split), mean_per_user(side_b, metric, args.split)
        users = sorted(set(a) & set(b))
        x = np.array([a[u] for u in users])
        y = np.array([b[u] for u in users])
        line = (
            f"{metric}: A {x.mean():.4f}  B {y.mean():.4f}  B/A - 1 = {y.mean() / x.mean() - 1:+.1%}"
            f"  paired t-test over users p = {_p(paired_ttest(y, x))}  ({len(users):,} users)"
        )
        if len(side_a) > 1:
            run_a = [_value(r, metric, args.split) for r in side_a]
            run_b = [_value(r, metric, args.split) for r in side_b]
            (ma, sa), (mb, sb) = mean_std(run_a), mean_std(run_b)
            line += (
                f"\n  per run: A {ma:.4f} ± {sa:.4f} {_list(run_a)}  B {mb:.4f} ± {sb:.4f} "
                f"{_list(run_b)}  paired over {len(side_a)} seeds p = {_p(paired_ttest(run_b, run_a))}"
            )
        print(line)


def _value(run_dir: str, metric: str, split: str) -> float:
    return float(RunDir(run_dir).read_results()[split][metric])


def _list(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


if __name__ == "__main__":
    try:
        main()
    except (OSError, KeyError, ValueError) as exc:  # not a finished run directory
        raise SystemExit(
            f"paired_runs: {exc}; give directories of finished runs (results.json, per_user.npz)"
        ) from None
