"""What a dataset folder holds beside its interactions, shared by the MMRec, pickled-matrix and
raw readers and writers: the raw-id files (``user_ids.txt``, ``item_ids.txt``), the
``SYNTHETIC.txt`` marker and, when writing, the feature files; plus the last step of every
reader, which checks the features and splits and builds the ``Dataset``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cranerec.data.dataset import Dataset
from cranerec.data.errors import DataError
from cranerec.data.feature_files import FEAT_SUFFIX
from cranerec.data.validate import check_features, check_splits

SYNTHETIC_MARKER = "SYNTHETIC.txt"
USER_IDS_FILE = "user_ids.txt"
ITEM_IDS_FILE = "item_ids.txt"


def read_raw_ids(path: Path, n: int, kind: str) -> np.ndarray:
    """The raw id of each index from ``path`` (one per line, as ``cranerec data build`` writes
    beside the ``.inter``), or the indices themselves when there is no such file."""
    if not path.is_file():
        return np.arange(n)
    try:
        ids = [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable ({e})") from None
    if len(ids) != n:
        raise DataError(
            f"{path}: {len(ids)} {kind} ids for {n} {kind}s in the .inter file; it must list the "
            f"raw id of every {kind} index, one per line (or remove it to use the indices)"
        )
    if len(set(ids)) != n:
        raise DataError(f"{path}: {kind} ids are not unique")
    return np.array(ids, dtype=object)


def finish_dataset(
    name: str,
    splits: dict[str, sp.csr_matrix],
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    features: dict[str, np.ndarray],
    files: dict[str, Path],
    src: str,
) -> Dataset:
    """Check the features (one finite row per item) and the splits read from ``src``, then build
    the ``Dataset`` (synthetic when ``src``'s folder holds the SYNTHETIC marker)."""
    check_features(features, len(item_ids), {k: str(v) for k, v in files.items()}, src)
    check_splits(splits["train"], splits["valid"], splits["test"], src)
    src_path = Path(src)
    directory = src_path if src_path.is_dir() else src_path.parent
    return Dataset(
        name=name, user_ids=user_ids, item_ids=item_ids, features=features,
        synthetic=(directory / SYNTHETIC_MARKER).exists(), **splits,
    )  # fmt: skip


def save_folder_files(dataset: Dataset, directory: Path) -> None:
    """Write ``dataset``'s feature files, its SYNTHETIC marker (if synthetic) and its raw-id
    files (unless the ids are the indices) into ``directory``."""
    from cranerec.utils.io import atomic_write, write_text_atomic

    if dataset.synthetic:  # converted synthetic data stays marked as synthetic when reloaded
        write_text_atomic(
            directory / SYNTHETIC_MARKER,
            "This directory holds cranerec's built-in SYNTHETIC dataset (generated, not real data).\n",
        )
    for name, feat in dataset.features.items():
        atomic_write(directory / f"{name}{FEAT_SUFFIX}", lambda f, a=feat: np.save(f, a))
    # raw ids survive a conversion (both loaders read these files back)
    for fname, ids in ((USER_IDS_FILE, dataset.user_ids), (ITEM_IDS_FILE, dataset.item_ids)):
        ids = np.asarray(ids).astype(str)
        if not np.array_equal(ids, np.arange(len(ids)).astype(str)):
            write_text_atomic(directory / fname, "".join(f"{i}\n" for i in ids))
