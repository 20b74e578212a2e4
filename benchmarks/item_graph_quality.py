"""How much of an item kNN graph agrees with the interactions: the fraction of (item, neighbour)
pairs that at least one training user interacted with both, for CRANE's item graph (from a
trained run, and at initialisation with the RCA and the ``concat`` fusions), each raw modality
alone, and random neighbours.

    .venv/bin/python benchmarks/item_graph_quality.py RUN_DIR [--k 10] [--widths 128 384]
    .venv/bin/python benchmarks/item_graph_quality.py --data PATH [--features-dir DIR] [--k 10]

RUN_DIR is a finished CRANE run (its config names the data). With ``--data`` instead, only the
raw modalities and random neighbours (no model). ``--widths`` adds the graph at initialisation
with ``init=orthogonal`` at other RCA widths. Reads the training split only.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from cranerec.data import DataConfig, load_dataset
from cranerec.graph import knn_graph
from cranerec.models import get_model_class
from cranerec.train.run import read_run_config


def co_interacted(co, idx: np.ndarray) -> float:
    """Mean over items of the fraction of their neighbours co-interacted with them."""
    return float(np.mean([co[i, idx[i]].toarray().ravel() > 0 for i in range(len(idx))]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run", nargs="?")
    p.add_argument("--data", help="a dataset instead of a run: raw modalities only")
    p.add_argument("--features-dir", help="feature files of --data from another folder")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--widths", type=int, nargs="*", default=[], help="more RCA widths (init only)")
    args = p.parse_args()
    if (args.run is None) == (args.data is None):
        p.error("give RUN_DIR or --data")
    cfg = read_run_config(args.run) if args.run else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_dataset(
            cfg.data if cfg else DataConfig(path=args.data, features_dir=args.features_dir)
        )
    train = data.train.astype(np.float32)
    co = (train.T @ train).tocsr()  # item-item co-interaction counts
    cls = get_model_class("crane")
    rows = []
    for label, model_cfg, trained in (
        []
        if cfg is None
        else [
            ("CRANE item graph, trained run", cfg.model, True),
            ("CRANE item graph, RCA at initialisation", cfg.model, False),
            (
                "CRANE item graph, concat at initialisation",
                replace(cfg.model, fusion="concat"),
                False,
            ),
            *[
                (
                    f"RCA at init, init=orthogonal, width {w}",
                    replace(cfg.model, init="orthogonal", rca_width=w),
                    False,
                )
                for w in [cfg.model.rca_width, *args.widths]
                # the run's own init and width are the "RCA at initialisation" row already
                if (w, "orthogonal") != (cfg.model.rca_width, cfg.model.init)
            ],
        ]
    ):
        torch.manual_seed(0)
        model = cls(data, model_cfg).eval()
        if trained:
            state = torch.load(f"{args.run}/model.pt", weights_only=True)["state_dict"]
            model.load_state_dict(state)
        with torch.no_grad():
            idx, _ = model.item_graph()
        rows.append((label, co_interacted(co, idx.numpy())))
    for name, x in data.features.items():
        idx, _ = knn_graph(F.normalize(torch.from_numpy(x), dim=1), args.k)
        rows.append((f"raw {name} features", co_interacted(co, idx.numpy())))
    rand = np.random.default_rng(0).integers(0, data.n_items, (data.n_items, args.k))
    rows.append(("random neighbours", co_interacted(co, rand)))
    print(f"{data.name}: fraction of kNN pairs (k = {args.k}) co-interacted by a training user")
    for label, value in rows:
        print(f"  {label:<45} {value:.4f}")


if __name__ == "__main__":
    main()
