"""CRANE's training dynamics, epoch by epoch: why the contrastive term stalls BPR, and what the
in-batch negatives do to the user vectors.

    python benchmarks/crane_dynamics.py [--data PATH] [--preset NAME] [--set key=value ...]
        [--epochs 20] [--seed 1] [--out runs/crane_dynamics.png]

Trains CRANE (the given preset and settings) and after every epoch measures, on a copy of the
model so that training is not disturbed:
- ``grad ratio``: ||dL_cl/dE|| / ||dL_bpr/dE|| on the ID tables E (users and items) for one
  fixed batch, L_cl weighted by the epoch's beta. Adam divides each step by a running
  magnitude of the whole gradient: a ratio of hundreds means BPR's part of the step is noise.
- ``shared``: ||mean_u z_u|| / mean_u ||z_u||, the direction all user vectors share (1: all
  parallel; near 0: spread over the sphere). A dot-product model carries popularity in it.
- ``rec degree``: the mean training degree of the items recommended (top 20, seen excluded) to
  2,000 users: how much the recommendations lean on popular items.
- the epoch's BPR loss (ln 2 = 0.693 is a model that has learnt nothing) and valid Recall@20.
Prints one line per epoch and draws the four curves in a PNG. On the built-in synthetic data
unless ``--data`` names a dataset (e.g. ../shared/datasets/tiktok).
"""

from __future__ import annotations

import argparse
import platform
import tempfile

import numpy as np
import torch


def measure(model, dataset, batch, users: np.ndarray, degree: np.ndarray) -> dict[str, float]:
    from cranerec.utils.ranking import topk_items

    # the measurement must not move training: keep the state a training-mode loss may change
    saved = {k: getattr(model, k).clone() for k in ("graph_idx", "graph_values", "graph_built")}
    counters = (model._rebuild, model._steps)
    model.train()
    tables = [model.user_emb, model.item_emb]
    total, _ = model.loss(batch)
    g_total = torch.autograd.grad(total, tables)
    beta = model.contrastive_weight()
    model.contrastive_weight = lambda: 0.0  # the same forward, without the term
    try:
        plain, _ = model.loss(batch)
        g_plain = torch.autograd.grad(plain, tables)
    finally:
        del model.contrastive_weight
    norm = lambda gs: torch.sqrt(sum(g.pow(2).sum() for g in gs))  # noqa: E731
    g_cl = [a - b for a, b in zip(g_total, g_plain, strict=True)]
    ratio = float(norm(g_cl) / norm(g_plain)) if beta > 0 else 0.0
    for k, v in saved.items():
        getattr(model, k).copy_(v)
    model._rebuild, model._steps = counters

    model.eval()
    with torch.no_grad():
        z_u, z_i = model.forward()
        shared = float(z_u.mean(0).norm() / z_u.norm(dim=1).mean())
        scores = z_u[users] @ z_i.T  # [n, I]
        seen = dataset.train[users].tocoo()
        scores[seen.row, seen.col] = -torch.inf
        _, top = topk_items(scores, 20)
    model.train()
    return {"grad_ratio": ratio, "shared": shared, "rec_degree": float(degree[top.numpy()].mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--preset")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="runs/crane_dynamics.png")
    args = parser.parse_args()

    from cranerec.data.loaders import load_dataset
    from cranerec.eval import Evaluator
    from cranerec.models import get_model_class
    from cranerec.train.run import build_config
    from cranerec.train.sampler import InteractionSampler
    from cranerec.train.trainer import Trainer, seed_everything

    config = build_config(
        model="crane", preset=args.preset, data=args.data, seed=args.seed,
        overrides=[*args.overrides, f"train.epochs={args.epochs}", "train.patience=1000",
                   "train.progress=false"],
    )  # fmt: skip
    dataset = load_dataset(config.data)
    torch.set_num_threads(config.train.n_threads)
    seed_everything(config.seed)
    model = get_model_class("crane")(dataset, config.model)
    rng = np.random.default_rng(0)
    sampler = InteractionSampler(dataset.train)
    batch = next(sampler.epoch("triples", config.train.batch_size, rng, torch.device("cpu")))
    users = rng.choice(dataset.n_users, size=min(2000, dataset.n_users), replace=False)
    degree = np.asarray(dataset.train.sum(axis=0)).ravel()
    synthetic = " (SYNTHETIC data)" if dataset.synthetic else ""
    print(f"crane on {dataset.name}{synthetic}: {dataset.n_users:,} users, {dataset.n_items:,} "
          f"items; cl_weight {config.model.cl_weight}, cl_loss {config.model.cl_loss}, warm-up "
          f"{config.model.cl_warmup_epochs}, ramp {config.model.cl_ramp_epochs}; "
          f"{platform.machine()}, torch {torch.__version__}, {config.train.n_threads} threads")  # fmt: skip
    rows = []

    def after_epoch(record: dict) -> None:
        row = {"epoch": record["epoch"], "bpr": record.get("bpr", float("nan")),
               "recall": record["valid"]["recall@20"],
               **measure(model, dataset, batch, users, degree)}  # fmt: skip
        rows.append(row)
        print(f"epoch {row['epoch']:3d}  bpr {row['bpr']:.4f}  valid R@20 {row['recall']:.4f}  "
              f"grad ratio {row['grad_ratio']:8.1f}  shared {row['shared']:.3f}  "
              f"rec degree {row['rec_degree']:.1f}", flush=True)  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        Trainer(model, dataset, config, Evaluator(dataset, config.eval), tmp, [after_epoch]).fit()
    _plot(rows, args.out, f"CRANE on {dataset.name}{synthetic}, seed {args.seed}")
    print(f"wrote {args.out}")


def _plot(rows: list[dict], out: str, title: str) -> None:
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, key, label in zip(axes, ("bpr", "grad_ratio", "shared", "rec_degree"), (
        "BPR loss (ln 2 = nothing learnt)", "||grad CL|| / ||grad BPR|| on E",
        "||mean z_u|| / mean ||z_u||", "mean degree of recommended items",
    ), strict=True):  # fmt: skip
        ax.plot(epochs, [r[key] for r in rows], marker="o", ms=3)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].axhline(np.log(2), color="grey", ls="--", lw=1)
    twin = axes[0].twinx()
    twin.plot(epochs, [r["recall"] for r in rows], color="tab:green", lw=1)
    twin.set_ylabel("valid Recall@20", color="tab:green", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
