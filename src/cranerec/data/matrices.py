"""The pickled-matrix layout (as in the TikTok release): a folder with ``trnMat.pkl``,
``valMat.pkl`` and ``tstMat.pkl`` (pickled scipy sparse users x items, unpickled only through
``safe_pickle``) and ``<modality>_feat.npy``. Reads one (``load_matrices``: equal shapes, a
believable shape, no repeated pair within or across splits) and writes one (``save_matrices``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cranerec.data.config import DataConfig
from cranerec.data.dataset import Dataset
from cranerec.data.errors import DataError
from cranerec.data.feature_files import find_feature_files, load_features
from cranerec.data.folder import USER_IDS_FILE, finish_dataset, read_raw_ids, save_folder_files
from cranerec.data.safe_pickle import load_sparse_pickle
from cranerec.data.validate import check_no_duplicates

MATRIX_FILES = {"train": "trnMat.pkl", "valid": "valMat.pkl", "test": "tstMat.pkl"}


def load_matrices(config: DataConfig) -> Dataset:
    """Load a pickled-matrix directory (``trnMat.pkl``/``valMat.pkl``/``tstMat.pkl``)."""
    directory = Path(config.path)
    coos = {split: load_sparse_pickle(directory / fname) for split, fname in MATRIX_FILES.items()}
    shapes = {split: m.shape for split, m in coos.items()}
    if len(set(shapes.values())) != 1:
        raise DataError(f"{directory}: the split matrices have different shapes: {shapes}")
    n_users, n_items = coos["train"].shape
    total = sum(m.nnz for m in coos.values())
    for axis, n in (("users", n_users), ("items", n_items)):
        # refused before anything of that size is allocated (a crafted shape of 10**8 rows)
        if n > 10 * total + 10_000:
            raise DataError(
                f"{directory}: the matrices are {n_users} x {n_items} but hold {total} "
                f"interactions: almost all {axis} would have none; the shape is likely wrong"
            )
    # every index is in range: load_sparse_pickle checked each against its matrix's shape (one
    # shape for all three, checked above) and names the file and entry when one is not
    for split in MATRIX_FILES:
        m = coos[split]
        keep = m.data != 0  # a stored zero is not an interaction
        coos[split] = sp.coo_matrix((m.data[keep], (m.row[keep], m.col[keep])), shape=m.shape)
    keys = {s: m.row.astype(np.int64) * n_items + m.col for s, m in coos.items()}
    for split, fname in MATRIX_FILES.items():  # entry numbers name the COO entry in that file
        check_no_duplicates(keys[split], lambda i: f"entry {i}", str(directory / fname))
    offsets = np.cumsum([0] + [len(k) for k in keys.values()])
    names = list(MATRIX_FILES.values())

    def entry_name(i: int) -> str:
        s = int(np.searchsorted(offsets, i, side="right")) - 1
        return f"{names[s]} entry {i - offsets[s]}"

    check_no_duplicates(np.concatenate(list(keys.values())), entry_name, str(directory))
    files = find_feature_files(directory, config)
    features = load_features(files)
    splits = {
        s: sp.csr_matrix((np.ones(m.nnz, np.float32), (m.row, m.col)), shape=m.shape)
        for s, m in coos.items()
    }
    user_ids = read_raw_ids(directory / USER_IDS_FILE, n_users, "user")
    item_ids = read_raw_ids(directory / config.item_ids_file, n_items, "item")
    return finish_dataset(
        directory.name, splits, user_ids, item_ids, features, files, str(directory)
    )


def save_matrices(dataset: Dataset, directory: str | Path) -> Path:
    """Write ``dataset`` as a pickled-matrix directory (COO matrices, as in the TikTok release)."""
    import pickle

    from cranerec.utils.io import write_bytes_atomic

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, fname in MATRIX_FILES.items():
        coo = sp.coo_matrix(dataset.split(split), dtype=np.float64)
        write_bytes_atomic(directory / fname, pickle.dumps(coo, protocol=4))
    save_folder_files(dataset, directory)
    return directory
