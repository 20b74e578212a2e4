"""Cold-start items on TikTok: hold out 10% of the items from training entirely, train, add them
back from their features alone (``Recommender.add_items``), and measure their Recall@20 against
a popularity baseline and against random.

    python benchmarks/cold_start.py [--data ../shared/datasets/tiktok] [--models crane vbpr freedom]
                                    [--out runs/cold_start] [--seed 0] [--set key=value ...]
                                    [--alternatives]

Protocol:
- cold items: 10% of the items drawn with ``--seed``; every interaction with them (train, valid
  and test) is removed, so training never sees them; the rest (the warm data, 90% of the items)
  trains each model with its own default settings (CRANE: the ``tiktok`` preset) and early
  stopping on the warm validation split (runs under ``--out``, resumable);
- targets: each user's interactions with cold items in any split (users with none are skipped);
- ``all items``: rank every item the user did not train on (warm and cold together), and count
  the hits among the cold targets: Recall@20 = hits / number of cold targets, averaged over
  users. Popularity (training counts) cannot rank an unseen item, so it scores 0 here; random
  is computed exactly (expected recall 20 / candidates);
- ``cold only``: rank only the cold items. Random is exact again; ``popularity (oracle)`` ranks
  the cold items by their real interaction counts, the user's own left out: information no
  cold-start method has, shown as a reference point, not as a baseline to beat.
Then, per model, the serving options that let cold items compete in an all-items top-20
(``Recommender.recommend(..., cold_slots=, cold_min_z=)``, see ``docs/serving.md``), and the
score calibrations measured and not adopted (``--alternatives``, numpy over every score), each
with: cold items per top-20 list (mean over every user with a held-out interaction), Recall@20
of the cold items (users who interacted with one), Recall@20 of the warm held-out interactions
(valid + test of the warm data: the cost), and Recall@20 of every held-out interaction, warm and
cold together. Every list ranks all the items the user did not train on.
Skips (exit 0, with the reason) when the dataset is absent. ``--data synthetic`` runs the same
protocol on the built-in synthetic data (a smoke test, no real figures).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _data import load_or_skip

from cranerec.data.dataset import Dataset
from cranerec.serve import Recommender
from cranerec.train import build_config, train_run

K = 20
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiktok"
PRESETS = {"crane": "tiktok"}


def split_cold(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, np.ndarray]:
    """The warm dataset (cold items and all their interactions removed) and the cold indices."""
    rng = np.random.default_rng(seed)
    n_cold = round(fraction * data.n_items)
    cold = np.sort(rng.choice(data.n_items, size=n_cold, replace=False))
    warm = np.setdiff1d(np.arange(data.n_items), cold)
    warm_data = Dataset(
        name=f"{data.name}-warm{100 - round(100 * fraction)}",
        train=data.train[:, warm], valid=data.valid[:, warm], test=data.test[:, warm],
        user_ids=data.user_ids, item_ids=data.item_ids[warm],
        features={m: f[warm] for m, f in data.features.items()}, synthetic=data.synthetic,
    )  # fmt: skip
    return warm_data, cold


def recall(ranked: list[np.ndarray], targets: list[set]) -> float:
    return float(
        np.mean([len(set(r.tolist()) & t) / len(t) for r, t in zip(ranked, targets, strict=True)])
    )


def evaluate(data: Dataset, warm: Dataset, cold: np.ndarray, rec: Recommender | None) -> dict:
    """Recall@20 of the cold items for the model (``rec``) and the baselines, both protocols."""
    everything = (data.train + data.valid + data.test).tocsr()
    cold_targets = everything[:, cold]  # [U, n_cold]
    users = np.flatnonzero(np.diff(cold_targets.indptr) > 0)
    cold_ids = data.item_ids[cold].astype(str)
    targets = [set(cold_ids[cold_targets[u].indices].tolist()) for u in users]
    n_train = np.diff(warm.train.indptr)[users]
    out: dict = {"users": len(users), "cold_items": len(cold)}
    # random, exact expectations
    out["all items"] = {"random": float(np.mean(K / (data.n_items - n_train)))}
    out["cold only"] = {"random": K / len(cold)}
    # popularity over all items: training counts (cold items: 0; ties by index)
    counts = np.asarray(warm.train.sum(axis=0)).ravel()
    pop_rank = np.argsort(-counts, kind="stable")
    warm_ids = warm.item_ids.astype(str)
    ranked = []
    for u in users:
        seen = set(warm.train[u].indices.tolist())
        ranked.append(warm_ids[[i for i in pop_rank[: K + len(seen)] if i not in seen][:K]])
    out["all items"]["popularity"] = recall(ranked, targets)
    # oracle popularity among the cold items: real counts, the user's own interaction left out
    cold_counts = np.asarray(cold_targets.sum(axis=0)).ravel()
    ranked = []
    for u in users:
        own = np.zeros(len(cold))
        own[cold_targets[u].indices] = 1
        ranked.append(cold_ids[np.argsort(-(cold_counts - own), kind="stable")[:K]])
    out["cold only"]["popularity (oracle)"] = recall(ranked, targets)
    if rec is not None:
        user_ids = data.user_ids[users].astype(str).tolist()
        every = [r.item_ids for r in _batched(rec, user_ids, None)]
        only = [r.item_ids for r in _batched(rec, user_ids, cold_ids.tolist())]
        out["all items"]["model"] = recall(every, targets)
        out["cold only"]["model"] = recall(only, targets)
        out["cold share of all-items lists"] = float(
            np.mean([np.isin(r, cold_ids).mean() for r in every])
        )
    return out


def _batched(
    rec: Recommender, users: list[str], items: list[str] | None, size: int = 1024, **options
):
    for start in range(0, len(users), size):
        yield from rec.recommend(users[start : start + size], k=K, items=items, **options)


#: Served options (``Recommender.recommend`` keyword arguments), today's default first.
OPTIONS = {
    "raw scores (default)": {},
    "cold_slots=1 (cold_min_z=1, the default bar)": {"cold_slots": 1},
    "cold_slots=2": {"cold_slots": 2},
    "cold_slots=3": {"cold_slots": 3},
    "cold_slots=1, cold_min_z=0": {"cold_slots": 1, "cold_min_z": 0.0},
    "cold_slots=1, cold_min_z=2": {"cold_slots": 1, "cold_min_z": 2.0},
    "cold_slots=1, no bar": {"cold_slots": 1, "cold_min_z": None},
    "cold_slots=2, no bar": {"cold_slots": 2, "cold_min_z": None},
    "cold_slots=3, no bar": {"cold_slots": 3, "cold_min_z": None},
}


def _alternatives(rec: Recommender) -> dict:
    """Calibrations measured and not adopted: name -> f(user rows, scores [B, n_items]) ->
    calibrated scores (numpy over every score; cold items are those past the trained ones)."""
    u = rec.user_emb.astype(np.float64)
    v = rec.item_emb.astype(np.float64)
    n = rec.n_trained_items
    warm_norm = np.linalg.norm(v[:n], axis=1).mean()
    cold_norm = np.maximum(np.linalg.norm(v[n:], axis=1), 1e-12)
    # per item, the mean and std of its scores over the training users (in chunks)
    first, second = np.zeros(len(v)), np.zeros(len(v))
    for start in range(0, len(u), 4096):
        s = u[start : start + 4096] @ v.T
        first += s.sum(axis=0)
        second += (s**2).sum(axis=0)
    mean = first / len(u)
    std = np.sqrt(np.maximum(second / len(u) - mean**2, 1e-24))
    # over (user, item) pairs: one affine map takes the cold pairs' mean/std to the warm ones'
    pair = [(mean[part].mean(), np.sqrt(second[part].mean() / len(u) - mean[part].mean() ** 2))
            for part in (slice(None, n), slice(n, None))]  # fmt: skip
    scale = pair[0][1] / pair[1][1]
    shift = pair[0][0] - scale * pair[1][0]

    def global_affine(rows, s):
        s[:, n:] = scale * s[:, n:] + shift
        return s

    def norm(rows, s):  # cold vectors scaled to the trained items' mean length
        s[:, n:] *= warm_norm / cold_norm
        return s

    def item_z(rows, s):  # each cold item's scores over users: the mean trained item's mean/std
        s[:, n:] = (s[:, n:] - mean[n:]) / std[n:] * std[:n].mean() + mean[:n].mean()
        return s

    def user_z(rows, s):  # per user: cold scores onto the mean/std of the user's warm scores
        w, c = s[:, :n], s[:, n:]
        s[:, n:] = (c - c.mean(1, keepdims=True)) / c.std(1, keepdims=True) * w.std(
            1, keepdims=True
        ) + w.mean(1, keepdims=True)
        return s

    return {"global affine calibration": global_affine, "vectors scaled to the mean norm": norm,
            "per-item z-score": item_z, "per-user z-score": user_z}  # fmt: skip


def _dense_lists(rec: Recommender, rows: np.ndarray, train, calibrate) -> list[np.ndarray]:
    """Top-K raw item ids per user row by calibrated dense scores, training items left out."""
    out = []
    for start in range(0, len(rows), 1024):
        part = rows[start : start + 1024]
        s = rec.user_emb[part].astype(np.float64) @ rec.item_emb.astype(np.float64).T
        s = calibrate(part, s)
        tr = train[part]
        s[:, : tr.shape[1]][tr.toarray() > 0] = -np.inf
        top = np.argsort(-s, axis=1, kind="stable")[:, :K]
        out.extend(rec.item_ids[top])
    return out


def compare_options(
    data: Dataset, warm: Dataset, cold: np.ndarray, rec: Recommender, alternatives: bool
) -> dict:
    """The table of options (module docstring): name -> (cold per list, cold R@20, warm
    R@20, all R@20)."""
    everything = (data.train + data.valid + data.test).tocsr()
    cold_ids = data.item_ids[cold].astype(str)
    cold_set = set(cold_ids.tolist())
    held = (warm.valid + warm.test).tocsr()
    warm_ids = warm.item_ids.astype(str)
    cold_t, warm_t = everything[:, cold].tocsr(), held
    rows = np.flatnonzero((np.diff(cold_t.indptr) > 0) | (np.diff(warm_t.indptr) > 0))
    cold_targets = [set(cold_ids[cold_t[u].indices].tolist()) for u in rows]
    warm_targets = [set(warm_ids[warm_t[u].indices].tolist()) for u in rows]
    users = data.user_ids[rows].astype(str).tolist()

    def score(lists: list[np.ndarray]) -> tuple[float, ...]:
        hits = [set(x.tolist()) for x in lists]

        def rec_at(targets: list[set]) -> float:
            return float(
                np.mean([len(h & t) / len(t) for h, t in zip(hits, targets, strict=True) if t])
            )

        both = [c | w for c, w in zip(cold_targets, warm_targets, strict=True)]
        per_list = float(np.mean([len(h & cold_set) for h in hits]))
        return per_list, rec_at(cold_targets), rec_at(warm_targets), rec_at(both)

    out = {}
    for name, options in OPTIONS.items():
        out[name] = score([r.item_ids for r in _batched(rec, users, None, **options)])
    if alternatives:
        for name, calibrate in _alternatives(rec).items():
            out[name + " (not adopted)"] = score(_dense_lists(rec, rows, warm.train, calibrate))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--models", nargs="+", default=["crane", "vbpr", "freedom"])
    p.add_argument("--out", default="runs/cold_start")
    p.add_argument("--seed", type=int, default=0, help="which items are cold")
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--set", nargs="+", default=[], help="settings for every model's run")
    p.add_argument(
        "--alternatives", action="store_true", help="also the calibrations measured, not adopted"
    )
    args = p.parse_args()
    data = load_or_skip(args.data)
    if data is None:
        return 0
    warm, cold = split_cold(data, args.fraction, args.seed)
    print(
        f"{data.name}: {data.n_users:,} users, {data.n_items:,} items; {len(cold):,} cold items "
        f"(seed {args.seed}) held out of training with "
        f"{(data.train + data.valid + data.test)[:, cold].nnz:,} interactions"
    )
    base = evaluate(data, warm, cold, None)
    print(f"users with a cold interaction: {base['users']:,}")
    header = f"{'method':<28} {'R@20 all items':>15} {'R@20 cold only':>15}"
    print(header)
    print(
        f"{'random (expected)':<28} {base['all items']['random']:>15.4f} {base['cold only']['random']:>15.4f}"
    )
    print(f"{'popularity (train counts)':<28} {base['all items']['popularity']:>15.4f} {'-':>15}")
    print(
        f"{'popularity (oracle counts)':<28} {'-':>15} {base['cold only']['popularity (oracle)']:>15.4f}"
    )
    rows = []
    for model in args.models:
        config = build_config(
            model=model, preset=PRESETS.get(model), data=args.data, overrides=args.set
        )
        run_dir = Path(args.out) / f"{model}-seed{args.seed}"
        train_run(config, run_dir, warm)
        # the protocol's "every item the user did not train on": training items excluded only
        rec = Recommender.load(run_dir, dataset=warm, seen_splits=("train",))
        rec.add_items(
            {m: f[cold] for m, f in data.features.items()}, data.item_ids[cold].astype(str).tolist()
        )
        res = evaluate(data, warm, cold, rec)
        print(
            f"{model + ' (features only)':<28} {res['all items']['model']:>15.4f} "
            f"{res['cold only']['model']:>15.4f}   cold items in its top-20: "
            f"{100 * res['cold share of all-items lists']:.1f}%"
        )
        rows.append((model, compare_options(data, warm, cold, rec, args.alternatives)))
    print(
        f"\nserving options, all items ranked (k={K}): cold items per list | R@20 cold items "
        "(users with one) | R@20 warm held-out | R@20 all held-out"
    )
    for model, table in rows:
        for name, (per_list, r_cold, r_warm, r_all) in table.items():
            print(
                f"{model:<8} {name:<44} {per_list:>5.2f} {r_cold:>8.4f} {r_warm:>8.4f} "
                f"{r_all:>8.4f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
