"""What the commands print: lines on stdout, metrics, a run's results, the synthetic-data note."""

from __future__ import annotations

import argparse
import sys

SYNTHETIC_BANNER = "NOTE: this is the built-in SYNTHETIC dataset (generated, not real data)."


def counting_number(low: int):
    """An argparse type: an integer >= ``low`` (0: a count where 0 means "all", 1: a count)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= {low}")
        return value

    return parse


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def _print_results(results: dict, run_dir: str | None = None) -> None:
    if results.get("synthetic_data"):
        _out(SYNTHETIC_BANNER)
    _out(
        f"model {results['model']} on {results['dataset']} (seed {results['seed']}, "
        f"best epoch {results['best_epoch']} of {results['epochs_run']})"
    )
    for split in ("valid", "test"):
        if results.get("n_eval_users", {}).get(split, 1) == 0:
            _out(f"{split + ':':<6} no {split} users (the split is empty)")
        else:
            _out(f"{split + ':':<6} {_format_metrics(results[split])}")
    _out(
        f"{results['epoch_seconds_mean']:.3f} s/epoch, {results['eval_seconds_mean']:.3f} s/validation, "
        f"peak RSS {results['peak_rss_mb']:.0f} MB"
    )
    if run_dir:
        _out(f"run directory: {run_dir}")
