"""Every trial of a spec's search with its validation curve summarised: the peak (any epoch,
judged or not), the value at the first epoch ``train.min_epochs`` lets a run be judged, what the
search kept, and the test Recall@20 (a Markdown table, best kept value first).

    .venv/bin/python benchmarks/search_trials.py benchmarks/crane_grid_tiktok.yaml \
        [--store runs/experiments]
"""

from __future__ import annotations

import argparse
import sys

from cranerec.experiments.search import load_trials
from cranerec.experiments.spec import load_spec
from cranerec.experiments.spec_runs import search_base_raw
from cranerec.experiments.store import Store
from cranerec.train.config import resolve_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("--store", default="runs/experiments")
    args = ap.parse_args()
    spec = load_spec(args.spec)
    if spec.search is None:
        sys.exit(f"error: {args.spec} has no search section (nothing to summarise)")
    trials = load_trials(spec, Store(args.store)) or []
    if not trials:
        sys.exit(f"error: the search of {args.spec} has no trials in {args.store} (run it first)")
    judged_from = resolve_config(search_base_raw(spec)).train.min_epochs + 1  # as the search
    keys = sorted({k for t in trials for k in t.params})
    head = ["trial", *keys, "peak valid (epoch)", f"valid at epoch {judged_from}",
            "kept: valid (best epoch)", "test R@20", "epochs"]  # fmt: skip
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for t in sorted(trials, key=lambda t: -(t.value or 0)):
        curve = t.intermediate_values
        if not curve:
            continue
        peak = max(curve, key=curve.get)
        res = t.user_attrs.get("results", {})
        judged = curve.get(judged_from)
        kept = (
            f"{t.value:.4f} ({res.get('best_epoch')})"
            if t.state.name == "COMPLETE"
            else f"{t.state.name.lower()} after epoch {max(curve)}"
        )
        test = res.get("test", {}).get("recall@20")
        cells = [str(t.number), *(str(t.params.get(k)) for k in keys),
                 f"{curve[peak]:.4f} ({peak})", "–" if judged is None else f"{judged:.4f}",
                 kept, "–" if test is None else f"{test:.4f}", str(max(curve))]  # fmt: skip
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
