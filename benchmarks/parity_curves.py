"""Per-epoch validation curves, ours beside MMRec's, one panel per model, in one PNG.

    .venv/bin/python benchmarks/parity_curves.py --out docs/results/parity-curves-tiktok.png \
        --pair DualGNN runs/parity/tiktok-dualgnn/seed-1 /work/mmrec-tiktok/log/DualGNN-tiktok-seed1.out \
        --pair MGCN runs/parity/tiktok-mgcn/seed-1 /work/mmrec-tiktok/log/MGCN-tiktok-seed1.out ...

Each ``--pair LABEL RUN_DIR MMREC_LOG`` names our run directory (its ``metrics.jsonl``, one line
per epoch, epochs counted from 1) and the MMRec log of the same model and seed (its
``valid_score`` lines, MMRec's valid metric, Recall@20 unless its config says otherwise; MMRec
counts epochs from 0, so its epoch e is drawn at e + 1). Both curves are validation Recall@20;
a marker shows each run's best epoch, the one whose snapshot is tested. Prints, per pair, the
best epoch and score of each side and the epoch where each first reaches 95% of its own best.
MMRec is run outside this project (docs/parity.md); this script only reads its log.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def ours(run_dir: Path, metric: str = "recall@20") -> list[float]:
    """Validation ``metric`` per epoch from our metrics.jsonl (a resumed run's repeat wins)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; pass a run directory written by `cranerec train`")
    by_epoch: dict[int, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "valid" in row and "epoch" in row:
            by_epoch[int(row["epoch"])] = float(row["valid"][metric])
    return [by_epoch[e] for e in sorted(by_epoch)]


def mmrec(log: Path) -> list[float]:
    """MMRec's per-epoch ``valid_score`` (its first run in the log: one seed per log here)."""
    if not log.is_file():
        raise SystemExit(f"{log}: not found; pass the MMRec log of the same model and seed")
    text = log.read_text(encoding="utf-8", errors="replace")
    runs = re.split(r"=+\d+/\d+: Parameters", text)
    body = runs[1] if len(runs) > 1 else text
    scores = [float(x) for x in re.findall(r"valid_score: ([0-9.]+)", body)]
    if not scores:
        raise SystemExit(f"{log}: no 'valid_score' line; is it an MMRec training log?")
    return scores


def first_reach(curve: list[float], frac: float) -> int:
    target = frac * max(curve)
    return next(i for i, v in enumerate(curve) if v >= target) + 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--pair", nargs=3, action="append", required=True, metavar=("LABEL", "RUN", "LOG")
    )
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--title", default="validation Recall@20 per epoch: cranerec vs MMRec")
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(args.pair)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (label, run, log) in zip(axes.flat, args.pair, strict=False):
        a, b = ours(Path(run)), mmrec(Path(log))
        for curve, name, colour in ((a, "cranerec", "tab:blue"), (b, "MMRec", "tab:orange")):
            x = range(1, len(curve) + 1)
            best = max(range(len(curve)), key=curve.__getitem__)
            ax.plot(
                x,
                curve,
                color=colour,
                lw=1.2,
                label=f"{name} (best {curve[best]:.4f} @ {best + 1})",
            )
            ax.plot([best + 1], [curve[best]], "o", color=colour, ms=5)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("valid Recall@20")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        print(
            f"{label}: ours best {max(a):.4f} at epoch {a.index(max(a)) + 1} of {len(a)}, "
            f"95% of it at {first_reach(a, 0.95)}; MMRec best {max(b):.4f} at epoch "
            f"{b.index(max(b)) + 1} of {len(b)}, 95% of it at {first_reach(b, 0.95)}; "
            f"ours/MMRec best {max(a) / max(b):.1%}"
        )
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(args.title)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
