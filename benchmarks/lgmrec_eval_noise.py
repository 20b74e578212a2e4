"""What the reference's noisy evaluation costs LGMRec: a trained run's validation and test scores
with the noise-free hyperedges we evaluate with, and with a fresh Gumbel sample per evaluation
as MMRec's ``full_sort_predict`` draws (``F.gumbel_softmax`` has no evaluation mode).

    .venv/bin/python benchmarks/lgmrec_eval_noise.py RUN_DIR [--draws 5]

RUN_DIR: a finished ``cranerec train --model lgmrec`` run (``model.pt``). The same weights are
scored both ways; the noisy rows give the mean and spread over ``--draws`` samples (MMRec draws
one per batch of 4,096 users, with the same expectation per user). Dropout stays off, as in
MMRec's ``eval()``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cranerec.data import load_dataset
from cranerec.eval import Evaluator
from cranerec.models.registry import get_model_class
from cranerec.train.run import read_run_config

METRICS = ("recall@20", "ndcg@20")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run_dir)
    if not (run / "model.pt").is_file():
        raise SystemExit(f"{run}: no model.pt (not a finished cranerec train run)")
    config = read_run_config(run)
    if config.model_name != "lgmrec":
        raise SystemExit(f"{run}: a {config.model_name} run; this measures lgmrec")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = load_dataset(config.data)
    model = get_model_class("lgmrec")(dataset, config.model)
    model.load_state_dict(torch.load(run / "model.pt", weights_only=True)["state_dict"])
    model.eval()
    evaluator = Evaluator(dataset, config.eval)
    tau = config.model.temperature

    def scores() -> dict[str, dict[str, float]]:
        with torch.no_grad():
            user, item = model()
        return {s: evaluator.evaluate(user, item, s).metrics for s in ("valid", "test")}

    rows = {"noise-free (cranerec)": [scores()]}
    model.assign = lambda logits: F.gumbel_softmax(logits, tau, hard=False, dim=1)
    torch.manual_seed(args.seed)
    rows[f"Gumbel sample per evaluation (MMRec), {args.draws} draws"] = [
        scores() for _ in range(args.draws)
    ]
    print(f"{run} ({dataset.name}, seed {config.seed}); mean ± sd over draws")
    print("| evaluation | " + " | ".join(f"{s} {m}" for s in ("valid", "test") for m in METRICS))
    print("|---" * (1 + 2 * len(METRICS)) + "|")
    for label, draws in rows.items():
        cells = []
        for split in ("valid", "test"):
            for m in METRICS:
                v = np.array([d[split][m] for d in draws])
                cells.append(f"{v.mean():.4f}" + (f" ± {v.std(ddof=1):.4f}" if len(v) > 1 else ""))
        print(f"| {label} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
