"""A data set with a known right answer (the "checkerboard" of benfred/implicit): blocks of users,
each interacting only with its own block of items. Once trained, every user's held-out test item
must rank first among the items they have not seen (the valid item masked too: protocol
'strict'). With ``widths``, every item also has features per modality: its block as a one-hot
code plus noise, so a content model sees the same structure in the features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cranerec.data import Dataset
from cranerec.train import build_config, train_run


def checkerboard(
    n_blocks: int = 2,
    users_per_block: int = 20,
    items_per_block: int = 10,
    widths: dict[str, int] | None = None,
) -> Dataset:
    rng = np.random.default_rng(0)
    n_users, n_items = n_blocks * users_per_block, n_blocks * items_per_block
    splits = {
        s: sp.lil_matrix((n_users, n_items), dtype=np.float32) for s in ("train", "valid", "test")
    }
    for u in range(n_users):
        block = u // users_per_block
        items = rng.permutation(np.arange(block * items_per_block, (block + 1) * items_per_block))
        splits["test"][u, items[0]] = 1
        splits["valid"][u, items[1]] = 1
        for i in items[2:]:
            splits["train"][u, i] = 1
    features = {}
    for m, width in (widths or {}).items():
        x = 0.1 * rng.standard_normal((n_items, width)).astype(np.float32)
        x[np.arange(n_items), (np.arange(n_items) // items_per_block) % width] += 1.0
        features[m] = x
    return Dataset(
        name="checkerboard", user_ids=np.arange(n_users), item_ids=np.arange(n_items),
        features=features, **{k: v.tocsr() for k, v in splits.items()},
    )  # fmt: skip


#: Training settings that let every model learn the checkerboard in seconds.
SETTINGS = [
    "train.epochs=60", "train.batch_size=64", "train.lr=0.05", "train.patience=60",
    "train.progress=false", "eval.protocol=strict", "eval.ks=[1]", "train.stop_metric=recall@1",
    "model.embedding_dim=16",
]  # fmt: skip


def held_out_recall(
    model: str, tmp_path: Path, overrides: list[str] = (), widths: dict[str, int] | None = None
) -> float:
    """Test Recall@1 of ``model`` trained on the checkerboard (``overrides`` after SETTINGS)."""
    cfg = build_config(model=model, overrides=[*SETTINGS, *overrides])
    res = train_run(cfg, tmp_path / model, checkerboard(widths=widths))
    return res["test"]["recall@1"]
