"""Feature files and their provenance sidecars.

``<modality>_feat.npy`` (float32 [n_items, width], row i = the item on line i of
``item_ids.txt``) and ``<modality>_feat.json``: the model (name and a hash of its files), the
package versions, the input table (path, hash, columns), the row count, the normalisation and
the date, so that anyone can tell what a feature file is and rebuild it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
from pathlib import Path

import numpy as np

from cranerec.data.errors import DataError

ITEM_IDS_FILE = "item_ids.txt"
PACKAGES = ("cranerec", "torch", "numpy", "sentence-transformers", "transformers", "pillow")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def directory_sha256(path: Path) -> str:
    """One SHA-256 over every file of a model directory (relative names and bytes, sorted)."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def read_item_ids(path: Path) -> list[str]:
    return [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]


def write_features(
    out_dir: str | Path, modality: str, features: np.ndarray, item_ids: np.ndarray, sidecar: dict
) -> Path:
    """Write ``<modality>_feat.npy``, its sidecar and ``item_ids.txt`` into ``out_dir`` atomically.

    An ``item_ids.txt`` already there with other ids is an error (every feature file of a folder
    has the same rows); nothing is written then.
    """
    from cranerec.utils.io import atomic_write, write_json_atomic, write_text_atomic

    if not modality.isidentifier():
        raise DataError(f"--modality {modality!r}: use letters, digits and _ (it names the file)")
    out_dir = Path(out_dir)
    ids = [str(i) for i in np.asarray(item_ids).tolist()]
    ids_file = out_dir / ITEM_IDS_FILE
    if ids_file.is_file() and read_item_ids(ids_file) != ids:
        raise DataError(
            f"{ids_file}: lists other items (or another order) than these features; every feature "
            "file of a folder must have the same rows: write to another --out"
        )
    features = np.ascontiguousarray(features, dtype=np.float32)
    path = out_dir / f"{modality}_feat.npy"
    atomic_write(path, lambda f: np.save(f, features))
    write_json_atomic(out_dir / f"{modality}_feat.json", {
        "modality": modality, "file": path.name, "rows": int(features.shape[0]),
        "width": int(features.shape[1]), "row_order": ITEM_IDS_FILE, **sidecar,
        "packages": package_versions(), "created": now_utc(),
    })  # fmt: skip
    if not ids_file.is_file():
        write_text_atomic(ids_file, "".join(f"{i}\n" for i in ids))
    return path
