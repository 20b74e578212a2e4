"""Reading a run directory for serving, every file checked once, at load: no query reads a file
or fails on one.

``read_run`` reads ``config.yaml``, ``embeddings.npz`` (``np.load(..., allow_pickle=False)``),
``seen.npz`` (each user's interactions, what ``exclude_seen`` leaves out) and ``results.json``;
``settle_seen`` decides at load what ``exclude_seen`` covers. ``model.pt`` (``torch.load(...,
weights_only=True)``) and the training data named in ``config.yaml`` are read for cold-start
items (``load_trained_model``, ``load_training_data``), and the training data at load for a run
without ``seen.npz``. Every missing, truncated or foreign file is a ``ServeError`` naming it.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from cranerec.config import ConfigError
from cranerec.data.dataset import SPLITS, Dataset
from cranerec.models.base import Model
from cranerec.serve.errors import ServeError
from cranerec.train.config import RunConfig
from cranerec.train.run import read_run_config
from cranerec.train.rundir import (
    CONFIG_FILE,
    EMBEDDINGS_FILE,
    MODEL_FILE,
    RESULTS_FILE,
    SEEN_FILE,
)

log = logging.getLogger(__name__)

#: What exclude_seen covers at best: every interaction the run saw.
ALL_SPLITS = tuple(SPLITS)
#: No score may reach this (float32's largest value): checked for every vector served.
SCORE_LIMIT = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class RunFiles:
    """What ``read_run`` read from a run directory, checked."""

    config: RunConfig
    user_ids: np.ndarray  # [n_users] str
    item_ids: np.ndarray  # [n_items] str
    user_emb: np.ndarray  # [n_users, d] float32
    item_emb: np.ndarray  # [n_items, d] float32
    seen: sp.csr_matrix | None  # None: the run has no seen.npz
    seen_splits: list[str]  # the splits seen.npz records
    results: dict[str, Any]  # the fields of results.json the service reads
    synthetic: bool  # trained on generated data


def read_run(run_dir: Path) -> RunFiles:
    """The files of ``run_dir`` the service answers from, checked (``ServeError`` naming the
    file at fault)."""
    if not run_dir.is_dir():
        raise ServeError(f"{run_dir} is not a directory")
    config = _read_config(run_dir)
    emb_path = run_dir / EMBEDDINGS_FILE
    arrays = _read_npz(
        emb_path,
        ("user_emb", "item_emb", "user_ids", "item_ids"),
        missing_hint="the run has not finished",
        optional=("synthetic_data",),
    )
    user_emb, item_emb = arrays["user_emb"], arrays["item_emb"]
    for name, emb in (("user_emb", user_emb), ("item_emb", item_emb)):
        if emb.ndim != 2 or not np.issubdtype(emb.dtype, np.floating) or emb.shape[0] == 0:
            raise ServeError(
                f"{emb_path}: {name} must be a non-empty 2-d float array, got {emb.dtype} "
                f"{emb.shape}"
            )
        if not np.isfinite(emb).all():
            raise ServeError(f"{emb_path}: {name} has non-finite values")
    if user_emb.shape[1] != item_emb.shape[1]:
        raise ServeError(
            f"{emb_path}: user_emb {user_emb.shape} and item_emb {item_emb.shape} have "
            "different widths"
        )
    user_ids = _ids(arrays["user_ids"], len(user_emb), "user_ids", emb_path)
    item_ids = _ids(arrays["item_ids"], len(item_emb), "item_ids", emb_path)
    user_emb = np.ascontiguousarray(user_emb, dtype=np.float32)
    item_emb = np.ascontiguousarray(item_emb, dtype=np.float32)
    bound = float(np.linalg.norm(user_emb, axis=1).max() * np.linalg.norm(item_emb, axis=1).max())
    if not bound < SCORE_LIMIT:
        raise ServeError(f"{emb_path}: vectors so large that scores overflow float32")
    flag = arrays.get("synthetic_data", np.array(False))
    seen_path = run_dir / SEEN_FILE
    seen, recorded = None, ["train"]
    if seen_path.exists():
        seen, recorded = _read_seen(seen_path, len(user_ids), len(item_ids))
    return RunFiles(
        config=config, user_ids=user_ids, item_ids=item_ids, user_emb=user_emb,
        item_emb=item_emb, seen=seen, seen_splits=recorded, results=_read_results(run_dir),
        synthetic=bool(flag.size == 1 and flag.item()),
    )  # fmt: skip


def settle_seen(
    run_dir: Path,
    seen: sp.csr_matrix | None,
    recorded: list[str],
    splits: Sequence[str] | None,
    require_seen: bool,
    training_data: Callable[[str], Dataset],
) -> tuple[sp.csr_matrix | None, list[str]]:
    """What exclude_seen leaves out, decided at load (see ``Recommender.load``): ``(seen items,
    the splits they come from)``, given what ``seen.npz`` recorded (``seen``, ``recorded``),
    the ``seen_splits`` asked for (``splits``) and the run's training data on demand."""
    if splits is not None:
        splits = list(dict.fromkeys(splits))
        if not splits or not set(splits) <= set(ALL_SPLITS):
            raise ServeError(f"seen_splits must name splits of {list(ALL_SPLITS)}: {splits}")
        return _seen_from_data(training_data(f"seen_splits={splits}"), splits)
    if seen is None:
        data = _seen_data(run_dir, require_seen, training_data)
        return (None, []) if data is None else _seen_from_data(data, ALL_SPLITS)
    if not set(recorded) >= set(ALL_SPLITS):
        missing = [x for x in ALL_SPLITS if x not in recorded]
        log.warning(
            "%s holds the %s interactions only: exclude_seen will not leave out items a "
            "user has in the %s split. Load with seen_splits=%s (and the training data), "
            "or send user_items to exclude them",
            run_dir / SEEN_FILE, "/".join(recorded), "/".join(missing), ALL_SPLITS,
        )  # fmt: skip
    return seen, recorded


def _seen_from_data(data: Dataset, splits: Sequence[str]) -> tuple[sp.csr_matrix, list[str]]:
    every = sum((data.split(name) for name in splits), sp.csr_matrix(data.train.shape))
    seen = sp.csr_matrix(every, dtype=bool)
    seen.sort_indices()
    return seen, list(splits)


def _seen_data(
    run_dir: Path, require_seen: bool, training_data: Callable[[str], Dataset]
) -> Dataset | None:
    """The training data standing in for a missing ``seen.npz`` (None: serve without)."""
    try:
        return training_data(f"excluding seen items (no {SEEN_FILE})")
    except ServeError as e:
        if require_seen:
            raise ServeError(
                f"{run_dir} has no {SEEN_FILE}, which exclude_seen needs, and its "
                f"training data cannot stand in: {e}. Rerun the training (it writes "
                f"{SEEN_FILE}), or load with require_seen=False to serve without "
                "excluding seen items"
            ) from None
        log.warning(
            "%s has no %s and no usable training data (%s): serving without exclude_seen; "
            "queries must ask for exclude_seen=false",
            run_dir, SEEN_FILE, e,
        )  # fmt: skip
        return None


def load_training_data(run_dir: Path, config: RunConfig, purpose: str) -> Dataset:
    """The training data ``config.yaml`` names (``ServeError`` saying what needs it)."""
    from cranerec.data.loaders import load_dataset

    try:
        return load_dataset(config.data)
    except (ValueError, OSError) as e:
        raise ServeError(
            f"{purpose} needs the training data named in {run_dir / CONFIG_FILE} "
            f"(data.path {config.data.path!r}), which could not be loaded: {e}. "
            "Pass it with Recommender.load(..., dataset=...)"
        ) from None


def check_training_data(
    dataset: Dataset, run_dir: Path, results: dict[str, Any], n_users: int, n_items: int
) -> None:
    """``ServeError`` unless ``dataset`` is the data the run was trained on (its fingerprint,
    where ``results.json`` records it, and its shape)."""
    expected = results.get("data_fingerprint")
    if expected and dataset.fingerprint != expected:
        raise ServeError(
            f"the training data ({dataset.name}, fingerprint "
            f"{dataset.fingerprint}) is not the data {run_dir} was trained on "
            f"(fingerprint {expected})"
        )
    if (dataset.n_users, dataset.n_items) != (n_users, n_items):
        raise ServeError(
            f"the training data has {dataset.n_users} users x {dataset.n_items} "
            f"items; {run_dir / EMBEDDINGS_FILE} has {n_users} x {n_items}"
        )


def load_trained_model(
    run_dir: Path,
    config: RunConfig,
    model_class: type[Model],
    dataset: Dataset,
    item_emb: np.ndarray,
) -> Model:
    """The trained model rebuilt from ``model.pt`` on its training data, in ``eval()`` mode;
    ``ServeError`` unless it reproduces the trained items' vectors ``item_emb``."""
    path = run_dir / MODEL_FILE
    saved = _read_model_file(path, config.model_name)
    try:
        model = model_class(dataset, config.model)
        model.load_state_dict(saved["state_dict"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise ServeError(f"{path}: does not fit model {config.model_name!r}: {e}") from None
    model.eval()
    _, exported = model.export_embeddings()
    if not np.allclose(exported.float().numpy(), item_emb, rtol=1e-4, atol=1e-5):
        raise ServeError(
            f"{path} does not reproduce {run_dir / EMBEDDINGS_FILE}: the files come "
            "from different runs"
        )
    return model


# -------------------------------------------------------------------- file readers


def _read_config(run_dir: Path) -> RunConfig:
    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise ServeError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    try:
        return read_run_config(run_dir)
    except (ConfigError, ValueError, TypeError, AttributeError, OSError) as e:
        raise ServeError(f"{path}: not a usable run configuration: {e}") from None
    except Exception as e:  # a YAML parser error: a foreign or truncated file
        raise ServeError(f"{path}: not a readable run configuration: {e}") from None


def _read_npz(
    path: Path, keys: Sequence[str], missing_hint: str, optional: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    if not path.exists():
        raise ServeError(f"{path.parent} has no {path.name}: {missing_hint}")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ServeError(f"{path}: unreadable (truncated or not an .npz archive): {e}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ServeError(f"{path}: not an .npz archive (a single array)")
    with z:
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise ServeError(
                f"{path}: not a cranerec {path.name} (missing {', '.join(missing)}; "
                f"has {', '.join(z.files) or 'nothing'})"
            )
        try:
            return {k: z[k] for k in [*keys, *(o for o in optional if o in z.files)]}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
            raise ServeError(f"{path}: unreadable (truncated or damaged): {e}") from None


def _ids(ids: np.ndarray, n: int, name: str, path: Path) -> np.ndarray:
    if ids.ndim != 1 or len(ids) != n:
        raise ServeError(f"{path}: {name} has shape {ids.shape}; expected [{n}]")
    ids = ids.astype(str)
    if len(set(ids.tolist())) != n:
        raise ServeError(f"{path}: {name} has duplicate ids")
    return ids


def _read_seen(path: Path, n_users: int, n_items: int) -> tuple[sp.csr_matrix, list[str]]:
    """The users' seen items and the splits they come from (``splits``; absent: train)."""
    arrays = _read_npz(path, ("indptr", "indices", "shape"), missing_hint="", optional=("splits",))
    indptr, indices, shape = arrays["indptr"], arrays["indices"], arrays["shape"]
    ok = (
        shape.tolist() == [n_users, n_items]
        and indptr.ndim == 1
        and indices.ndim == 1
        and np.issubdtype(indptr.dtype, np.integer)
        and np.issubdtype(indices.dtype, np.integer)
        and len(indptr) == n_users + 1
        and indptr[0] == 0
        and indptr[-1] == len(indices)
        and bool((np.diff(indptr) >= 0).all())
        and (len(indices) == 0 or (indices.min() >= 0 and indices.max() < n_items))
    )
    if not ok:
        raise ServeError(
            f"{path}: not the training items of a {n_users} x {n_items} run (shape "
            f"{shape.tolist()}, {len(indptr)} row pointers, {len(indices)} items)"
        )
    splits = ["train"]
    if "splits" in arrays:
        named = arrays["splits"]
        splits = named.astype(str).tolist() if named.ndim == 1 and named.dtype.kind == "U" else []
        if not splits or "train" not in splits or not set(splits) <= set(ALL_SPLITS):
            raise ServeError(
                f"{path}: splits must name the splits the file holds, train among them, from "
                f"{list(ALL_SPLITS)}; got {named.tolist()!r}"
            )
    data = np.ones(len(indices), dtype=bool)
    seen = sp.csr_matrix(
        (data, indices.astype(np.int64), indptr.astype(np.int64)), (n_users, n_items)
    )
    return seen, splits


#: results.json fields the service reads (``info``), with the types they must have.
_RESULTS_FIELDS: dict[str, tuple[type, ...]] = {
    "dataset": (str,),
    "data_fingerprint": (str, type(None)),
    "cranerec_version": (str, type(None)),
}


def _read_results(run_dir: Path) -> dict[str, Any]:
    """The fields of ``results.json`` the service reads, type-checked here so that no answer
    can fail on them (a missing file: none; other fields, metrics included, are not read)."""
    path = run_dir / RESULTS_FILE
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ServeError(f"{path}: unreadable: {e}") from None
    if not isinstance(results, dict):
        raise ServeError(f"{path}: not a cranerec results file (not a JSON object)")
    checked = {}
    for name, types in _RESULTS_FIELDS.items():
        if name not in results:
            continue
        value = results[name]
        if not isinstance(value, types) or value == "":
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ServeError(
                f"{path}: {name} must be a non-empty {expected}, got {value!r}: not a results "
                "file cranerec wrote (rerun the training, or fix the field)"
            )
        checked[name] = value
    return checked


def _read_model_file(path: Path, model_name: str) -> dict[str, Any]:
    if not path.exists():
        raise ServeError(f"{path.parent} has no {path.name}: cold-start items need the weights")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise ServeError(
            f"{path}: unreadable (truncated or not a cranerec model file): {e}"
        ) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict"), dict):
        raise ServeError(f"{path}: not a cranerec model file (no state_dict)")
    if saved.get("model_name") != model_name:
        raise ServeError(
            f"{path}: holds model {saved.get('model_name')!r}, but {CONFIG_FILE} says {model_name!r}"
        )
    return saved
