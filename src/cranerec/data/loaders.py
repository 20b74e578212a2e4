"""Loaders for the three on-disk formats, format detection and writers for conversion.

Formats:
- ``mmrec``: a directory with ``<name>.inter`` (tab-separated ``userID itemID rating timestamp
  x_label``; x_label 0/1/2 = train/valid/test) and any ``<modality>_feat.npy`` beside it.
- ``matrices``: a directory with ``trnMat.pkl``, ``valMat.pkl``, ``tstMat.pkl`` (pickled scipy
  sparse users x items) and any ``<modality>_feat.npy``.
- ``raw``: a CSV/Parquet interaction log (user, item, optional rating/timestamp) + per-modality
  ``.npy`` + an item-id file; binarised, deduplicated, k-core filtered and split per user.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cranerec.data.dataset import Dataset
from cranerec.data.errors import DataError
from cranerec.data.safe_pickle import load_sparse_pickle
from cranerec.data.split import (
    kcore_filter,
    matrices_from_labels,
    resolve_split_seed,
    split_per_user,
)
from cranerec.data.tables import read_table
from cranerec.data.validate import (
    DataWarning,
    check_features,
    check_ids,
    check_no_duplicates,
    check_splits,
)

log = logging.getLogger(__name__)

FORMATS = ("auto", "mmrec", "matrices", "raw", "synthetic")
MATRIX_FILES = {"train": "trnMat.pkl", "valid": "valMat.pkl", "test": "tstMat.pkl"}
MMREC_COLUMNS = ["userID", "itemID", "rating", "timestamp", "x_label"]
FEAT_SUFFIX = "_feat.npy"
RAW_NAMES = ("interactions.csv", "interactions.parquet")
SYNTHETIC_MARKER = "SYNTHETIC.txt"
USER_IDS_FILE = "user_ids.txt"


@dataclass
class DataConfig:
    """Where the data is and how to read it.

    ``path`` is a directory (or a raw CSV/Parquet file), or ``synthetic`` for the built-in
    generated dataset. ``modalities``: names to load (``None`` = every ``<name>_feat.npy`` found,
    ``[]`` = none). ``feature_files`` maps a modality name to a file name when it does not follow
    ``<name>_feat.npy``. ``features_dir`` reads the feature files from another folder than the
    interactions (e.g. features computed by ``cranerec features`` for a read-only dataset). The raw-format settings (k-core, split) are ignored for fixed splits.

    ``synthetic_users`` / ``synthetic_items`` / ``synthetic_interactions`` (mean per user) and
    ``synthetic_widths`` (``image`` / ``text`` feature widths) shape the synthetic data (cost
    measurements use Amazon-Baby's shape). ``subsample_users`` < 1 keeps that fraction of the
    users (drawn with ``subsample_seed``, all their interactions in every split) and the items
    they interacted with, for measurements against dataset size; applied after any format.
    """

    path: str = "synthetic"
    format: str = "auto"
    modalities: list[str] | None = None
    feature_files: dict[str, str] = field(default_factory=dict)
    features_dir: str | None = None
    inter_file: str | None = None
    user_col: str = "user"
    item_col: str = "item"
    rating_col: str | None = None
    min_rating: float | None = None
    item_ids_file: str = "item_ids.txt"
    user_min: int = 4
    item_min: int = 0
    split_seed: str = "9"
    split_ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    synthetic_seed: int = 0
    synthetic_users: int = 1500
    synthetic_items: int = 800
    synthetic_interactions: float = 18.0
    synthetic_widths: dict[str, int] = field(default_factory=dict)
    subsample_users: float = 1.0
    subsample_seed: int = 0

    def validate(self) -> None:
        from cranerec.config import ConfigError

        if not 0 < self.subsample_users <= 1:
            raise ConfigError(f"subsample_users must be in (0, 1], got {self.subsample_users}")
        if self.synthetic_users < 10 or self.synthetic_items < 20:
            raise ConfigError("synthetic_users must be >= 10 and synthetic_items >= 20")
        if not 5 <= self.synthetic_interactions <= self.synthetic_items // 2:
            raise ConfigError(
                "synthetic_interactions (mean per user) must be between 5 and synthetic_items / 2"
            )
        bad = sorted(set(self.synthetic_widths) - {"image", "text"})
        if bad or any(not isinstance(w, int) or w < 1 for w in self.synthetic_widths.values()):
            raise ConfigError(
                f"synthetic_widths maps image/text to positive widths, got {self.synthetic_widths}"
            )

        if self.format not in FORMATS:
            raise ConfigError(f"format {self.format!r} is not one of {list(FORMATS)}")
        if (
            len(self.split_ratios) != 3
            or any(r < 0 for r in self.split_ratios)
            or sum(self.split_ratios) <= 0
        ):
            raise ConfigError(
                f"split_ratios must be three non-negative numbers, got {self.split_ratios}"
            )
        if self.user_min < 1 or self.item_min < 0:
            raise ConfigError("user_min must be >= 1 and item_min >= 0")
        try:
            resolve_split_seed(self.split_seed)
        except ValueError as e:
            raise ConfigError(str(e)) from None


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


# ---------------------------------------------------------------------------- features


def _feature_files(directory: Path, config: DataConfig) -> dict[str, Path]:
    """modality name -> file, from ``config.modalities``/``feature_files`` or by discovery (in
    ``config.features_dir`` when set)."""
    if config.features_dir is not None:
        directory = Path(config.features_dir)
        if not directory.is_dir():
            raise DataError(f"data.features_dir {directory}: no such folder")
    found = {p.name[: -len(FEAT_SUFFIX)]: p for p in sorted(directory.glob(f"*{FEAT_SUFFIX}"))}
    found.update({name: directory / fname for name, fname in config.feature_files.items()})
    if config.modalities is None:
        return found
    out = {}
    for name in config.modalities:
        path = found.get(name, directory / f"{name}{FEAT_SUFFIX}")
        if not path.exists():
            avail = ", ".join(sorted(found)) or "none"
            raise DataError(f"missing file: {path} (modality {name!r}; modalities found: {avail})")
        out[name] = path
    return out


def read_feature_file(path: Path, name: str) -> np.ndarray:
    """One ``<modality>_feat.npy``: a numeric [rows, width >= 1] array as float32, or a
    ``DataError`` naming the file (never unpickled; an ``.npz`` under the name is refused)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e or 'empty file'})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive under an .npy name
        arr.close()
        raise DataError(f"{path}: an .npz archive, not one .npy array (items x width)")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: modality {name!r} has non-numeric dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise DataError(
            f"{path}: modality {name!r} has shape {arr.shape}; it must be 2-D "
            "[n_items, width] with width >= 1"
        )
    with np.errstate(over="ignore"):  # beyond float32: inf, refused by the callers' checks
        return arr.astype(np.float32, copy=False)  # float16 on disk -> float32


def _load_features(files: dict[str, Path]) -> dict[str, np.ndarray]:
    return {name: read_feature_file(path, name) for name, path in files.items()}


def _finish(
    name: str,
    splits: dict[str, sp.csr_matrix],
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    features: dict[str, np.ndarray],
    files: dict[str, Path],
    src: str,
) -> Dataset:
    check_features(features, len(item_ids), {k: str(v) for k, v in files.items()}, src)
    check_splits(splits["train"], splits["valid"], splits["test"], src)
    src_path = Path(src)
    directory = src_path if src_path.is_dir() else src_path.parent
    return Dataset(
        name=name, user_ids=user_ids, item_ids=item_ids, features=features,
        synthetic=(directory / SYNTHETIC_MARKER).exists(), **splits,
    )  # fmt: skip


# ---------------------------------------------------------------------------- MMRec


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
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
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
    files = _feature_files(directory, config)
    features = _load_features(files)
    n_users = check_ids(users, "user", str(inter), row_offset=2)
    # the .inter decides the item count; a feature file with another row count is blamed
    # (by name) in _finish, not the .inter
    n_items = check_ids(items, "item", str(inter), row_offset=2)
    check_no_duplicates(users * np.int64(n_items) + items, lambda i: f"row {i + 2}", str(inter))
    user_ids = _raw_ids(directory / USER_IDS_FILE, n_users, "user")
    item_ids = _raw_ids(directory / config.item_ids_file, n_items, "item")
    splits = matrices_from_labels(users, items, labels, n_users, n_items)
    name = inter.stem
    return _finish(name, splits, user_ids, item_ids, features, files, str(inter))


def _raw_ids(path: Path, n: int, kind: str) -> np.ndarray:
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
    _save_features(dataset, directory)
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


# ---------------------------------------------------------------------------- pickled matrices


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
    for split, fname in MATRIX_FILES.items():
        m = coos[split]
        for axis, idx, n in (("row", m.row, n_users), ("column", m.col, n_items)):
            bad = np.nonzero((idx < 0) | (idx >= n))[0]
            if len(bad):
                raise DataError(
                    f"{directory / fname}: entry {bad[0]}: {axis} index {idx[bad[0]]} is out of "
                    f"range for a {n_users} x {n_items} matrix"
                )
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
    files = _feature_files(directory, config)
    features = _load_features(files)
    splits = {
        s: sp.csr_matrix((np.ones(m.nnz, np.float32), (m.row, m.col)), shape=m.shape)
        for s, m in coos.items()
    }
    user_ids = _raw_ids(directory / USER_IDS_FILE, n_users, "user")
    item_ids = _raw_ids(directory / config.item_ids_file, n_items, "item")
    return _finish(directory.name, splits, user_ids, item_ids, features, files, str(directory))


def save_matrices(dataset: Dataset, directory: str | Path) -> Path:
    """Write ``dataset`` as a pickled-matrix directory (COO matrices, as in the TikTok release)."""
    import pickle

    from cranerec.utils.io import write_bytes_atomic

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, fname in MATRIX_FILES.items():
        coo = sp.coo_matrix(dataset.split(split), dtype=np.float64)
        write_bytes_atomic(directory / fname, pickle.dumps(coo, protocol=4))
    _save_features(dataset, directory)
    return directory


def _save_features(dataset: Dataset, directory: Path) -> None:
    from cranerec.utils.io import atomic_write, write_text_atomic

    if dataset.synthetic:  # converted synthetic data stays marked as synthetic when reloaded
        write_text_atomic(
            directory / SYNTHETIC_MARKER,
            "This directory holds cranerec's built-in SYNTHETIC dataset (generated, not real data).\n",
        )
    for name, feat in dataset.features.items():
        atomic_write(directory / f"{name}{FEAT_SUFFIX}", lambda f, a=feat: np.save(f, a))
    # raw ids survive a conversion (both loaders read these files back)
    for fname, ids in ((USER_IDS_FILE, dataset.user_ids), ("item_ids.txt", dataset.item_ids)):
        ids = np.asarray(ids).astype(str)
        if not np.array_equal(ids, np.arange(len(ids)).astype(str)):
            write_text_atomic(directory / fname, "".join(f"{i}\n" for i in ids))


def _plain_name(name: str) -> str:
    """A dataset name used as a file name: one path component, nothing that escapes."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise DataError(f"--name {name!r}: a dataset name must be a plain file name (no / or ..)")
    return name


# ---------------------------------------------------------------------------- raw logs


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

    files = _feature_files(directory, config)
    features = _load_features(files)
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
    return _finish(
        log_file.stem if path.is_file() else path.name,
        splits,
        user_ids,
        item_ids,
        features,
        files,
        str(log_file),
    )
