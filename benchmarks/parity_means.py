"""Means over seeds from the per-seed side-by-side table in ``docs/parity.md`` (issue 19).

    .venv/bin/python benchmarks/parity_means.py docs/parity.md

Reads every row ``| model | MMRec or cranerec | seed | valid R@20 | test R@20 | test N@20 |
best / run |`` (the figures each come from ``benchmarks/mmrec_log.py LOG`` or a run's
``results.json``, as the doc says) and prints, per model, the mean ± sample std of test
Recall@20 / NDCG@20 over the seeds run on both sides and ours as a share of MMRec's means: the
summary table beside it in the doc and the README. Also reads the Sports table's rows ``| model,
MMRec or cranerec | seed | valid R@20 | valid N@20 | test R@20 | test N@20 | ...``
(``docs/results/sports_text.md``). Use it where the run directories and logs
are no longer at hand; ``benchmarks/parity_table.py`` computes the same from them.
"""

import argparse
import re
import statistics

ROW = re.compile(r"^\| (\w+) \| (MMRec|cranerec) \| (\d+) \| [^|]+\| ([0-9.]+) \| ([0-9.]+) \|")
SPORTS_ROW = re.compile(  # docs/results/sports_text.md: valid R@20 and N@20 before the test pair
    r"^\| (\w+), (MMRec|cranerec) \| (\d+) \| [^|]+\|[^|]+\| ([0-9.]+) \| ([0-9.]+) \|"
)


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("doc", help="docs/parity.md or docs/results/sports_text.md")
    args = parser.parse_args()
    runs: dict[str, dict[str, dict[int, tuple[float, float]]]] = {}
    with open(args.doc, encoding="utf-8") as f:
        for line in f:
            m = ROW.match(line) or SPORTS_ROW.match(line)
            if m:
                model, side, seed, recall, ndcg = m.groups()
                runs.setdefault(model, {}).setdefault(side, {})[int(seed)] = (
                    float(recall),
                    float(ndcg),
                )
    if not runs:
        raise SystemExit(f"{args.doc}: no per-seed rows '| model | MMRec|cranerec | seed | ...'")
    print("| model | seeds on both sides | ours R@20 / N@20 | MMRec R@20 / N@20 | ours / MMRec |")
    print("|---|---|---|---|---|")
    for model, sides in runs.items():
        seeds = sorted(set(sides.get("MMRec", {})) & set(sides.get("cranerec", {})))
        if not seeds:
            continue
        ours = [sides["cranerec"][s] for s in seeds]
        ref = [sides["MMRec"][s] for s in seeds]
        cells = []
        for group in (ours, ref):
            cells.append(" / ".join(spread([g[k] for g in group]) for k in (0, 1)))
        shares = []
        for k in (0, 1):
            mean_ours = statistics.fmean(o[k] for o in ours)
            shares.append(f"{100 * mean_ours / statistics.fmean(r[k] for r in ref):.1f}%")
        share = " / ".join(shares)
        print(f"| {model} | {', '.join(map(str, seeds))} | {cells[0]} | {cells[1]} | {share} |")


if __name__ == "__main__":
    main()
