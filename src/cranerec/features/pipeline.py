"""The whole path from an item table to a feature file, as ``cranerec features`` runs it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cranerec.data.errors import DataError
from cranerec.features.items import align_items, read_item_table, sorted_ids
from cranerec.features.provenance import directory_sha256, write_features
from cranerec.utils.env import resolve_device
from cranerec.utils.progress import Mode

log = logging.getLogger(__name__)
ON_MISSING = ("error", "zero")


@dataclass(frozen=True)
class FeatureReport:
    """What a feature build wrote and what it found."""

    path: Path
    rows: int
    width: int
    missing: list[str]  # item ids without content (zero rows), when on_missing="zero"
    extra_rows: int  # table rows that match no item (ignored)

    def lines(self) -> list[str]:
        out = [f"wrote {self.path} ({self.rows:,} items x {self.width}) and its provenance "
               f"{self.path.with_suffix('.json').name}"]  # fmt: skip
        if self.extra_rows:
            out.append(f"ignored {self.extra_rows:,} table row(s) that match no item of the data")
        if self.missing:
            out.append(f"{len(self.missing):,} item(s) without content got a row of zeros "
                       f"(first: {self.missing[:5]}; listed in the sidecar)")  # fmt: skip
        return out


def _targets(table, item_ids, on_missing: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(item ids, table row of each (-1: no row, allowed by ``on_missing="zero"``), extra rows):
    the given items, or every row of the table in id order (numeric when every id is an
    integer)."""
    if item_ids is None:
        ids = sorted_ids(table.ids)
    else:
        ids = np.asarray(item_ids, dtype=object)
        if len(ids) == 0:
            raise DataError("--item-ids: the list has no item ids; give one raw item id a line")
        seen = pd.Series([str(i).strip() for i in ids.tolist()])
        dup = seen[seen.duplicated()]
        if len(dup):
            raise DataError(
                f"--item-ids: item id {dup.iloc[0]!r} is listed more than once ({dup.nunique()} "
                "repeated id(s)); list each item once, in the dataset's item order"
            )
    align = align_items(table, ids, allow_missing=on_missing == "zero")
    return ids, align.rows, align.extra


def check_settings(on_missing: str, batch_size: int, device: str) -> None:
    """The settings every feature build shares, refused before any file is read."""
    if on_missing not in ON_MISSING:
        raise DataError(f"--on-missing {on_missing!r}: choose one of {list(ON_MISSING)}")
    if batch_size < 1:
        raise DataError("--batch-size must be >= 1")
    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as e:
        raise DataError(f"--device: {e}; use --device cpu or an available cuda:N") from None


def check_out(out: str | Path, modality: str, overwrite: bool) -> None:
    """Refuse to replace ``<out>/<modality>_feat.npy`` unless ``overwrite``: features already
    computed (minutes to hours of a model's time) are never lost to a repeated command."""
    if Path(out).exists() and not Path(out).is_dir():
        raise DataError(f"--out {out}: is a file, not a folder; give a folder for the features")
    existing = Path(out) / f"{modality}_feat.npy"
    if existing.exists() and not overwrite:
        raise DataError(
            f"--out {out}: already holds {existing.name}; pass --overwrite (Python: "
            "overwrite=True) to replace it and its sidecar, or choose another --out or --modality"
        )


def _missing(ids: np.ndarray, empty: np.ndarray, what: str, table, on_missing: str) -> list[str]:
    missing = [str(i) for i in ids[empty].tolist()]
    if missing and on_missing == "error":
        raise DataError(
            f"{table.path}: {len(missing)} item(s) have {what}, first: {missing[:5]}; fix the "
            "table, or pass --on-missing zero to give them a row of zeros"
        )
    return missing


def _normalise(feat: np.ndarray, how: str) -> np.ndarray:
    if how == "none":
        return feat
    if how != "l2":
        raise DataError(f"--normalize {how!r}: choose none or l2")
    norm = np.linalg.norm(feat, axis=1, keepdims=True)
    return np.where(norm > 0, feat / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def build_text_features(
    items: str | Path, id_col: str, text_cols: list[str], out: str | Path, *,
    item_ids: np.ndarray | None = None, model: str | Path | None = None, modality: str = "text",
    batch_size: int = 32, device: str = "cpu", normalize: str = "none", on_missing: str = "error",
    separator: str = ". ", progress: bool | Mode = True, model_flag: str = "--model",
    overwrite: bool = False,
) -> FeatureReport:  # fmt: skip
    """Embed each item's text (the ``text_cols`` joined with ``separator``, empty cells
    skipped) and write ``<out>/<modality>_feat.npy`` aligned to ``item_ids`` by raw id.
    ``model_flag``: the calling command's option for ``model``, named in its errors. A feature
    file already at that path is an error unless ``overwrite`` (checked before any work)."""
    from cranerec.features.text import (
        DEFAULT_TEXT_MODEL,
        default_text_model,
        embed_text,
        load_text_model,
    )

    check_settings(on_missing, batch_size, device)
    check_out(out, modality, overwrite)
    if not text_cols:
        raise DataError("--text-cols: name at least one column of the item table")
    twice = sorted({c for c in text_cols if list(text_cols).count(c) > 1})
    if twice:
        raise DataError(f"--text-cols: {twice} named more than once; name each column once")
    table = read_item_table(items, id_col, text_cols)
    for col in text_cols:
        if not any(table.columns[col]):
            raise DataError(f"{table.path}: column {col!r} is empty in every row")
    ids, rows, extra = _targets(table, item_ids, on_missing)
    texts = [
        separator.join(v for v in (table.columns[c][r] for c in text_cols) if v) if r >= 0 else ""
        for r in rows
    ]
    empty = np.array([t == "" for t in texts], dtype=bool)
    missing = _missing(ids, empty, "no text in " + ", ".join(text_cols), table, on_missing)
    model_dir = Path(model) if model is not None else default_text_model(model_flag)
    st = load_text_model(model_dir, device, model_flag)
    todo = np.flatnonzero(~empty)
    log.info("embedding %d texts with %s on %s", len(todo), model_dir, device)
    try:
        emb = embed_text([texts[i] for i in todo], st, batch_size=batch_size, progress=progress)
    except ValueError as e:  # e.g. a CLIP image model: "Modality 'text' is not supported"
        raise DataError(
            f"{model_flag} {model_dir}: cannot embed text with it ({' '.join(str(e).split())}); "
            "give a sentence-transformers text model"
        ) from None
    feat = np.zeros((len(ids), emb.shape[1]), dtype=np.float32)
    feat[todo] = emb
    feat = _normalise(feat, normalize)
    path = write_features(out, modality, feat, ids, {
        "kind": "text",
        "model": {"name": DEFAULT_TEXT_MODEL if model is None else model_dir.name,
                  "path": str(model_dir), "sha256": directory_sha256(model_dir),
                  "library": "sentence-transformers", "max_seq_length": st.max_seq_length},
        "input": {"path": str(table.path), "sha256": table.sha256, "id_col": id_col,
                  "columns": list(text_cols), "separator": separator},
        "normalisation": normalize, "batch_size": batch_size, "device": device,
        "missing_items": missing, "extra_rows_ignored": extra,
    })  # fmt: skip
    return FeatureReport(path, len(ids), int(feat.shape[1]), missing, extra)


def build_image_features(
    items: str | Path, id_col: str, image_col: str, out: str | Path, *, model: str | Path,
    item_ids: np.ndarray | None = None, image_root: str | Path | None = None,
    modality: str = "image", batch_size: int = 32, device: str = "cpu", normalize: str = "none",
    on_missing: str = "error", progress: bool | Mode = True, model_flag: str = "--model",
    overwrite: bool = False,
) -> FeatureReport:  # fmt: skip
    """Embed each item's image (``image_col``: a path, relative to ``image_root`` or else to
    the table's folder) and write ``<out>/<modality>_feat.npy`` aligned to ``item_ids``.
    ``model_flag``: the calling command's option for ``model``, named in its errors. A feature
    file already at that path is an error unless ``overwrite`` (checked before any work)."""
    from cranerec.features.image import embed_images, load_image_model

    check_settings(on_missing, batch_size, device)
    check_out(out, modality, overwrite)
    table = read_item_table(items, id_col, [image_col])
    ids, rows, extra = _targets(table, item_ids, on_missing)
    root = Path(image_root) if image_root is not None else table.path.parent
    cells = [table.columns[image_col][r] if r >= 0 else "" for r in rows]
    paths = [(root / c) if c else None for c in cells]
    none_read = DataError(
        f"{table.path}: none of the {len(ids)} item(s) has a readable image (column "
        f"{image_col!r}, paths relative to {root}), first: {ids[:5].tolist()}; check the "
        "paths, or give their folder with --image-root"
    )
    what = f"a missing or unreadable image (column {image_col!r}, paths relative to {root})"
    absent = np.array([p is None or not p.is_file() for p in paths], dtype=bool)
    if absent.all():  # most often the wrong folder
        raise none_read
    # missing files are refused before a model is loaded or any image embedded; an unreadable
    # one is only found by decoding it, below
    _missing(ids, absent, what, table, on_missing)
    model_dir = Path(model)
    processor, net = load_image_model(model_dir, device, model_flag)
    try:
        feat, ok = embed_images(paths, processor, net, batch_size=batch_size, progress=progress)
    except DataError:  # not one image read
        raise none_read from None
    missing = _missing(ids, ~ok, what, table, on_missing)
    feat = _normalise(feat, normalize)
    path = write_features(out, modality, feat, ids, {
        "kind": "image",
        "model": {"name": model_dir.name, "path": str(model_dir),
                  "sha256": directory_sha256(model_dir), "library": "transformers",
                  "architecture": type(net).__name__},
        "input": {"path": str(table.path), "sha256": table.sha256, "id_col": id_col,
                  "columns": [image_col], "image_root": str(root)},
        "normalisation": normalize, "batch_size": batch_size, "device": device,
        "missing_items": missing, "extra_rows_ignored": extra,
    })  # fmt: skip
    return FeatureReport(path, len(ids), int(feat.shape[1]), missing, extra)
