"""Per-seed test figures from an MMRec log, for side-by-side parity tables.

    .venv/bin/python benchmarks/mmrec_log.py MMREC_LOG [--metrics recall@20 ndcg@20]

MMRec (run outside this project, see docs/parity.md) ends its log with one block per
hyper-parameter combination: ``Parameters: [...]=(seed, ...), best valid: ..., best test: ...``.
This prints each combination's best-validation and test figures and their mean over seeds.
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


if __name__ == "__main__":
    main()
