"""The MMRec layout: a folder with ``<name>.inter`` (tab-separated ``userID itemID rating
timestamp x_label``; x_label 0/1/2 = train/valid/test) and ``<modality>_feat.npy`` beside it.
Reads one (``load_mmrec``, with errors naming the file and line), writes one (``save_mmrec``) and
says what MMRec's own dataset config must name to read its features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cranerec.data.config import DataConfig
from cranerec.data.dataset import Dataset
from cranerec.data.errors import DataError
from cranerec.data.feature_files import FEAT_SUFFIX, find_feature_files, load_features
from cranerec.data.folder import (
    USER_IDS_FILE,
    finish_dataset,
    read_raw_ids,
    save_folder_files,
)
from cranerec.data.split import matrices_from_labels
from cranerec.data.tables import first_non_utf8_line
from cranerec.data.validate import check_ids, check_no_duplicates

MMREC_COLUMNS = ["userID", "itemID", "rating", "timestamp", "x_label"]


def load_mmrec(config: DataConfig) -> Dataset:
    """Load an MMRec directory (``<name>.inter`` + ``<modality>_feat.npy``; raw ids from
    ``user_ids.txt`` / ``item_ids.txt`` beside the ``.inter`` when present, else the indices)."""
    path = Path(config.path)
    directory = path.parent if path.is_file() else path
    if config.inter_file:
        inter = directory / config.inter_file
    elif path.is_file():
        inter = path
    else:
        candidates = sorted(directory.glob("*.inter"))
        if not candidates:
            raise DataError(f"missing file: no <name>.inter in {directory}")
        if len(candidates) > 1:
            names = ", ".join(c.name for c in candidates)
            raise DataError(
                f"{directory}: several .inter files ({names}); choose one with inter_file"
            )
        inter = candidates[0]
    if not inter.is_file():
        raise DataError(f"missing file: {inter}")
    try:
        df = pd.read_csv(inter, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(f"{inter}: empty file (expected a header and interactions)") from None
    except UnicodeDecodeError:
        raise DataError(
            f"{inter}: line {first_non_utf8_line(inter)} is not UTF-8 text; save it as UTF-8"
        ) from None
    except pd.errors.ParserError as e:
        raise DataError(f"{inter}: not a tab-separated file ({e})") from None
    need = ["userID", "itemID", "x_label"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(
            f"{inter}: missing column(s) {missing}; found {list(df.columns)}; expected a header "
            f"with tab-separated {' '.join(MMREC_COLUMNS)}"
        )
    # Row numbers in messages are file lines: the header is line 1.
    users = _int_column(df["userID"], inter, "userID")
    items = _int_column(df["itemID"], inter, "itemID")
    labels = _int_column(df["x_label"], inter, "x_label")
    bad = np.nonzero(~np.isin(labels, [0, 1, 2]))[0]
    if len(bad):
        raise DataError(f"{inter}: row {bad[0] + 2}: x_label {labels[bad[0]]} is not 0, 1 or 2")
    files = find_feature_files(directory, config)
    features = load_features(files)
    n_users = check_ids(users, "user", str(inter), row_offset=2)
    # the .inter decides the item count; a feature file with another row count is blamed
    # (by name) in finish_dataset, not the .inter
    n_items = check_ids(items, "item", str(inter), row_offset=2)
    check_no_duplicates(users * np.int64(n_items) + items, lambda i: f"row {i + 2}", str(inter))
    user_ids = read_raw_ids(directory / USER_IDS_FILE, n_users, "user")
    item_ids = read_raw_ids(directory / config.item_ids_file, n_items, "item")
    splits = matrices_from_labels(users, items, labels, n_users, n_items)
    name = inter.stem
    return finish_dataset(name, splits, user_ids, item_ids, features, files, str(inter))


def _int_column(col: pd.Series, src: Path, name: str) -> np.ndarray:
    values = pd.to_numeric(col.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.nonzero(np.isnan(values) | (values % 1 != 0))[0]
    if len(bad):
        raise DataError(f"{src}: row {bad[0] + 2}: {name} {col.iloc[bad[0]]!r} is not an integer")
    # 1e20 would wrap to a negative int64 (and be blamed as negative); beyond 2**53 a float64
    # cannot even tell neighbouring ids apart
    big = np.nonzero(np.abs(values) >= 2**53)[0]
    if len(big):
        raise DataError(
            f"{src}: row {big[0] + 2}: {name} {col.iloc[big[0]]!r} is too large for an index "
            "(ids of an MMRec .inter are 0..n-1)"
        )
    return values.astype(np.int64)


def save_mmrec(dataset: Dataset, directory: str | Path, name: str | None = None) -> Path:
    """Write ``dataset`` as an MMRec directory; returns the ``.inter`` path."""
    from cranerec.utils.io import atomic_write

    directory = Path(directory)
    inter = directory / f"{_plain_name(name or dataset.name)}.inter"
    total = dataset.train + dataset.valid + dataset.test
    empty_users = int((np.diff(total.tocsr().indptr) == 0).sum())
    empty_items = int((np.diff(total.tocsc().indptr) == 0).sum())
    if empty_users or empty_items:
        raise DataError(
            f"{dataset.name}: {empty_users} user(s) and {empty_items} item(s) have no interaction in "
            "any split; an MMRec .inter file cannot represent them (ids must be contiguous)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for code, split in enumerate(("train", "valid", "test")):
        coo = dataset.split(split).tocoo()
        rows.append(pd.DataFrame({
            "userID": coo.row, "itemID": coo.col, "rating": 1, "timestamp": 0, "x_label": code,
        }))  # fmt: skip
    df = pd.concat(rows, ignore_index=True)
    atomic_write(inter, lambda f: df.to_csv(f, sep="\t", index=False))
    save_folder_files(dataset, directory)
    return inter


def mmrec_feature_settings(dataset: Dataset) -> list[str]:
    """What an MMRec dataset config must say for MMRec to read this dataset's features: MMRec
    reads at most two files, named by ``vision_feature_file`` (default ``image_feat.npy``) and
    ``text_feature_file`` (default ``text_feat.npy``), and silently skips a named file that does
    not exist. Returns YAML lines (the image modality, else the first, as the vision file; the
    next as the text file) and a comment for any modality MMRec cannot take."""
    mods = sorted(dataset.modalities, key=lambda m: m != "image")
    lines = [f"{key}: '{m}{FEAT_SUFFIX}'" for key, m in
             zip(("vision_feature_file", "text_feature_file"), mods, strict=False)]  # fmt: skip
    if len(mods) > 2:
        lines.append(f"# not read by MMRec (two feature files at most): {', '.join(mods[2:])}")
    return lines


def _plain_name(name: str) -> str:
    """A dataset name used as a file name: one path component, nothing that escapes."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise DataError(f"--name {name!r}: a dataset name must be a plain file name (no / or ..)")
    return name
