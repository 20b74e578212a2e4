"""Recommendations from a trained run directory, without retraining and without unpickling.

``Recommender.load(run_dir)`` reads ``config.yaml``, ``embeddings.npz`` (``np.load(...,
allow_pickle=False)``) and ``seen.npz`` (each user's training items); ``model.pt``
(``torch.load(..., weights_only=True)``) and the training data named in ``config.yaml`` are
read only for cold-start items (``add_items``), and the training data for runs older than
``seen.npz``. Every missing, truncated or foreign file is a ``ServeError`` naming it.

Raw ids at the edge, indices inside: ids are compared as strings (``7`` and ``"7"`` are the
same user), and every result carries raw item ids and scores, best first (score descending,
then the lower item index, as the evaluator orders them). Scores are the inner products of the
exported vectors (``Recommender.export_embeddings`` of the model), so they are the model's own.
"""

from __future__ import annotations

import json
import logging
import threading
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

import cranerec
from cranerec.config import ConfigError
from cranerec.data.dataset import Dataset
from cranerec.models import get_model_class
from cranerec.models.base import Recommender as Model
from cranerec.serve.index import VectorIndex
from cranerec.train.config import RunConfig
from cranerec.train.run import (
    CONFIG_FILE,
    EMBEDDINGS_FILE,
    MODEL_FILE,
    RESULTS_FILE,
    SEEN_FILE,
    read_run_config,
)

log = logging.getLogger(__name__)

RawId = str | int
#: Unknown ids named in an error message (the error's ``ids`` holds them all).
_SHOWN_IDS = 20


class ServeError(ValueError):
    """A run directory that cannot be served, or a request that cannot be answered; the message
    names the file or the ids at fault."""


class UnknownIdError(ServeError):
    """Ids that the run does not know; ``kind`` is ``user`` or ``item``, ``ids`` lists them."""

    def __init__(self, kind: str, ids: list[str]) -> None:
        self.kind = kind
        self.ids = ids
        shown = ", ".join(repr(i) for i in ids[:_SHOWN_IDS])
        more = f" and {len(ids) - _SHOWN_IDS} more" if len(ids) > _SHOWN_IDS else ""
        super().__init__(f"unknown {kind} id{'s' if len(ids) > 1 else ''}: {shown}{more}")


@dataclass(frozen=True)
class RankedItems:
    """One ranked list, best first: raw ``item_ids`` (str) and their ``scores`` (float32).
    ``query`` is what the list is for: the user id (``recommend``), the item id
    (``similar_items``), or None (a new user, ``recommend_for_items``)."""

    query: str | None
    item_ids: np.ndarray  # [n] str
    scores: np.ndarray  # [n] float32

    def __len__(self) -> int:
        return len(self.item_ids)

    def items(self) -> list[dict[str, Any]]:
        """``[{"item_id": ..., "score": ...}, ...]`` (the HTTP service's shape)."""
        return [
            {"item_id": i, "score": s}
            for i, s in zip(self.item_ids.tolist(), self.scores.tolist(), strict=True)
        ]


def _as_ids(ids: RawId | Iterable[RawId], kind: str) -> tuple[bool, list[str]]:
    """``(single, ids as strings)`` for one raw id or a list of them."""

    def one(x: object) -> str:
        if isinstance(x, bool) or not isinstance(x, str | int | np.integer | np.str_):
            raise ServeError(f"{kind} ids must be strings or integers, got {type(x).__name__}")
        return str(x)

    if isinstance(ids, str | int | np.integer | np.str_) and not isinstance(ids, bool):
        return True, [one(ids)]
    if isinstance(ids, Mapping) or not isinstance(ids, Iterable):
        raise ServeError(f"expected a {kind} id or a list of them, got {type(ids).__name__}")
    return False, [one(x) for x in ids]


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ServeError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


class Recommender:
    """A trained run ready to answer: ``recommend``, ``similar_items``,
    ``recommend_for_items`` (new users) and ``add_items`` (cold-start items).

    Build it with ``Recommender.load(run_dir)``. Methods are safe to call from several threads
    (one lock; faiss searches are fast and the HTTP service runs them on one event loop).
    """

    def __init__(
        self,
        *,
        run_dir: Path,
        config: RunConfig,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        user_emb: np.ndarray,
        item_emb: np.ndarray,
        seen: sp.csr_matrix | None,
        results: dict[str, Any],
        synthetic: bool,
        index: str = "flat",
        index_options: dict[str, Any] | None = None,
        dataset: Dataset | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.config = config
        self.model_class: type[Model] = get_model_class(config.model_name)
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.user_emb = user_emb
        self.item_emb = item_emb
        self.n_trained_items = len(item_ids)
        self._seen = seen
        self._results = results
        self._synthetic = synthetic
        self._index_kind = index
        self._index_options = dict(index_options or {})
        self._dataset = dataset
        self._model: Model | None = None
        self._lock = threading.RLock()
        self._user_index = {u: i for i, u in enumerate(user_ids.tolist())}
        self._item_index = {t: i for i, t in enumerate(item_ids.tolist())}
        self.index = VectorIndex(item_emb, index, **self._index_options)
        self._cosine: VectorIndex | None = None  # built on first similar_items

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        *,
        index: str = "flat",
        index_options: dict[str, Any] | None = None,
        dataset: Dataset | None = None,
    ) -> Recommender:
        """Load a finished run directory.

        ``index``: ``flat`` (exact, default), ``hnsw`` or ``ivf`` (approximate; options in
        ``index_options``, see ``VectorIndex``). ``dataset``: the training data, when it is not
        (or no longer) where ``config.yaml`` says; needed only for cold-start items and for runs
        without ``seen.npz``. Raises ``ServeError`` naming the file at fault."""
        run_dir = Path(run_dir)
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
        bound = float(
            np.linalg.norm(user_emb, axis=1).max() * np.linalg.norm(item_emb, axis=1).max()
        )
        if not bound < np.finfo(np.float32).max:
            raise ServeError(f"{emb_path}: vectors so large that scores overflow float32")
        flag = arrays.get("synthetic_data", np.array(False))
        synthetic = bool(flag.size == 1 and flag.item())
        seen_path = run_dir / SEEN_FILE
        seen = _read_seen(seen_path, len(user_ids), len(item_ids)) if seen_path.exists() else None
        return cls(
            run_dir=run_dir, config=config, user_ids=user_ids, item_ids=item_ids,
            user_emb=user_emb, item_emb=item_emb, seen=seen, results=_read_results(run_dir),
            synthetic=synthetic, index=index, index_options=index_options, dataset=dataset,
        )  # fmt: skip

    # ---------------------------------------------------------------- information

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def info(self) -> dict[str, Any]:
        """Model, dataset, counts and versions (``GET /v1/info``)."""
        return {
            "model": self.config.model_name,
            "dataset": self._results.get("dataset") or Path(self.config.data.path).name,
            "synthetic_data": self._synthetic,
            "data_fingerprint": self._results.get("data_fingerprint"),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_cold_start_items": self.n_items - self.n_trained_items,
            "dim": int(self.item_emb.shape[1]),
            "index": self._index_kind,
            "cold_start": self.model_class.has_content_path(),
            "version": cranerec.__version__,
            "trained_with_version": self._results.get("cranerec_version"),
        }

    def check_ids(self, ids: RawId | Iterable[RawId], kind: str = "user") -> None:
        """Raise ``UnknownIdError`` naming every id of ``ids`` the run does not know."""
        _, ids = _as_ids(ids, kind)
        self._lookup(ids, self._user_index if kind == "user" else self._item_index, kind)

    # ---------------------------------------------------------------- queries

    def recommend(
        self,
        user_ids: RawId | Iterable[RawId],
        k: int = 20,
        exclude_seen: bool = True,
        items: Iterable[RawId] | None = None,
    ) -> RankedItems | list[RankedItems]:
        """Top-``k`` items for each user, best first.

        ``user_ids``: one raw id (returns one ``RankedItems``) or a list (returns a list, in the
        same order). ``exclude_seen``: leave out each user's training items. ``items``: restrict
        the candidates to these raw item ids. A list may be shorter than k when fewer items
        remain. Unknown ids raise ``UnknownIdError`` naming them."""
        single, ids = _as_ids(user_ids, "user")
        k = _check_k(k)
        with self._lock:
            users = self._lookup(ids, self._user_index, "user")
            candidates = None
            if items is not None:
                _, item_list = _as_ids(items, "item")
                candidates = self._lookup(item_list, self._item_index, "item")
            if not ids:
                return []
            exclude = [self._seen_items(u) for u in users] if exclude_seen else None
            scores, idx = self.index.search(
                self.user_emb[users], min(k, self.n_items), exclude, candidates
            )
            out = [self._ranked(q, s, i) for q, s, i in zip(ids, scores, idx, strict=True)]
        return out[0] if single else out

    def similar_items(
        self, item_ids: RawId | Iterable[RawId], k: int = 20
    ) -> RankedItems | list[RankedItems]:
        """The ``k`` items nearest to each item by cosine similarity of the model's item
        vectors, the item itself excluded (one id -> one ``RankedItems``, a list -> a list)."""
        single, ids = _as_ids(item_ids, "item")
        k = _check_k(k)
        with self._lock:
            items = self._lookup(ids, self._item_index, "item")
            if not ids:
                return []
            index, unit = self._cosine_index()
            scores, idx = index.search(
                unit[items], min(k, self.n_items), [np.array([i]) for i in items]
            )
            out = [self._ranked(q, s, i) for q, s, i in zip(ids, scores, idx, strict=True)]
        return out[0] if single else out

    def recommend_for_items(
        self, item_ids: Iterable[RawId], k: int = 20, exclude_seen: bool = True
    ) -> RankedItems:
        """Top-``k`` items for a new user who holds ``item_ids``, without retraining: the user's
        vector is the model's ``user_from_items`` of those items' vectors (by default their
        normalised sum). ``exclude_seen`` leaves the given items out."""
        _, ids = _as_ids(item_ids, "item")
        k = _check_k(k)
        if not ids:
            raise ServeError("recommend_for_items needs at least one item id")
        with self._lock:
            items = self._lookup(ids, self._item_index, "item")
            held = torch.from_numpy(self.item_emb[np.unique(items)])
            user = self.model_class.user_from_items(held, self.config.model)
            query = user.detach().float().cpu().numpy().reshape(1, -1)
            exclude = [np.unique(items)] if exclude_seen else None
            scores, idx = self.index.search(query, min(k, self.n_items), exclude)
            return self._ranked(None, scores[0], idx[0])

    # ---------------------------------------------------------------- cold-start items

    def add_items(self, features: Mapping[str, np.ndarray], item_ids: Sequence[RawId]) -> None:
        """Add items known only by their modality features (``{modality: [n_new, width]}``,
        every modality of the training data), recommendable at once. Their vectors come from
        the model's content path (``items_from_features``); existing scores do not change.
        Models without a content path raise ``ServeError`` saying so. Needs ``model.pt`` and the
        training data (``config.yaml``'s, or ``dataset=`` given to ``load``)."""
        _, ids = _as_ids(item_ids, "item")
        if not ids:
            raise ServeError("add_items needs at least one item id")
        if not self.model_class.has_content_path():
            raise ServeError(
                f"model {self.config.model_name!r} has no content path: it cannot represent an "
                "item from its features alone (cold-start items need a content model such as "
                "crane, freedom or vbpr)"
            )
        with self._lock:
            dup = sorted(i for i, n in Counter(ids).items() if n > 1)
            if dup:
                raise ServeError(f"duplicate new item ids: {', '.join(map(repr, dup[:20]))}")
            known = [i for i in ids if i in self._item_index]
            if known:
                raise ServeError(
                    f"item ids already in the catalogue: {', '.join(map(repr, known[:20]))}"
                )
            model, dataset = self._trained_model()
            feats = _check_features(features, dataset, len(ids))
            try:
                with torch.no_grad():
                    vectors = model.items_from_features(feats, dataset)
            except NotImplementedError as e:
                raise ServeError(str(e)) from None
            vectors = np.ascontiguousarray(vectors.detach().float().cpu().numpy())
            if (
                vectors.shape != (len(ids), self.item_emb.shape[1])
                or not np.isfinite(vectors).all()
            ):
                raise ServeError(
                    f"model {self.config.model_name!r} returned cold-start vectors of shape "
                    f"{vectors.shape} (expected {(len(ids), self.item_emb.shape[1])}, finite)"
                )
            start = self.n_items
            self.item_emb = np.concatenate([self.item_emb, vectors])
            self.item_ids = np.concatenate([self.item_ids, np.asarray(ids, dtype=str)])
            self._item_index.update({t: start + j for j, t in enumerate(ids)})
            self.index.add(vectors)
            if self._cosine is not None:
                self._cosine[0].add(_unit_rows(vectors))
                self._cosine = (
                    self._cosine[0],
                    np.concatenate([self._cosine[1], _unit_rows(vectors)]),
                )

    # ---------------------------------------------------------------- internals

    def _lookup(self, ids: list[str], index: dict[str, int], kind: str) -> np.ndarray:
        missing = [i for i in dict.fromkeys(ids) if i not in index]
        if missing:
            raise UnknownIdError(kind, missing)
        return np.fromiter((index[i] for i in ids), dtype=np.int64, count=len(ids))

    def _ranked(self, query: str | None, scores: np.ndarray, idx: np.ndarray) -> RankedItems:
        found = idx >= 0
        return RankedItems(query, self.item_ids[idx[found]], scores[found].astype(np.float32))

    def _seen_items(self, user: int) -> np.ndarray:
        seen = self._seen_matrix()
        return seen.indices[seen.indptr[user] : seen.indptr[user + 1]]

    def _seen_matrix(self) -> sp.csr_matrix:
        if self._seen is None:  # a run older than seen.npz: its training data
            log.info("%s has no %s; reading its training data", self.run_dir, SEEN_FILE)
            train = self._training_data(f"excluding seen items (no {SEEN_FILE})").train
            self._seen = sp.csr_matrix(train, dtype=bool)
        return self._seen

    def _cosine_index(self) -> tuple[VectorIndex, np.ndarray]:
        if self._cosine is None:
            unit = _unit_rows(self.item_emb)
            self._cosine = (VectorIndex(unit, self._index_kind, **self._index_options), unit)
        return self._cosine

    def _training_data(self, purpose: str) -> Dataset:
        if self._dataset is None:
            from cranerec.data.loaders import load_dataset

            try:
                self._dataset = load_dataset(self.config.data)
            except (ValueError, OSError) as e:
                raise ServeError(
                    f"{purpose} needs the training data named in {self.run_dir / CONFIG_FILE} "
                    f"(data.path {self.config.data.path!r}), which could not be loaded: {e}. "
                    "Pass it with Recommender.load(..., dataset=...)"
                ) from None
        expected = self._results.get("data_fingerprint")
        if expected and self._dataset.fingerprint != expected:
            raise ServeError(
                f"the training data ({self._dataset.name}, fingerprint "
                f"{self._dataset.fingerprint}) is not the data {self.run_dir} was trained on "
                f"(fingerprint {expected})"
            )
        if (self._dataset.n_users, self._dataset.n_items) != (self.n_users, self.n_trained_items):
            raise ServeError(
                f"the training data has {self._dataset.n_users} users x {self._dataset.n_items} "
                f"items; {self.run_dir / EMBEDDINGS_FILE} has {self.n_users} x {self.n_trained_items}"
            )
        return self._dataset

    def _trained_model(self) -> tuple[Model, Dataset]:
        """The trained model rebuilt from ``model.pt`` on its training data (cached)."""
        dataset = self._training_data("adding cold-start items")
        if self._model is None:
            path = self.run_dir / MODEL_FILE
            saved = _read_model_file(path, self.config.model_name)
            try:
                model = self.model_class(dataset, self.config.model)
                model.load_state_dict(saved["state_dict"])
            except (RuntimeError, ValueError, KeyError, TypeError) as e:
                raise ServeError(
                    f"{path}: does not fit model {self.config.model_name!r}: {e}"
                ) from None
            model.eval()
            _, item_emb = model.export_embeddings()
            if not np.allclose(
                item_emb.float().numpy(),
                self.item_emb[: self.n_trained_items],
                rtol=1e-4,
                atol=1e-5,
            ):
                raise ServeError(
                    f"{path} does not reproduce {self.run_dir / EMBEDDINGS_FILE}: the files come "
                    "from different runs"
                )
            self._model = model
        return self._model, dataset


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


def _read_seen(path: Path, n_users: int, n_items: int) -> sp.csr_matrix:
    arrays = _read_npz(path, ("indptr", "indices", "shape"), missing_hint="")
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
    data = np.ones(len(indices), dtype=bool)
    return sp.csr_matrix(
        (data, indices.astype(np.int64), indptr.astype(np.int64)), (n_users, n_items)
    )


def _read_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RESULTS_FILE
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ServeError(f"{path}: unreadable: {e}") from None
    if not isinstance(results, dict):
        raise ServeError(f"{path}: not a cranerec results file")
    return results


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


def _check_features(
    features: Mapping[str, np.ndarray], dataset: Dataset, n_new: int
) -> dict[str, torch.Tensor]:
    if not isinstance(features, Mapping):
        raise ServeError("features must be a mapping {modality: [n_new, width] array}")
    expected = dataset.modalities
    missing = [m for m in expected if m not in features]
    extra = [m for m in features if m not in expected]
    if missing or extra:
        raise ServeError(
            f"features must have exactly the modalities {expected}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {extra}" if extra else "")
        )
    out = {}
    for m in expected:
        try:
            x = np.asarray(features[m], dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise ServeError(f"modality {m!r}: not a numeric array ({e})") from None
        width = dataset.features[m].shape[1]
        if x.shape != (n_new, width):
            raise ServeError(f"modality {m!r}: shape {x.shape}; expected ({n_new}, {width})")
        if not np.isfinite(x).all():
            raise ServeError(f"modality {m!r}: non-finite values")
        out[m] = torch.from_numpy(np.ascontiguousarray(x))
    return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): inner products become cosines."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)
