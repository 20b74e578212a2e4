"""A data set with a known right answer: two blocks of users, each interacting only with its
own block of items. Once trained, every user's held-out test item must rank first among the
items they have not seen (the valid item masked too: protocol 'strict')."""

import numpy as np
import pytest
import scipy.sparse as sp

from cranerec.data import Dataset
from cranerec.train import build_config, train_run


def checkerboard(
    n_blocks: int = 2, users_per_block: int = 20, items_per_block: int = 10
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
    return Dataset(
        name="checkerboard", user_ids=np.arange(n_users), item_ids=np.arange(n_items),
        **{k: v.tocsr() for k, v in splits.items()},
    )  # fmt: skip


@pytest.mark.parametrize("model", ["bpr", "lightgcn"])
def test_held_out_item_ranks_first(model, tmp_path):
    cfg = build_config(
        model=model,
        overrides=[
            "train.epochs=60", "train.batch_size=64", "train.lr=0.05", "train.patience=60",
            "train.progress=false", "eval.protocol=strict", "eval.ks=[1]", "train.stop_metric=recall@1", "model.embedding_dim=16",
        ],
    )  # fmt: skip
    res = train_run(cfg, tmp_path / model, checkerboard())
    assert res["test"]["recall@1"] >= 0.95, res["test"]
