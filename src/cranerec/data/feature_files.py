"""Item-feature files of a dataset folder: finding each modality's ``<modality>_feat.npy`` (by
discovery, by ``DataConfig.modalities`` / ``feature_files``, or in ``features_dir``) and reading
one as a checked float32 [rows, width] array whose errors name the file. Every on-disk format and
serving's new-items folders read features through ``read_feature_file``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cranerec.data.config import DataConfig
from cranerec.data.errors import DataError

FEAT_SUFFIX = "_feat.npy"


def find_feature_files(directory: Path, config: DataConfig) -> dict[str, Path]:
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
    _check_declared_size(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e or 'empty file'})") from None
    except MemoryError:  # a header declaring more rows than the file (or memory) holds
        raise DataError(
            f"{path}: its header declares an array larger than this machine's memory; is the "
            "file damaged or cut short? write it again"
        ) from None
    if not isinstance(arr, np.ndarray):  # an .npz archive under an .npy name
        arr.close()
        raise DataError(f"{path}: an .npz archive, not one .npy array (items x width)")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(
            f"{path}: modality {name!r} has dtype {arr.dtype}, not real numbers (non-numeric "
            "or complex); save the features as float32"
        )
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise DataError(
            f"{path}: modality {name!r} has shape {arr.shape}; it must be 2-D "
            "[n_items, width] with width >= 1"
        )
    with np.errstate(over="ignore"):  # beyond float32: inf, refused by the callers' checks
        return arr.astype(np.float32, copy=False)  # float16 on disk -> float32


def _check_declared_size(path: Path) -> None:
    """Refuse an ``.npy`` whose header declares more data than the file holds (cut short, or
    crafted to make the reader allocate terabytes) before anything is allocated. A header
    that does not parse is left to ``np.load``'s own error."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError, TypeError):
        return
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = path.stat().st_size - offset
    if declared > held:
        raise DataError(
            f"{path}: its header declares a {shape} {dtype} array ({declared:,} bytes) but the "
            f"file holds {held:,}; it is damaged or cut short: write it again"
        )


def load_features(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """Every file of ``files`` (modality name -> path) read with ``read_feature_file``."""
    return {name: read_feature_file(path, name) for name, path in files.items()}
