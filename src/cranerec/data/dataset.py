"""The one in-memory dataset object that models, trainers and evaluators take."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

SPLITS = ("train", "valid", "test")


@dataclass(eq=False)
class Dataset:
    """Interactions and item features, fully in memory (nothing reads the disk after loading).

    Attributes:
        name: a short name (directory name, or ``synthetic``).
        train, valid, test: binary CSR matrices of shape [n_users, n_items] (float32).
        user_ids, item_ids: the raw id of each user / item index (index -> raw id).
        features: modality name -> float32 array [n_items, width], row i is item index i.
        synthetic: True for generated data (every output built on it says so).
    """

    name: str
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    synthetic: bool = False

    def __post_init__(self) -> None:
        for split in SPLITS:
            # copy=True: binarising below must not overwrite the caller's matrix (e.g. ratings).
            m = sp.csr_matrix(getattr(self, split), dtype=np.float32, copy=True)
            m.sum_duplicates()
            m.eliminate_zeros()  # a stored zero is not an interaction
            m.sort_indices()
            m.data[:] = 1.0
            setattr(self, split, m)
        self.features = {
            k: np.ascontiguousarray(v, dtype=np.float32) for k, v in self.features.items()
        }
        self.user_ids, self.item_ids = np.asarray(self.user_ids), np.asarray(self.item_ids)
        shapes = {s: getattr(self, s).shape for s in SPLITS}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"{self.name}: the splits have different shapes: {shapes}")
        if len(self.user_ids) != self.n_users or len(self.item_ids) != self.n_items:
            raise ValueError(
                f"{self.name}: {len(self.user_ids)} user ids and {len(self.item_ids)} item ids for "
                f"a {self.n_users} x {self.n_items} interaction matrix"
            )
        for name, feat in self.features.items():
            if feat.ndim != 2 or feat.shape[0] != self.n_items:
                raise ValueError(
                    f"{self.name}: modality {name!r} has shape {feat.shape}; expected "
                    f"[{self.n_items}, width]"
                )

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    def split(self, name: str) -> sp.csr_matrix:
        """The interaction matrix of ``name`` in {train, valid, test}."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {list(SPLITS)}")
        return getattr(self, name)

    @cached_property
    def user_index(self) -> dict:
        """raw user id -> user index."""
        return {raw: i for i, raw in enumerate(self.user_ids.tolist())}

    @cached_property
    def item_index(self) -> dict:
        """raw item id -> item index."""
        return {raw: i for i, raw in enumerate(self.item_ids.tolist())}

    @cached_property
    def fingerprint(self) -> str:
        """A content hash of the interactions, ids and features (16 hex digits)."""
        h = hashlib.sha256()
        h.update(f"{self.n_users}x{self.n_items}".encode())
        for split in SPLITS:
            m = self.split(split)
            h.update(split.encode())
            h.update(np.ascontiguousarray(m.indptr, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(m.indices, dtype=np.int64).tobytes())
        for ids in (self.user_ids, self.item_ids):
            h.update("\x1f".join(map(str, ids.tolist())).encode())
        for name in sorted(self.features):
            h.update(name.encode())
            h.update(self.features[name].tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        """The columns of the paper's Table 2 and more (used by ``cranerec data describe``)."""
        train_users = np.diff(self.train.indptr) > 0
        train_items = np.asarray((self.train != 0).sum(axis=0)).ravel() > 0
        n_total = sum(self.split(s).nnz for s in SPLITS)
        out: dict = {
            "name": self.name,
            "synthetic": self.synthetic,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n_total,
            "sparsity": 1.0 - n_total / max(1, self.n_users * self.n_items),
            "mean_interactions_per_user": n_total / max(1, self.n_users),
            "splits": {},
            "modalities": {name: int(f.shape[1]) for name, f in self.features.items()},
            "fingerprint": self.fingerprint,
        }
        for split in SPLITS:
            m = self.split(split)
            users = np.diff(m.indptr) > 0
            items = np.zeros(self.n_items, dtype=bool)
            items[m.indices] = True
            out["splits"][split] = {
                "interactions": int(m.nnz),
                "users": int(users.sum()),
                "items": int(items.sum()),
                "cold_users": int((users & ~train_users).sum()) if split != "train" else 0,
                "cold_items": int((items & ~train_items).sum()) if split != "train" else 0,
            }
        return out
