"""Training batches: every training interaction once per epoch, shuffled; for ``triples`` one
negative per positive.

Negatives are drawn uniformly from a pool and are never a training positive of that user:
- ``all`` (default): the pool is every item;
- ``seen``: MMRec's pool, the items that occur in training (cold items are never negatives).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp
import torch

from cranerec.models.base import Batch, BatchKind

NegativePool = Literal["all", "seen"]
NEGATIVE_POOLS: tuple[str, ...] = get_args(NegativePool)


class InteractionSampler:
    """Shuffled batches of training interactions (and negatives) for one epoch at a time."""

    def __init__(self, train: sp.csr_matrix, pool: str = "all") -> None:
        if pool not in NEGATIVE_POOLS:
            raise ValueError(f"negative pool {pool!r} is not one of {list(NEGATIVE_POOLS)}")
        coo = train.tocoo()
        self.n_items = train.shape[1]
        self.users = coo.row.astype(np.int64)
        self.items = coo.col.astype(np.int64)
        self.keys = np.sort(self.users * self.n_items + self.items)
        self.pool = np.arange(self.n_items) if pool == "all" else np.unique(self.items)
        # A user who has every pool item has no valid negative.
        in_pool = np.zeros(self.n_items, dtype=bool)
        in_pool[self.pool] = True
        pos_in_pool = np.bincount(self.users[in_pool[self.items]], minlength=train.shape[0])
        self._full_users = np.nonzero(pos_in_pool >= len(self.pool))[0]
        self._pool_name = pool

    def __len__(self) -> int:
        return len(self.users)

    def negatives(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One uniform negative per entry of ``users``, never a training positive of it."""
        full = self._full_users
        if len(full):
            raise ValueError(
                f"{len(full)} user(s) (first index {full[0]}) interacted with every item of the "
                f"negative pool ({self._pool_name!r}, {len(self.pool)} items): no negative can "
                "be sampled"
            )
        neg = self.pool[rng.integers(0, len(self.pool), len(users))]
        todo = np.arange(len(users))
        while True:
            keys = users[todo] * self.n_items + neg[todo]
            pos = np.searchsorted(self.keys, keys)
            clash = (pos < len(self.keys)) & (
                self.keys[np.minimum(pos, len(self.keys) - 1)] == keys
            )
            todo = todo[clash]
            if not len(todo):
                return neg
            neg[todo] = self.pool[rng.integers(0, len(self.pool), len(todo))]

    def epoch(
        self, kind: BatchKind, batch_size: int, rng: np.random.Generator, device: torch.device
    ) -> Iterator[Batch]:
        """Batches of one epoch (all randomness drawn from ``rng`` up front)."""
        order = rng.permutation(len(self.users))
        users, items = self.users[order], self.items[order]
        neg = self.negatives(users, rng) if kind == "triples" else None
        for start in range(0, len(users), batch_size):
            sl = slice(start, start + batch_size)
            yield Batch(
                user_idx=torch.from_numpy(users[sl]).to(device),
                pos_idx=torch.from_numpy(items[sl]).to(device),
                neg_idx=None if neg is None else torch.from_numpy(neg[sl]).to(device),
            )
