"""Per-seed test figures from an MMRec log, for side-by-side parity tables.

    .venv/bin/python benchmarks/mmrec_log.py MMREC_LOG [--metrics recall@20 ndcg@20]

MMRec (run outside this project, see docs/parity.md) ends its log with one block per
hyper-parameter combination: ``Parameters: [...]=(seed, ...), best valid: ..., best test: ...``.
This prints each combination's best-validation and test figures and their mean over seeds, then
the validation score (the valid metric, Recall@20 by default) per epoch averaged over the
combinations, the epoch of each one's best, and the median seconds per training epoch and per
evaluation.
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

BLOCK = re.compile(r"Parameters: (\[.*?\])=\((.*?)\),\n best valid: (.*?)\n best test: (.*?)\n")


def _value(text: str, key: str) -> float:
    return float(re.search(re.escape(key) + r": ([0-9.]+)", text).group(1))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("log")
    p.add_argument("--metrics", nargs="+", default=["recall@20", "ndcg@20"])
    args = p.parse_args()
    blocks = BLOCK.findall(Path(args.log).read_text(encoding="utf-8"))
    if not blocks:
        raise SystemExit(f"{args.log}: no finished 'Parameters ... best test' block found")
    rows = []
    for names, values, valid, test in blocks:
        rows.append(
            [_value(valid, m) for m in args.metrics] + [_value(test, m) for m in args.metrics]
        )
        cells = "  ".join(f"{v:.4f}" for v in rows[-1])
        print(f"{names}=({values}): valid {' '.join(args.metrics)} / test: {cells}")
    means = [statistics.fmean(col) for col in zip(*rows, strict=True)]
    print(f"mean over {len(rows)}: " + "  ".join(f"{v:.4f}" for v in means))
    curves(Path(args.log).read_text(encoding="utf-8"))


def curves(text: str) -> None:
    """Per-epoch validation scores averaged over the combinations, best epochs, median times."""
    runs = re.split(r"=+\d+/\d+: Parameters", text)[1:]
    scores = [[float(x) for x in re.findall(r"valid_score: ([0-9.]+)", r)] for r in runs]
    if not scores or not all(scores):
        return
    n = min(len(s) for s in scores)
    avg = [statistics.fmean(s[e] for s in scores) for e in range(n)]
    print("valid score per epoch, mean over runs: " + " ".join(f"{v:.4f}" for v in avg))
    print(
        "best epoch per run: "
        + ", ".join(str(max(range(len(s)), key=s.__getitem__)) for s in scores)
    )
    train = [float(x) for x in re.findall(r"training \[time: ([0-9.]+)s", text)]
    evals = [float(x) for x in re.findall(r"evaluating \[time: ([0-9.]+)s", text)]
    print(
        f"median s per training epoch {statistics.median(train):.1f}, per evaluation {statistics.median(evals):.1f}"
    )


if __name__ == "__main__":
    main()
