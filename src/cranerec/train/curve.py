"""The training curve PNG of a run directory (matplotlib, headless): written by every run."""

from __future__ import annotations

import io
import json
from pathlib import Path

from cranerec.utils.extras import require
from cranerec.utils.io import write_bytes_atomic


def plot_training_curve(
    metrics_path: str | Path, out_png: str | Path, stop_metric: str, title: str = ""
) -> Path:
    """Training loss and the validation stopping metric per epoch, best epoch marked."""
    # no pyplot: leaves the user's backend alone
    Figure = require("matplotlib.figure", "experiments", "the training curve").Figure  # noqa: N806

    records = [json.loads(x) for x in Path(metrics_path).read_text(encoding="utf-8").splitlines()]
    epochs = [r["epoch"] for r in records]
    fig = Figure(figsize=(10, 3.8))
    ax_loss, ax_metric = fig.subplots(1, 2)
    ax_loss.plot(epochs, [r["loss"] for r in records], color="tab:blue")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (mean over batches)")
    # no valid split (a `full` build): nothing validated, an empty panel
    values = [r["valid"].get(stop_metric, float("nan")) for r in records]
    ax_metric.plot(epochs, values, color="tab:green")
    if records:
        best = records[-1]["best_epoch"]
        ax_metric.axvline(best, color="grey", linestyle="--", label=f"best epoch {best}")
        ax_metric.legend(loc="lower right")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(f"valid {stop_metric}")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_bytes_atomic(out_png, buf.getvalue())
    return Path(out_png)
