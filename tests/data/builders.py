"""Builders for small on-disk datasets (written to tmp_path; no data files are committed)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

N_USERS, N_ITEMS = 4, 6

# (user, item) pairs of a tiny dataset in which every user and item has a training interaction,
# so that it loads without a DataWarning. 12 train + 4 valid + 4 test interactions.
TOY_SPLITS = {
    "train": [(0, 0), (0, 1), (0, 2), (1, 1), (1, 3), (1, 4),
              (2, 2), (2, 4), (2, 5), (3, 0), (3, 3), (3, 5)],
    "valid": [(0, 3), (1, 5), (2, 0), (3, 1)],
    "test": [(0, 4), (1, 0), (2, 3), (3, 2)],
}  # fmt: skip
LABELS = {"train": 0, "valid": 1, "test": 2}
MMREC_HEADER = ["userID", "itemID", "rating", "timestamp", "x_label"]


def toy_features(n_items: int = N_ITEMS, width: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n_items, width)).astype(np.float32)


def toy_rows(splits: dict[str, list[tuple[int, int]]] = TOY_SPLITS) -> list[list]:
    """MMRec rows (userID, itemID, rating, timestamp, x_label) for ``splits``."""
    return [[u, i, 1, 1000 + k, LABELS[s]] for s in splits for k, (u, i) in enumerate(splits[s])]


def write_inter(directory: Path, rows: list[list], name: str = "toy",
                header: list[str] = MMREC_HEADER, sep: str = "\t") -> Path:  # fmt: skip
    """Write ``<name>.inter`` (tab-separated, with a header line) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.inter"
    lines = [sep.join(header)] + [sep.join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_feat(directory: Path, modality: str, array: np.ndarray) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{modality}_feat.npy"
    np.save(path, array)
    return path


def coo(pairs: list[tuple[int, int]], shape: tuple[int, int] = (N_USERS, N_ITEMS)) -> sp.coo_matrix:
    """A COO matrix with one entry per pair (duplicates kept)."""
    rows = np.array([u for u, _ in pairs], dtype=np.int32)
    cols = np.array([i for _, i in pairs], dtype=np.int32)
    return sp.coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=shape)


def write_matrices(directory: Path, splits: dict[str, list[tuple[int, int]]] = TOY_SPLITS,
                   shape: tuple[int, int] = (N_USERS, N_ITEMS)) -> Path:  # fmt: skip
    """Write trnMat.pkl / valMat.pkl / tstMat.pkl (pickled scipy coo_matrix) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, fname in (("train", "trnMat.pkl"), ("valid", "valMat.pkl"), ("test", "tstMat.pkl")):
        (directory / fname).write_bytes(pickle.dumps(coo(splits[split], shape), protocol=4))
    return directory


def pairs_of(matrix: sp.spmatrix) -> set[tuple[int, int]]:
    m = sp.coo_matrix(matrix)
    return set(zip(m.row.tolist(), m.col.tolist(), strict=True))


def write_raw(directory: Path, log: pd.DataFrame, features: dict[str, np.ndarray] | None = None,
              item_ids: list[str] | None = None, fmt: str = "csv") -> Path:  # fmt: skip
    """Write interactions.<fmt> (+ <modality>_feat.npy and item_ids.txt) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"interactions.{fmt}"
    if fmt == "parquet":
        log.to_parquet(path, index=False)
    else:
        log.to_csv(path, index=False)
    for name, feat in (features or {}).items():
        write_feat(directory, name, feat)
    if item_ids is not None:
        (directory / "item_ids.txt").write_text("\n".join(item_ids) + "\n", encoding="utf-8")
    return path


def write_log(
    path: Path, rows: list[tuple], columns: tuple[str, ...] = ("user", "item", "time")
) -> Path:
    """Write an interaction log (CSV with a header line) for ``cranerec data build``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path
