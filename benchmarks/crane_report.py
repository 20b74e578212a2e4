"""CRANE on TikTok: the seed table against LightGCN and the ablation table, from run directories.

    .venv/bin/python benchmarks/crane_report.py --crane RUNS/crane-tiktok \\
        --lightgcn RUNS/parity/tiktok-lightgcn --ablations runs/experiments

``--crane`` and ``--lightgcn`` are ``--seeds`` run directories (``seed-N/`` inside);
``--ablations`` is a result store holding the ``ablation`` suite's runs (``cranerec experiment
ablation --store DIR``), or a folder with one run directory per variant (``seed-1/`` or plain,
its settings in ``settings.txt``).
Prints (1) test Recall@10/20 and NDCG@10/20, mean ± std over seeds, mean seconds per training
epoch, peak RSS, and a paired test over users of CRANE against LightGCN (per-user Recall@20
averaged over seeds; paired t-test and Wilcoxon signed-rank, scipy); (2) each ablation's test
figures, its change against the full model of the same seed and the p-value of the paired
t-test over users (per-user Recall@20). Reads results.json and per_user.npz only.

Superseded by the ``main`` and ``ablation`` suites (``cranerec experiment``, ``cranerec report``,
docs/experiments.md), whose tables add Holm-corrected p-values over users and over seeds; kept
for the run directories that benchmarks/crane_tiktok.sh writes.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
from scipy import stats

# One implementation of the per-user tables and the paired t-test: the experiment report's.
from cranerec.experiments.stats import mean_per_user, paired_ttest, per_user

METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def seed_runs(directory: Path) -> dict[int, Path]:
    """{seed: run dir} of the finished runs under ``directory`` (or the directory itself)."""
    if (directory / "results.json").exists():
        seed = json.loads((directory / "results.json").read_text())["seed"]
        return {seed: directory}
    return {
        int(p.name.removeprefix("seed-")): p
        for p in sorted(directory.glob("seed-*"))
        if (p / "results.json").exists()
    }


def paired(a: dict[str, float], b: dict[str, float]) -> tuple[float, float]:
    """(t-test p, Wilcoxon p) of a vs b over the users both evaluated."""
    users = sorted(set(a) & set(b))
    x, y = np.array([a[u] for u in users]), np.array([b[u] for u in users])
    t = paired_ttest(x, y)
    w = stats.wilcoxon(x, y).pvalue if np.any(x != y) else 1.0
    return float("nan") if t is None else t, float(w)


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def seed_table(named: dict[str, Path]) -> None:
    print(
        "| model | seeds | "
        + " | ".join(f"test {m}" for m in METRICS)
        + " | best epochs | s/epoch | peak RSS MB |"
    )
    print("|---|---|" + "---|" * (len(METRICS) + 3))
    for name, directory in named.items():
        runs = seed_runs(directory)
        if not runs:
            continue
        res = [json.loads((r / "results.json").read_text()) for r in runs.values()]
        cells = [fmt([x["test"][m] for x in res]) for m in METRICS]
        epochs = ", ".join(str(x["best_epoch"]) for x in res)
        sec = statistics.mean(x["epoch_seconds_mean"] for x in res)
        rss = max(x["peak_rss_mb"] for x in res)
        seeds = ", ".join(str(s) for s in runs)
        print(
            f"| {name} | {seeds} | " + " | ".join(cells) + f" | {epochs} | {sec:.1f} | {rss:.0f} |"
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--crane", type=Path, required=True)
    p.add_argument("--lightgcn", type=Path, required=True)
    p.add_argument("--ablations", type=Path)
    args = p.parse_args()
    seed_table({"crane": args.crane, "lightgcn": args.lightgcn})
    crane, lgn = seed_runs(args.crane), seed_runs(args.lightgcn)
    common = sorted(set(crane) & set(lgn))
    if common:
        a = mean_per_user([crane[s] for s in common])
        b = mean_per_user([lgn[s] for s in common])
        t, w = paired(a, b)
        rel = np.mean(list(a.values())) / np.mean(list(b.values())) - 1
        print(f"\nCRANE vs LightGCN over users (seeds {common}, per-user Recall@20 averaged over "
              f"seeds): {rel:+.1%}, paired t-test p = {t:.2g}, Wilcoxon p = {w:.2g}")  # fmt: skip
    if not args.ablations or not args.ablations.exists():
        return
    print(
        "\n| variant | settings | test R@20 | test N@20 | change in R@20 | p (t-test over users) | best epoch |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, settings, seed, run in ablation_runs(args.ablations):
        if seed not in crane:
            continue
        res = json.loads((run / "results.json").read_text())
        full = json.loads((crane[seed] / "results.json").read_text())
        t, _ = paired(per_user(run), per_user(crane[seed]))
        change = res["test"]["recall@20"] / full["test"]["recall@20"] - 1
        print(f"| {name} | {settings} | {res['test']['recall@20']:.4f} | {res['test']['ndcg@20']:.4f} | "
              f"{change:+.1%} | {t:.2g} | {res['best_epoch']} |")  # fmt: skip


def ablation_runs(where: Path) -> list[tuple[str, str, int, Path]]:
    """(variant, its settings, seed, finished run dir) from a result store or a folder."""
    out = []
    if (where / "index.sqlite3").exists():
        from cranerec.experiments.spec import load_spec
        from cranerec.experiments.store import Store

        store = Store(where)
        changes = {s.name: s.overrides for s in load_spec("ablation").settings}
        for row in store.runs("ablation"):
            if row.setting != "full" and row.status == "done":
                settings = json.dumps(changes.get(row.setting, {}), separators=(",", ":"))
                out.append((row.setting, settings, row.seed, store.run_dir(row.run_id)))
        return out
    for variant in sorted(where.iterdir()):
        text = variant / "settings.txt"
        settings = text.read_text().strip() if text.exists() else ""
        out += [(variant.name, settings, s, r) for s, r in seed_runs(variant).items()]
    return out


if __name__ == "__main__":
    main()
