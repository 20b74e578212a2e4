"""Loading a dataset whatever its format: ``detect_format`` tells which of the on-disk formats a
path holds, ``load_dataset`` dispatches to that format's reader (or generates the synthetic data)
and applies ``subsample_users``. Every loader, writer and constant of the formats is re-exported
here, so ``cranerec.data.loaders`` stays the one place to import them from.

Formats (``FORMATS``; each read by its own module):
- ``mmrec`` (``cranerec.data.mmrec``): a directory with ``<name>.inter`` (tab-separated
  ``userID itemID rating timestamp x_label``; x_label 0/1/2 = train/valid/test) and any
  ``<modality>_feat.npy`` beside it.
- ``matrices`` (``cranerec.data.matrices``): a directory with ``trnMat.pkl``, ``valMat.pkl``,
  ``tstMat.pkl`` (pickled scipy sparse users x items) and any ``<modality>_feat.npy``.
- ``raw`` (``cranerec.data.raw``): a CSV/Parquet interaction log (user, item, optional
  rating/timestamp) + per-modality ``.npy`` + an item-id file; binarised, deduplicated, k-core
  filtered and split per user.
- ``synthetic`` (``cranerec.data.synthetic``): the built-in generated dataset.
Feature files are found and read by ``cranerec.data.feature_files``; ``DataConfig`` lives in
``cranerec.data.config``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cranerec.data.config import FORMATS, DataConfig
from cranerec.data.dataset import Dataset
from cranerec.data.errors import DataError
from cranerec.data.feature_files import FEAT_SUFFIX, read_feature_file
from cranerec.data.folder import SYNTHETIC_MARKER, USER_IDS_FILE
from cranerec.data.matrices import MATRIX_FILES, load_matrices, save_matrices
from cranerec.data.mmrec import MMREC_COLUMNS, load_mmrec, mmrec_feature_settings, save_mmrec
from cranerec.data.raw import RAW_NAMES, load_raw
from cranerec.data.split import resolve_split_seed

__all__ = [
    "FEAT_SUFFIX", "FORMATS", "MATRIX_FILES", "MMREC_COLUMNS", "RAW_NAMES", "SYNTHETIC_MARKER",
    "USER_IDS_FILE", "DataConfig", "detect_format", "load_dataset", "load_matrices", "load_mmrec",
    "load_raw", "mmrec_feature_settings", "read_feature_file", "save_matrices", "save_mmrec",
    "subsample_users",
]  # fmt: skip


def detect_format(path: str | Path) -> str:
    """The format of ``path``: ``synthetic``, ``mmrec``, ``matrices`` or ``raw``."""
    if str(path) == "synthetic":
        return "synthetic"
    p = Path(path)
    if not p.exists():
        raise DataError(f"data path not found: {p}")
    if p.is_file():
        if p.suffix in (".csv", ".parquet", ".tsv"):
            return "raw"
        if p.suffix == ".inter":
            return "mmrec"
        raise DataError(f"{p}: cannot tell the data format from this file; pass a directory")
    if list(p.glob("*.inter")):
        return "mmrec"
    if (p / MATRIX_FILES["train"]).exists():
        return "matrices"
    if any((p / n).exists() for n in RAW_NAMES):
        return "raw"
    raise DataError(
        f"{p}: no known data format here (expected a <name>.inter file, trnMat.pkl/valMat.pkl/"
        f"tstMat.pkl, or {' / '.join(RAW_NAMES)})"
    )


def load_dataset(config: DataConfig | None = None, **overrides) -> Dataset:
    """Load the dataset a ``DataConfig`` describes (format detected unless given)."""
    if config is None:
        from cranerec.config import from_dict

        config = from_dict(DataConfig, overrides)
    data = _load_format(config)
    if config.subsample_users < 1:
        data = subsample_users(data, config.subsample_users, config.subsample_seed)
    return data


def subsample_users(data: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """Keep ``fraction`` of the users (uniformly drawn with ``seed``) with all their interactions,
    and the items they interacted with in any split (with those items' feature rows)."""
    rng = np.random.default_rng(seed)
    n_keep = max(1, round(fraction * data.n_users))
    users = np.sort(rng.choice(data.n_users, size=n_keep, replace=False))
    mats = {s: data.split(s)[users] for s in ("train", "valid", "test")}
    seen = (mats["train"] + mats["valid"] + mats["test"]).tocsc()
    items = np.flatnonzero(np.diff(seen.indptr) > 0)
    return Dataset(
        name=f"{data.name}-users{fraction:g}",
        user_ids=data.user_ids[users], item_ids=data.item_ids[items],
        features={m: f[items] for m, f in data.features.items()}, synthetic=data.synthetic,
        **{s: m[:, items] for s, m in mats.items()},
    )  # fmt: skip


def _load_format(config: DataConfig) -> Dataset:
    fmt = detect_format(config.path) if config.format == "auto" else config.format
    if fmt == "synthetic" and config.path != "synthetic":
        raise DataError(
            f"format synthetic generates its data and reads no files; drop the data path "
            f"{config.path!r}, or drop the format to load that path"
        )
    if fmt == "synthetic":
        from cranerec.data.synthetic import make_synthetic

        data = make_synthetic(
            n_users=config.synthetic_users, n_items=config.synthetic_items,
            mean_interactions=config.synthetic_interactions, widths=config.synthetic_widths,
            seed=config.synthetic_seed, split_seed=resolve_split_seed(config.split_seed),
        )  # fmt: skip
        if config.modalities is not None:
            missing = [m for m in config.modalities if m not in data.features]
            if missing:
                raise DataError(
                    f"synthetic data has no modality {missing}; it has {data.modalities}"
                )
            data.features = {m: data.features[m] for m in config.modalities}
        return data
    if fmt == "mmrec":
        return load_mmrec(config)
    if fmt == "matrices":
        return load_matrices(config)
    return load_raw(config)
