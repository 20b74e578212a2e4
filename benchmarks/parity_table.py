"""Print the parity table (markdown) from the run directories written by benchmarks/parity.sh.

    .venv/bin/python benchmarks/parity_table.py [RUNS_DIR] [--seeds 1 2 3]
    .venv/bin/python benchmarks/parity_table.py RUNS_DIR --issue5 [--crane RUNS/crane-tiktok]

For each dataset/model: test Recall@20 and NDCG@20 (mean ± std over the given seeds), the
reference figure and our mean as a percentage of it, the best epoch, and the median seconds per
training epoch and per validation pass read from metrics.jsonl (the median is robust to other
work on the machine during a run).

``--issue5`` prints instead the table of the baselines issue on TikTok: every model with test
Recall@10/20 and NDCG@10/20 (mean ± std over seeds), epochs to best, the median s/epoch, the
largest peak RSS of its runs, and the reference's R@20 / N@20 and s/epoch beside; ``--crane``
adds CRANE's seed runs (``benchmarks/crane_tiktok.sh``) as a row.

    .venv/bin/python benchmarks/parity_table.py RUNS_DIR --mmrec-logs MMREC_LOG_DIR [--data tiktok]

``--mmrec-logs`` prints the side-by-side table of issue 19's models (SLMRec, LGMRec, MGCN, GRCN,
DualGNN, DRAGON): for each, the seeds finished on both sides (ours: ``RUNS_DIR/<data>-<model>/
seed-N``; MMRec: ``<Model>-<data>-seedN.out`` in MMREC_LOG_DIR, one seed per log, its final
``best test`` block), the two means of test Recall@20 / NDCG@20 over those seeds, ours as a
percentage of MMRec's, and each side's median seconds per training epoch, with our peak RSS.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

# MMRec reference runs on this machine (seed 999, CPU; see the foundation issue), and the CRANE
# paper's Table 4 figures for Baby (tuned hyper-parameters, MMRec's Baby release).
REFERENCE = {
    ("tiktok", "lightgcn"): ("MMRec, same settings", 0.0922, 0.0419),
    ("tiktok", "bpr"): ("MMRec, same settings", 0.0483, 0.0214),
    ("tiktok", "pop"): ("computed independently", 0.0596, 0.0254),
    # issue 5: MMRec side by side, seed 999, each model's `reference` preset
    ("tiktok", "vbpr"): ("MMRec, reference point", 0.0214, 0.0084),
    ("tiktok", "freedom"): ("MMRec, reference point", 0.0880, 0.0388),
    ("tiktok", "bm3"): ("MMRec, reference point", 0.0619, 0.0248),
    ("tiktok", "mmgcn"): ("MMRec, reference point", 0.0846, 0.0282),
    ("tiktok", "lattice"): ("MMRec, after 10 epochs", 0.0240, 0.0126),
    ("tiktok", "crane_official"): ("MMRec, after 10 epochs", 0.0320, 0.0120),
    ("amazon-baby", "lightgcn"): ("CRANE paper Table 4 (tuned)", 0.0754, None),
    ("amazon-baby", "bpr"): ("CRANE paper Table 4 (tuned)", 0.0575, None),
}


# Seconds per training epoch of the reference runs (MMRec, this machine; issue 5's table).
REFERENCE_EPOCH_S = {
    "vbpr": 0.6, "freedom": 1.6, "bm3": 2.0, "mmgcn": 13.8, "lattice": 33.0,
    "crane_official": 133.0,
}  # fmt: skip
ISSUE5_MODELS = ("pop", "bpr", "lightgcn", "vbpr", "freedom", "bm3", "mmgcn", "lattice",
                 "crane_official")  # fmt: skip


def issue5_table(root: Path, seeds: list[int], crane: Path | None) -> None:
    """The baselines issue's table on TikTok (see the module docstring)."""
    metrics = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
    print("| model | runs | " + " | ".join(f"test {m}" for m in metrics)
          + " | best epoch | s/epoch | peak RSS MB | reference R@20 / N@20 | reference s/epoch |")  # fmt: skip
    print("|---|---|" + "---|" * len(metrics) + "---|---|---|---|---|")
    rows = [(m, root / f"tiktok-{m}") for m in ISSUE5_MODELS]
    if crane is not None:
        rows.append(("crane", crane))
    for model, directory in rows:
        runs = _runs(directory, seeds)
        if not runs:
            print(f"| {model} | 0 | " + " | ".join("-" for _ in metrics) + " | - | - | - | - | - |")
            continue
        res = [json.loads((r / "results.json").read_text()) for r in runs]
        cells = [_fmt([x["test"][m] for x in res]) for m in metrics]
        epoch_s = [
            json.loads(line)["epoch_seconds"]
            for r in runs
            if (r / "metrics.jsonl").exists()  # pop trains no epoch
            for line in (r / "metrics.jsonl").read_text().splitlines()
        ]
        best = _fmt([float(x["best_epoch"]) for x in res], 0) if res[0]["epochs_run"] else "-"
        med = f"{statistics.median(epoch_s):.2f}" if epoch_s else "-"
        rss = f"{max(x['peak_rss_mb'] for x in res):.0f}"
        ref = REFERENCE.get(("tiktok", model))
        ref_text = f"{ref[1]:.4f} / {ref[2]:.4f} ({ref[0]})" if ref else "-"
        ref_s = REFERENCE_EPOCH_S.get(model, "-")
        print(f"| {model} | {len(res)} | " + " | ".join(cells)
              + f" | {best} | {med} | {rss} | {ref_text} | {ref_s} |")  # fmt: skip


ISSUE19_MODELS = ("SLMRec", "LGMRec", "MGCN", "GRCN", "DualGNN", "DRAGON")


def mmrec_seed(log: Path) -> tuple[float, float, float] | None:
    """(test R@20, test N@20, median s per training epoch) of a finished one-seed MMRec log."""
    from mmrec_log import BLOCK, _value  # noqa: PLC0415 (sibling script, run from benchmarks/)

    if not log.exists():
        return None
    text = log.read_text(encoding="utf-8", errors="replace")
    blocks = BLOCK.findall(text)
    if not blocks:
        return None
    test = blocks[-1][3]
    train = [float(x) for x in re.findall(r"training \[time: ([0-9.]+)s", text)]
    return _value(test, "recall@20"), _value(test, "ndcg@20"), statistics.median(train)


def issue19_table(root: Path, logs: Path, data: str, seeds: list[int]) -> None:
    """Ours beside MMRec on the seeds both sides have finished (module docstring)."""
    print("| model | seeds | ours R@20 / N@20 | MMRec R@20 / N@20 | ours / MMRec "
          "| ours s/epoch | MMRec s/epoch | our peak RSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for model in ISSUE19_MODELS:
        both = []
        for seed in seeds:
            run = root / f"{data}-{model.lower()}" / f"seed-{seed}"
            ref = mmrec_seed(logs / f"{model}-{data}-seed{seed}.out")
            if (run / "results.json").exists() and ref is not None:
                both.append((seed, run, ref))
        if not both:
            print(f"| {model.lower()} | - | - | - | - | - | - | - |")
            continue
        res = [json.loads((r / "results.json").read_text()) for _, r, _ in both]
        ours_r = [x["test"]["recall@20"] for x in res]
        ours_n = [x["test"]["ndcg@20"] for x in res]
        ref_r = [ref[0] for _, _, ref in both]
        ref_n = [ref[1] for _, _, ref in both]
        epoch_s = [
            json.loads(line)["epoch_seconds"]
            for _, r, _ in both
            for line in (r / "metrics.jsonl").read_text().splitlines()
        ]
        ratio = (
            f"{100 * statistics.fmean(ours_r) / statistics.fmean(ref_r):.1f}% / "
            f"{100 * statistics.fmean(ours_n) / statistics.fmean(ref_n):.1f}%"
        )
        print(
            f"| {model.lower()} | {', '.join(str(s) for s, _, _ in both)} "
            f"| {_fmt(ours_r)} / {_fmt(ours_n)} | {_fmt(ref_r)} / {_fmt(ref_n)} | {ratio} "
            f"| {statistics.median(epoch_s):.1f} "
            f"| {statistics.median(ref[2] for _, _, ref in both):.1f} "
            f"| {max(x['peak_rss_mb'] for x in res):.0f} |"
        )


def _runs(directory: Path, seeds: list[int]) -> list[Path]:
    if (directory / "results.json").exists():
        return [directory]
    return [
        directory / f"seed-{s}"
        for s in seeds
        if (directory / f"seed-{s}" / "results.json").exists()
    ]


def _fmt(values: list[float], digits: int = 4) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="?", default="runs/parity")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--issue5", action="store_true", help="the baselines issue's TikTok table")
    p.add_argument("--crane", type=Path, help="with --issue5: CRANE's seed runs as a row")
    p.add_argument("--mmrec-logs", type=Path, help="issue 19's side-by-side table from MMRec logs")
    p.add_argument("--data", default="tiktok", help="with --mmrec-logs: the dataset's name")
    args = p.parse_args()
    if args.mmrec_logs:
        issue19_table(Path(args.runs), args.mmrec_logs, args.data, args.seeds)
        return
    if args.issue5:
        issue5_table(Path(args.runs), args.seeds, args.crane)
        return
    print(
        "| data | model | runs | test Recall@20 | test NDCG@20 | reference (R@20 / N@20) | ours / reference | best epoch | s/epoch | s/validation |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (data, model), (source, ref_r, ref_n) in REFERENCE.items():
        runs = _runs(Path(args.runs) / f"{data}-{model}", args.seeds)
        if not runs:
            continue
        res = [json.loads((r / "results.json").read_text()) for r in runs]
        recall = [x["test"]["recall@20"] for x in res]
        ndcg = [x["test"]["ndcg@20"] for x in res]
        epoch_s, eval_s = [], []
        for r in runs:
            for line in (
                (r / "metrics.jsonl").read_text().splitlines()
                if (r / "metrics.jsonl").exists()
                else []
            ):
                rec = json.loads(line)
                epoch_s.append(rec["epoch_seconds"])
                eval_s.append(rec["eval_seconds"])
        ratio = f"{100 * statistics.fmean(recall) / ref_r:.1f}%"
        ref = f"{ref_r:.4f}"
        if ref_n is not None:
            ratio += f" / {100 * statistics.fmean(ndcg) / ref_n:.1f}%"
            ref += f" / {ref_n:.4f}"
        best = _fmt([float(x["best_epoch"]) for x in res], 0) if res[0]["epochs_run"] else "-"
        med_epoch = f"{statistics.median(epoch_s):.2f}" if epoch_s else "-"
        med_eval = (
            f"{statistics.median(eval_s):.3f}" if eval_s else f"{res[0]['eval_seconds_mean']:.3f}"
        )
        print(
            f"| {data} | {model} | {len(res)} | {_fmt(recall)} | {_fmt(ndcg)} | {ref} ({source}) "
            f"| {ratio} | {best} | {med_epoch} | {med_eval} |"
        )


if __name__ == "__main__":
    main()
