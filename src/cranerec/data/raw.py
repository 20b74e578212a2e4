"""The raw format: a CSV/Parquet interaction log (user, item, optional rating) with per-modality
``<modality>_feat.npy`` and an item-id file beside it, read by ``load_raw``: binarised,
deduplicated, aligned to the feature rows by raw item id, k-core filtered and split per user.
(``cranerec data build`` turns such a log into an MMRec folder instead: see ``build``.)"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cranerec.data.config import DataConfig
from cranerec.data.dataset import Dataset
from cranerec.data.errors import DataError
from cranerec.data.feature_files import find_feature_files, load_features
from cranerec.data.folder import finish_dataset
from cranerec.data.split import (
    kcore_filter,
    matrices_from_labels,
    resolve_split_seed,
    split_per_user,
)
from cranerec.data.tables import read_table
from cranerec.data.validate import DataWarning, check_features

log = logging.getLogger(__name__)

RAW_NAMES = ("interactions.csv", "interactions.parquet")


def load_raw(config: DataConfig) -> Dataset:
    """Load a raw interaction log: binarise, deduplicate, k-core filter, split per user 8:1:1.

    ``path`` is the CSV/Parquet file or a directory holding ``interactions.csv|parquet``; feature
    files (``<modality>_feat.npy``) and the item-id file (``item_ids.txt``: the raw item id of each
    feature row, one per line) are read from the same directory.
    """
    path = Path(config.path)
    if path.is_dir():
        found = [path / n for n in RAW_NAMES if (path / n).exists()]
        if not found:
            raise DataError(f"missing file: {path}/interactions.csv (or .parquet)")
        log_file, directory = found[0], path
    else:
        log_file, directory = path, path.parent
    if not log_file.is_file():
        raise DataError(f"missing file: {log_file}")
    need = [config.user_col, config.item_col] + ([config.rating_col] if config.rating_col else [])
    # read as text: "NA" or "nan" is an id like any other, not a missing value
    df = read_table(
        log_file,
        "interaction log",
        tuple(need),
        "set user_col / item_col / rating_col to name yours",
    )
    for col in (config.user_col, config.item_col):
        empty = np.nonzero((df[col].str.strip() == "").to_numpy())[0]
        if len(empty):
            raise DataError(f"{log_file}: row {empty[0] + 2}: empty {col} ({len(empty)} such rows)")
    if config.rating_col and config.min_rating is not None:
        ratings = pd.to_numeric(df[config.rating_col], errors="coerce")
        bad = np.nonzero(ratings.isna().to_numpy())[0]
        if len(bad):
            raise DataError(
                f"{log_file}: row {bad[0] + 2}: rating {df[config.rating_col].iloc[bad[0]]!r} is not a number"
            )
        df = df[ratings >= config.min_rating]
    n_before = len(df)
    df = df.drop_duplicates(subset=[config.user_col, config.item_col])  # binarise + dedupe
    if len(df) < n_before:
        log.info("%s: dropped %d duplicate interactions", log_file, n_before - len(df))

    files = find_feature_files(directory, config)
    features = load_features(files)
    feature_ids = None
    if features:
        ids_path = directory / config.item_ids_file
        if not ids_path.is_file():
            raise DataError(f"missing file: {ids_path} (the raw item id of each feature row)")
        feature_ids = np.array(ids_path.read_text(encoding="utf-8").split("\n"), dtype=object)
        feature_ids = np.array([s.strip() for s in feature_ids if s.strip() != ""], dtype=object)
        check_features(features, len(feature_ids), {k: str(v) for k, v in files.items()})
        if len(set(feature_ids)) != len(feature_ids):
            raise DataError(f"{ids_path}: item ids are not unique")
        known = set(feature_ids.tolist())
        unknown = ~df[config.item_col].isin(known)
        if unknown.any():
            first = df[config.item_col][unknown].iloc[0]
            raise DataError(
                f"{log_file}: {int(unknown.sum())} interaction(s) name items with no feature row "
                f"in {ids_path} (first: {first!r})"
            )
    before = (df[config.user_col].nunique(), df[config.item_col].nunique(), len(df))
    df = kcore_filter(df, config.user_col, config.item_col, config.user_min, config.item_min)
    after = (df[config.user_col].nunique(), df[config.item_col].nunique(), len(df))
    if after != before:  # said every time: a raw log's k-core can drop most of its users
        warnings.warn(
            f"{log_file}: the k-core (data.user_min={config.user_min}, data.item_min="
            f"{config.item_min}) dropped {before[0] - after[0]:,} of {before[0]:,} users, "
            f"{before[1] - after[1]:,} of {before[1]:,} items, {before[2] - after[2]:,} of "
            f"{before[2]:,} interactions (set data.user_min=1 to keep every user, or use "
            "`cranerec data build`)",
            DataWarning, stacklevel=3,
        )  # fmt: skip
    if df.empty:
        raise DataError(
            f"{log_file}: no interactions left after the k-core filter "
            f"(user_min={config.user_min}, item_min={config.item_min})"
        )
    user_codes, user_ids = pd.factorize(df[config.user_col], sort=True)
    item_codes, item_ids = pd.factorize(df[config.item_col], sort=True)
    user_ids, item_ids = np.asarray(user_ids, dtype=object), np.asarray(item_ids, dtype=object)
    if feature_ids is not None:
        row_of = {raw: r for r, raw in enumerate(feature_ids.tolist())}
        rows = np.array([row_of[raw] for raw in item_ids.tolist()], dtype=np.int64)
        features = {k: v[rows] for k, v in features.items()}
    labels = split_per_user(user_codes, resolve_split_seed(config.split_seed), config.split_ratios)
    splits = matrices_from_labels(
        user_codes.astype(np.int64),
        item_codes.astype(np.int64),
        labels,
        len(user_ids),
        len(item_ids),
    )
    return finish_dataset(
        log_file.stem if path.is_file() else path.name,
        splits,
        user_ids,
        item_ids,
        features,
        files,
        str(log_file),
    )
