"""What VBPR's content half does to it: VBPR at its ``reference`` preset trained on the same
interactions with its item features replaced, validation metrics only (no test split is read).

    .venv/bin/python benchmarks/vbpr_features.py [--data ../shared/datasets/tiktok]
        [--variants raw zscore l2 shuffled zero] [--seed 1] [--out runs/vbpr-features]

Variants: ``raw`` (as loaded), ``zscore`` (each feature dimension standardised), ``l2`` (each row
to unit norm), ``shuffled`` (rows permuted across items: same values, no information about the
item), ``zero`` (all zeros: VBPR reduced to its ID half, a BPR with a wider user vector). Each run
is resumable in ``--out/<variant>``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from _data import load_or_skip

from cranerec.train import build_config, train_run

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiktok"
VARIANTS = ("raw", "zscore", "l2", "shuffled", "zero")


def transform(x: np.ndarray, variant: str, rng: np.random.Generator) -> np.ndarray:
    """One feature table [n_items, width] under ``variant`` (see the module docstring)."""
    if variant == "raw":
        return x
    if variant == "zscore":
        return (x - x.mean(0)) / (x.std(0) + 1e-8)
    if variant == "l2":
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if variant == "shuffled":
        return x[rng.permutation(len(x))]
    if variant == "zero":
        return np.zeros_like(x)
    raise ValueError(f"unknown variant {variant!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DEFAULT))
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="runs/vbpr-features")
    args = p.parse_args()
    data = load_or_skip(args.data)
    if data is None:
        return
    print("variant   valid R@20  valid N@20  best epoch")
    for variant in args.variants:
        rng = np.random.default_rng(0)
        features = {
            m: transform(x, variant, rng).astype(np.float32) for m, x in data.features.items()
        }
        cfg = build_config(
            model="vbpr", preset="reference", data=args.data, seed=args.seed,
            overrides=["train.progress=false"],
        )  # fmt: skip
        res = train_run(
            cfg, Path(args.out) / variant, dataset=dataclasses.replace(data, features=features)
        )
        v = res["valid"]
        print(f"{variant:9s} {v['recall@20']:10.4f}  {v['ndcg@20']:10.4f}  {res['best_epoch']:10d}")


if __name__ == "__main__":
    main()
