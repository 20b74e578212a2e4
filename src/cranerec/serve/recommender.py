"""Recommendations from a trained run directory, without retraining and without unpickling.

``Recommender.load(run_dir)`` reads ``config.yaml``, ``embeddings.npz`` (``np.load(...,
allow_pickle=False)``), ``seen.npz`` (each user's interactions, what ``exclude_seen`` leaves
out) and ``results.json``, and checks each of them then: no query reads a file or fails on
one. ``model.pt`` (``torch.load(..., weights_only=True)``) and the training data named in
``config.yaml`` are read for cold-start items (``add_items``), and the training data at load
for a run without ``seen.npz``. Every missing, truncated or foreign file is a ``ServeError``
naming it.

``exclude_seen`` covers what ``seen.npz`` records: its ``splits`` array names them (train,
valid, test); a file without it (what ``train_run`` writes today) holds the training split
only, which is logged at load. Given the data (``dataset=``, or for a run without ``seen.npz``
the data ``config.yaml`` names), every split is excluded. ``user_items`` leaves out items per
request.

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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

import cranerec
from cranerec.config import ConfigError
from cranerec.data.dataset import SPLITS, Dataset
from cranerec.data.errors import DataError
from cranerec.data.loaders import FEAT_SUFFIX, read_feature_file
from cranerec.features.provenance import ITEM_IDS_FILE, read_item_ids
from cranerec.models import get_model_class
from cranerec.models.base import Model
from cranerec.serve.index import VectorIndex
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

RawId = str | int
#: Unknown ids named in an error message (the error's ``ids`` holds them all).
_SHOWN_IDS = 20
#: What exclude_seen covers at best: every interaction the run saw.
_ALL_SPLITS = tuple(SPLITS)
#: New items whose vectors are computed in one call of the model's content path.
_ADD_CHUNK = 1024
#: No score may reach this (float32's largest value): checked for every vector served.
_SCORE_LIMIT = float(np.finfo(np.float32).max)


class ServeError(ValueError):
    """A run directory that cannot be served, or a request that cannot be answered; the message
    names the file or the ids at fault."""


class RequestError(ServeError):
    """A query that cannot be answered as asked; the message names what to change and no
    server path (the HTTP service shows it to clients)."""


class UnknownIdError(RequestError):
    """Ids that the run does not know; ``kind`` is ``user`` or ``item``, ``ids`` lists them."""

    def __init__(self, kind: str, ids: list[str]) -> None:
        self.kind = kind
        self.ids = ids
        super().__init__(f"unknown {kind} id{'s' if len(ids) > 1 else ''}: {_shown(ids)}")


class ItemExistsError(RequestError):
    """New item ids that are already served (trained, or added before); ``ids`` lists them."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        super().__init__(
            f"item id{'s' if len(ids) > 1 else ''} already in the catalogue: {_shown(ids)}"
        )


def _shown(ids: Sequence[str]) -> str:
    """The first ``_SHOWN_IDS`` ids, quoted, and how many more."""
    more = f" and {len(ids) - _SHOWN_IDS} more" if len(ids) > _SHOWN_IDS else ""
    return ", ".join(repr(i) for i in ids[:_SHOWN_IDS]) + more


def _no_content_path(model_name: str) -> str:
    return (
        f"model {model_name!r} has no content path: it cannot place an item from its features "
        "alone (cold-start items need a content model such as crane, freedom or vbpr)"
    )


class _ReadWriteLock:
    """Many readers at once (queries) or one writer (``add_items``); a waiting writer goes
    first, so a steady stream of queries cannot starve it. Not reentrant."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


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
            raise RequestError(f"{kind} ids must be strings or integers, got {type(x).__name__}")
        return str(x)

    if isinstance(ids, str | int | np.integer | np.str_) and not isinstance(ids, bool):
        return True, [one(ids)]
    if isinstance(ids, Mapping) or not isinstance(ids, Iterable):
        raise RequestError(f"expected a {kind} id or a list of them, got {type(ids).__name__}")
    return False, [one(x) for x in ids]


def _per_user_items(
    user_items: Iterable[RawId] | Sequence[Iterable[RawId]] | None, single: bool, n_users: int
) -> list[list[str]] | None:
    """``user_items`` as one list of item ids per user (None: none given)."""
    if user_items is None:
        return None
    if single:
        return [_as_ids(user_items, "item")[1]]
    if isinstance(user_items, str | Mapping) or not isinstance(user_items, Iterable):
        raise RequestError("user_items: one list of item ids per user id")
    rows = list(user_items)
    if len(rows) != n_users or any(
        isinstance(r, str | int | np.integer | np.str_ | Mapping) for r in rows
    ):
        raise RequestError(
            f"user_items: one list of item ids per user id ({n_users} user ids, "
            f"{len(rows)} entries)"
        )
    return [_as_ids(r, "item")[1] for r in rows]


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise RequestError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


#: ``cold_min_z`` by default: the bar a cold item clears to take a reserved slot (``ColdOptions``).
DEFAULT_COLD_MIN_Z = 1.0


@dataclass(frozen=True)
class ColdOptions:
    """How a query treats cold-start items (``add_items``) in an all-items ranking.

    By default they compete on the model's raw scores, with which the graph models almost
    never put one into a top-20 (a new item has no collaborative part). ``slots``: up to this
    many of the k places are reserved for the best-scoring cold items not in the list on their
    own score; the lowest trained items give way, and the list stays ordered by score (so the
    reserved items come last). ``min_z``: a cold item takes a reserved slot only if its score
    is at least the query's mean score over the trained items plus ``min_z`` standard
    deviations (computed from the trained items' mean vector and covariance); None: no bar.
    Measured in ``docs/serving.md`` (``benchmarks/cold_start.py``): a slot with the bar
    (``slots=1, min_z=1``) surfaces cold items without lowering the recall of all held-out
    interactions, warm and cold; without the bar every list gets its cold item at a cost to
    the warm recall; calibrating the cold scores instead did worse."""

    slots: int = 0
    min_z: float | None = DEFAULT_COLD_MIN_Z

    @classmethod
    def of(cls, slots: object, min_z: object) -> ColdOptions:
        """Checked options (``RequestError`` naming the bad one)."""
        if isinstance(slots, bool) or not isinstance(slots, int | np.integer) or slots < 0:
            raise RequestError(f"cold_slots must be an integer >= 0, got {slots!r}")
        if min_z is not None and (
            isinstance(min_z, bool)
            or not isinstance(min_z, int | float | np.number)
            or not np.isfinite(min_z)
        ):
            raise RequestError(f"cold_min_z must be a finite number or None, got {min_z!r}")
        return cls(int(slots), None if min_z is None else float(min_z))


@dataclass(frozen=True)
class _WarmScores:
    """The trained items' mean vector and covariance, from which a query's mean and spread
    of scores over them follow without scoring them: ``q . mean`` and ``sqrt(q^T cov q)``."""

    mean: np.ndarray  # [d] float64
    cov: np.ndarray  # [d, d] float64

    @classmethod
    def of(cls, item_emb: np.ndarray, chunk: int = 65536) -> _WarmScores:
        d = item_emb.shape[1]
        total, outer = np.zeros(d), np.zeros((d, d))
        for start in range(0, len(item_emb), chunk):
            part = item_emb[start : start + chunk].astype(np.float64)  # [n, d]
            total += part.sum(axis=0)
            outer += part.T @ part
        mean = total / len(item_emb)
        return cls(mean, outer / len(item_emb) - np.outer(mean, mean))

    def bar(self, queries: np.ndarray, z: float) -> np.ndarray:
        """``[B]``: each query's mean score over the trained items plus z standard deviations."""
        q = queries.astype(np.float64)
        spread = np.sqrt(np.maximum(np.einsum("bi,ij,bj->b", q, self.cov, q), 0.0))
        return q @ self.mean + z * spread


def _merge(scores: np.ndarray, idx: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``width`` best entries by (score descending, index ascending); padding
    (index -1) last and padded out to ``width``."""
    b, n = scores.shape
    key = np.where(idx >= 0, scores, -np.inf)
    tie = np.where(idx >= 0, idx, np.iinfo(np.int64).max)
    order = np.lexsort((tie, -key), axis=1)[:, :width]  # [B, min(n, width)]
    out_s = np.full((b, width), -np.inf, np.float32)
    out_i = np.full((b, width), -1, np.int64)
    out_s[:, : order.shape[1]] = np.take_along_axis(key, order, axis=1)
    out_i[:, : order.shape[1]] = np.take_along_axis(idx, order, axis=1)
    return out_s, out_i


def _reserve(
    scores: np.ndarray,
    idx: np.ndarray,
    cold_scores: np.ndarray,
    cold_idx: np.ndarray,
    slots: int,
    bar: np.ndarray | None,
    n_warm: int,
) -> None:
    """In place: where a row holds fewer than ``slots`` cold items (index >= ``n_warm``), the
    next best cold items of ``cold_idx`` (those scoring at least ``bar``) take the place of
    padding, then of the lowest trained items; the row is ordered again."""
    for r in range(scores.shape[0]):
        listed = idx[r][idx[r] >= n_warm]
        need = slots - len(listed)
        if need <= 0:
            continue
        fresh = (cold_idx[r] >= 0) & ~np.isin(cold_idx[r], listed)
        if bar is not None:
            fresh &= cold_scores[r] >= bar[r]
        add_s, add_i = cold_scores[r][fresh][:need], cold_idx[r][fresh][:need]
        if not len(add_i):
            continue
        valid = idx[r] >= 0
        warm_pos = np.flatnonzero(valid & (idx[r] < n_warm))
        drop = max(0, len(add_i) - int((~valid).sum()))  # padding goes first
        keep = valid.copy()
        if drop:
            keep[warm_pos[-drop:]] = False
        row_s = np.concatenate([scores[r][keep], add_s])
        row_i = np.concatenate([idx[r][keep], add_i])
        order = np.lexsort((row_i, -row_s))
        scores[r, :] = -np.inf
        idx[r, :] = -1
        scores[r, : len(order)] = row_s[order]
        idx[r, : len(order)] = row_i[order]


class Recommender:
    """A trained run ready to answer: ``recommend``, ``similar_items``,
    ``recommend_for_items`` (new users) and ``add_items`` (cold-start items).

    Build it with ``Recommender.load(run_dir)``. Methods are safe to call from several threads:
    queries run concurrently (faiss searches release the GIL; the HTTP service runs them in its
    threadpool), ``add_items`` waits for the running queries and holds new ones back while it
    appends.
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
        seen_splits: Sequence[str] = ("train",),
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
        self._seen_splits = list(seen_splits) if seen is not None else []
        self._results = results
        self._synthetic = synthetic
        self._index_kind = index
        self._index_options = dict(index_options or {})
        self._dataset = dataset
        self._model: Model | None = None
        self._lock = _ReadWriteLock()
        self._cosine_build = threading.Lock()  # similar_items' index, built once on first use
        # add_items one at a time (the model, its cache and the new ids); queries are held back
        # by the write lock only while the computed vectors are appended
        self._adding = threading.RLock()
        self._user_index = {u: i for i, u in enumerate(user_ids.tolist())}
        self._item_index = {t: i for i, t in enumerate(item_ids.tolist())}
        self.index = VectorIndex(item_emb, index, **self._index_options)  # the trained items
        # Cold-start items (add_items) are searched exactly in an index of their own, so that a
        # query can rank them on a calibrated scale or reserve slots for them (_search).
        self._cold_index: VectorIndex | None = None
        self._warm_scores: _WarmScores | None = None  # for cold_min_z, computed on first use
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
        seen_splits: Sequence[str] | None = None,
        require_seen: bool = True,
    ) -> Recommender:
        """Load a finished run directory, checking every file it reads.

        ``index``: ``flat`` (exact, default), ``hnsw`` or ``ivf`` (approximate; options in
        ``index_options``, see ``VectorIndex``). ``dataset``: the training data, when it is not
        (or no longer) where ``config.yaml`` says; needed for cold-start items, for runs
        without ``seen.npz`` and for ``seen_splits``.

        What ``exclude_seen`` leaves out: by default what ``seen.npz`` records (a file that
        records the training split only is logged as such), or for a run without it every
        split (train, valid, test) of the training data; ``seen_splits`` (e.g. ``("train",
        "valid", "test")``) takes exactly those splits from the training data instead.
        ``require_seen``: a run with neither ``seen.npz`` nor usable training data raises
        (default); with False it loads with a warning, and queries asking for ``exclude_seen``
        raise ``RequestError``. Raises ``ServeError`` naming the file at fault."""
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
        seen, recorded = None, ["train"]
        if seen_path.exists():
            seen, recorded = _read_seen(seen_path, len(user_ids), len(item_ids))
        rec = cls(
            run_dir=run_dir, config=config, user_ids=user_ids, item_ids=item_ids,
            user_emb=user_emb, item_emb=item_emb, seen=seen, results=_read_results(run_dir),
            seen_splits=recorded, synthetic=synthetic, index=index,
            index_options=index_options, dataset=dataset,
        )  # fmt: skip
        rec._settle_seen(seen_splits, require_seen)
        return rec

    def _settle_seen(self, splits: Sequence[str] | None, require_seen: bool) -> None:
        """Decide, at load, what exclude_seen leaves out (see ``load``)."""
        if splits is not None:
            splits = list(dict.fromkeys(splits))
            if not splits or not set(splits) <= set(_ALL_SPLITS):
                raise ServeError(f"seen_splits must name splits of {list(_ALL_SPLITS)}: {splits}")
            self._seen_from_data(self._training_data(f"seen_splits={splits}"), splits)
        elif self._seen is None:
            data = self._seen_data(require_seen)
            if data is not None:
                self._seen_from_data(data, _ALL_SPLITS)
        elif not set(self._seen_splits) >= set(_ALL_SPLITS):
            missing = [x for x in _ALL_SPLITS if x not in self._seen_splits]
            log.warning(
                "%s holds the %s interactions only: exclude_seen will not leave out items a "
                "user has in the %s split. Load with seen_splits=%s (and the training data), "
                "or send user_items to exclude them",
                self.run_dir / SEEN_FILE, "/".join(self._seen_splits), "/".join(missing),
                _ALL_SPLITS,
            )  # fmt: skip

    def _seen_from_data(self, data: Dataset, splits: Sequence[str]) -> None:
        every = sum((data.split(name) for name in splits), sp.csr_matrix(data.train.shape))
        self._seen = sp.csr_matrix(every, dtype=bool)
        self._seen.sort_indices()
        self._seen_splits = list(splits)

    def _seen_data(self, require_seen: bool) -> Dataset | None:
        """The training data standing in for a missing ``seen.npz`` (None: serve without)."""
        try:
            return self._training_data(f"excluding seen items (no {SEEN_FILE})")
        except ServeError as e:
            if require_seen:
                raise ServeError(
                    f"{self.run_dir} has no {SEEN_FILE}, which exclude_seen needs, and its "
                    f"training data cannot stand in: {e}. Rerun the training (it writes "
                    f"{SEEN_FILE}), or load with require_seen=False to serve without "
                    "excluding seen items"
                ) from None
            log.warning(
                "%s has no %s and no usable training data (%s): serving without exclude_seen; "
                "queries must ask for exclude_seen=false",
                self.run_dir, SEEN_FILE, e,
            )  # fmt: skip
            return None

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
            # the widths add_items needs, once the training data is loaded (never loaded here)
            "modalities": None
            if self._dataset is None
            else {m: int(f.shape[1]) for m, f in self._dataset.features.items()},
            "version": cranerec.__version__,
            "trained_with_version": self._results.get("cranerec_version"),
            "seen_splits": list(self._seen_splits),
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
        user_items: Iterable[RawId] | Sequence[Iterable[RawId]] | None = None,
        *,
        cold_slots: int = 0,
        cold_min_z: float | None = DEFAULT_COLD_MIN_Z,
    ) -> RankedItems | list[RankedItems]:
        """Top-``k`` items for each user, best first.

        ``user_ids``: one raw id (returns one ``RankedItems``) or a list (returns a list, in the
        same order). ``exclude_seen``: leave out the items the run saw for each user (the
        splits ``info()["seen_splits"]`` names). ``user_items``: raw item ids to leave out as
        well (a user's history the run does not have, as implicit's ``user_items``): a list
        for one user id, a list of lists (one per user id) for a list. ``items``: restrict
        the candidates to these raw item ids. A list may be shorter than k when fewer items
        remain. Unknown ids raise ``UnknownIdError`` naming them.

        ``cold_slots``: up to this many places go to the best cold-start items (``add_items``)
        that score at least ``cold_min_z`` standard deviations above the user's mean score
        over the trained items (None: no bar); see ``ColdOptions``. The default, 0, ranks them
        by the model's raw scores with the others."""
        single, ids = _as_ids(user_ids, "user")
        k = _check_k(k)
        cold = ColdOptions.of(cold_slots, cold_min_z)
        held = _per_user_items(user_items, single, len(ids))
        if exclude_seen and self._seen is None:
            raise RequestError(
                "this service has no record of the users' seen items: ask with "
                "exclude_seen=false (user_items are still left out)"
            )
        with self._lock.read():
            users = self._lookup(ids, self._user_index, "user")
            candidates = None
            if items is not None:
                _, item_list = _as_ids(items, "item")
                candidates = self._lookup(item_list, self._item_index, "item")
            extra = [self._lookup(h, self._item_index, "item") for h in held] if held else None
            if not ids:
                return []
            exclude = None
            if exclude_seen or extra:
                exclude = []
                for j, u in enumerate(users):
                    parts = [self._seen_items(u)] if exclude_seen else []
                    parts += [extra[j]] if extra else []
                    exclude.append(parts[0] if len(parts) == 1 else np.union1d(*parts))
            scores, idx = self._search(self.user_emb[users], k, exclude, candidates, cold)
            out = [self._ranked(q, s, i) for q, s, i in zip(ids, scores, idx, strict=True)]
        return out[0] if single else out

    def similar_items(
        self, item_ids: RawId | Iterable[RawId], k: int = 20
    ) -> RankedItems | list[RankedItems]:
        """The ``k`` items nearest to each item by cosine similarity of the model's item
        vectors, the item itself excluded (one id -> one ``RankedItems``, a list -> a list)."""
        single, ids = _as_ids(item_ids, "item")
        k = _check_k(k)
        with self._lock.read():
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
        self,
        item_ids: Iterable[RawId],
        k: int = 20,
        exclude_seen: bool = True,
        *,
        cold_slots: int = 0,
        cold_min_z: float | None = DEFAULT_COLD_MIN_Z,
    ) -> RankedItems:
        """Top-``k`` items for a new user who holds ``item_ids``, without retraining: the user's
        vector is the model's ``user_from_items`` of those items' vectors (by default their
        normalised sum). ``exclude_seen`` leaves the given items out. The ``cold_*`` options
        as ``recommend``'s."""
        _, ids = _as_ids(item_ids, "item")
        k = _check_k(k)
        cold = ColdOptions.of(cold_slots, cold_min_z)
        if not ids:
            raise RequestError("recommend_for_items needs at least one item id")
        with self._lock.read():
            items = self._lookup(ids, self._item_index, "item")
            held = torch.from_numpy(self.item_emb[np.unique(items)])
            user = self.model_class.user_from_items(held, self.config.model)
            query = user.detach().float().cpu().numpy().reshape(1, -1)
            exclude = [np.unique(items)] if exclude_seen else None
            scores, idx = self._search(query, k, exclude, None, cold)
            return self._ranked(None, scores[0], idx[0])

    # ---------------------------------------------------------------- cold-start items

    def add_items(self, features: Mapping[str, np.ndarray], item_ids: Sequence[RawId]) -> None:
        """Add items known only by their modality features (``{modality: [n_new, width]}``,
        every modality of the training data), recommendable at once. Their vectors come from
        the model's content path (``items_from_features``); existing scores do not change.

        What the caller sent is checked first and refused with a ``RequestError`` (no server
        path in its message): a model without a content path, duplicate ids, missing or
        unknown modalities, wrong shapes, non-finite values; ids already served raise
        ``ItemExistsError``. Needs ``model.pt`` and the training data (``config.yaml``'s, or
        ``dataset=`` given to ``load``): without them, a ``ServeError`` naming the file.

        Concurrency: adds run one at a time (the ids are checked again once it is this call's
        turn, so two calls adding the same id cannot both succeed); the vectors are computed
        while queries go on (a new item depends on the trained items only), and queries are
        held back only while they are appended (the write lock)."""
        ids = self._check_new_ids(item_ids)
        with self._adding:  # one add at a time; queries go on meanwhile
            self._refuse_known(ids)  # again: an add that ran meanwhile may have taken them
            model, dataset = self._trained_model()
            feats = _check_features(features, dataset, len(ids))
            vectors = self._vectors_from_features(model, dataset, feats)
            with self._lock.write():
                self._append(ids, vectors)
        log.info("added %d cold-start items (%d served)", len(ids), self.n_items)

    def _append(self, ids: list[str], vectors: np.ndarray) -> None:
        """Serve ``vectors`` under ``ids`` (the caller holds the write lock)."""
        start = self.n_items
        self.item_emb = np.concatenate([self.item_emb, vectors])
        self.item_ids = np.concatenate([self.item_ids, np.asarray(ids, dtype=str)])
        self._item_index.update({t: start + j for j, t in enumerate(ids)})
        if self._cold_index is None:
            self._cold_index = VectorIndex(vectors, "flat")
        else:
            self._cold_index.add(vectors)
        if self._cosine is not None:
            unit = _unit_rows(vectors)
            self._cosine[0].add(unit)
            self._cosine = (self._cosine[0], np.concatenate([self._cosine[1], unit]))

    def add_items_from_dir(self, path: str | Path) -> list[str]:
        """Add the items of a feature folder as cold-start items; returns their ids.

        The folder has the layout ``cranerec features text|image --out DIR`` writes:
        ``item_ids.txt`` (one raw id a line, the row order) and ``<modality>_feat.npy`` for
        every modality the run was trained with (``[n, width]``; files of other modalities
        are ignored, and logged). Where both the folder and the training data have a
        provenance sidecar (``<modality>_feat.json``) for a modality, they must name the same
        encoder (model hash) and normalisation: features of another encoder would be placed
        by meaningless neighbours. Every refusal is a ``ServeError`` naming the file: a
        missing folder, id file or modality, a row count that differs from the ids, duplicate
        ids, ids already served, a wrong width, non-finite values. Nothing is added unless
        every check passes."""
        folder = Path(path)
        if not folder.is_dir():
            raise ServeError(f"new items: {folder} is not a directory")
        ids_file = folder / ITEM_IDS_FILE
        if not ids_file.is_file():
            raise ServeError(f"new items: {folder} has no {ITEM_IDS_FILE} (one item id a line)")
        try:
            ids = read_item_ids(ids_file)
        except (OSError, UnicodeDecodeError) as e:
            raise ServeError(f"{ids_file}: unreadable: {e}") from None
        if not ids:
            raise ServeError(f"{ids_file}: no item ids")
        dup = sorted(i for i, n in Counter(ids).items() if n > 1)
        if dup:
            raise ServeError(f"{ids_file}: duplicate ids: {_shown(dup)}")
        known = [i for i in ids if i in self._item_index]
        if known:
            raise ServeError(
                f"{ids_file}: {len(known)} id(s) already served (trained or added before): "
                f"{_shown(known)}"
            )
        self._check_new_ids(ids)  # the model has a content path
        with self._adding:
            model, dataset = self._trained_model()
        found = sorted(p.name[: -len(FEAT_SUFFIX)] for p in folder.glob(f"*{FEAT_SUFFIX}"))
        missing = [m for m in dataset.modalities if m not in found]
        if missing:
            raise ServeError(
                f"new items: {folder} lacks {', '.join(m + FEAT_SUFFIX for m in missing)}: the "
                f"run uses the modalities {dataset.modalities} (found: {found or 'none'})"
            )
        ignored = [m for m in found if m not in dataset.modalities]
        if ignored:
            log.info("new items: %s: ignoring %s (not a modality of the run)", folder, ignored)
        features = {}
        for m in dataset.modalities:
            file = folder / f"{m}{FEAT_SUFFIX}"
            x = _read_feature_file(file, m, len(ids), dataset.features[m].shape[1], ids_file)
            self._check_provenance(file, m)
            features[m] = x
        try:
            self.add_items(features, ids)
        except RequestError as e:  # e.g. ids added meanwhile, vectors that would overflow
            raise ServeError(f"new items in {folder}: {e}") from None
        return ids

    def check_cold_start(self) -> None:
        """Raise ``ServeError`` (naming the file) unless ``add_items`` can work: a model with a
        content path, ``model.pt`` of this run and its training data. Builds the model once
        (it is kept), so that the first ``add_items`` does not pay for it."""
        if not self.model_class.has_content_path():
            raise ServeError(_no_content_path(self.config.model_name))
        with self._adding:
            self._trained_model()

    def _check_new_ids(self, item_ids: Sequence[RawId]) -> list[str]:
        """The new ids as strings, after the checks that need no model: a content path, at
        least one id, no duplicates, none served already (``RequestError`` otherwise)."""
        _, ids = _as_ids(item_ids, "item")
        if not self.model_class.has_content_path():
            raise RequestError(_no_content_path(self.config.model_name))
        if not ids:
            raise RequestError("add_items needs at least one item id")
        dup = sorted(i for i, n in Counter(ids).items() if n > 1)
        if dup:
            raise RequestError(f"duplicate new item ids: {_shown(dup)}")
        with self._lock.read():
            self._refuse_known(ids)
        return ids

    def _refuse_known(self, ids: list[str]) -> None:
        known = [i for i in ids if i in self._item_index]
        if known:
            raise ItemExistsError(known)

    def _vectors_from_features(
        self, model: Model, dataset: Dataset, feats: dict[str, torch.Tensor]
    ) -> np.ndarray:
        """The new items' vectors ``[n_new, dim]``, ``_ADD_CHUNK`` items at a time (new items
        never see each other, so chunks give the same vectors with bounded memory)."""
        n_new = next(iter(feats.values())).shape[0]
        parts = []
        for start in range(0, n_new, _ADD_CHUNK):
            chunk = {m: x[start : start + _ADD_CHUNK] for m, x in feats.items()}
            try:
                with torch.no_grad():
                    vectors = model.items_from_features(chunk, dataset)
            except NotImplementedError as e:  # e.g. CRANE trained without its item graph
                raise RequestError(str(e)) from None
            parts.append(vectors.detach().float().cpu().numpy())
        vectors = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        if vectors.shape != (n_new, self.item_emb.shape[1]):
            raise ServeError(
                f"model {self.config.model_name!r} returned cold-start vectors of shape "
                f"{vectors.shape} (expected {(n_new, self.item_emb.shape[1])})"
            )
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():  # e.g. all-zero features, which have no cosine neighbours
            raise RequestError(
                f"{int(bad.sum())} new item(s) get no usable vector from their features (rows "
                f"{np.flatnonzero(bad)[:_SHOWN_IDS].tolist()}); are their features all zero?"
            )
        user_norm = float(np.linalg.norm(self.user_emb, axis=1).max())
        big = np.linalg.norm(vectors.astype(np.float64), axis=1) * user_norm >= _SCORE_LIMIT
        if big.any():  # as load checks the trained vectors: no score may overflow float32
            raise RequestError(
                f"{int(big.sum())} new item(s) get vectors so large that their scores overflow "
                f"(rows {np.flatnonzero(big)[:_SHOWN_IDS].tolist()}): are their features on the "
                "training features' scale?"
            )
        return vectors

    def _check_provenance(self, file: Path, modality: str) -> None:
        """The new features' encoder and normalisation, where both sidecars say, must be the
        training features' (see ``add_items_from_dir``)."""
        data = self.config.data
        folder = Path(data.features_dir or data.path)
        if not folder.exists():  # e.g. the built-in synthetic data: no sidecar to compare
            return
        folder = folder if folder.is_dir() else folder.parent
        new = _read_sidecar(file.with_suffix(".json"))
        old = _read_sidecar(folder / f"{modality}_feat.json")
        if new is None or old is None:
            return
        for what, key in (("encoder (model sha256)", "sha256"), ("normalisation", None)):
            a, b = _sidecar_field(new, key), _sidecar_field(old, key)
            if a is not None and b is not None and a != b:
                raise ServeError(
                    f"{file}: modality {modality!r} was encoded with another {what} ({a!r}) "
                    f"than the training features ({b!r}, {folder}): rebuild it the same way"
                )

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Sequence[np.ndarray] | None,
        candidates: np.ndarray | None,
        cold: ColdOptions,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, idx)`` ``[B, min(k, n_items)]`` over the trained and the cold-start items
        (padded with ``-inf`` / ``-1``), best first by (score, then index).

        The two are searched apart (the cold items exactly, in an index of their own) and
        merged: the top-k of the union, as one index over every item gives it. With
        ``cold.slots`` the lowest trained items then give way to the best cold ones."""
        n_warm, cold_index = self.n_trained_items, self._cold_index
        if cold_index is None:
            return self.index.search(queries, min(k, n_warm), exclude, candidates)
        b = queries.shape[0]
        ex_w = ex_c = cand_w = cand_c = None
        if exclude is not None:
            ex_w = [e[e < n_warm] for e in exclude]
            ex_c = [e[e >= n_warm] - n_warm for e in exclude]
        if candidates is not None:
            cand_w = candidates[candidates < n_warm]
            cand_c = candidates[candidates >= n_warm] - n_warm
        empty = (np.full((b, 0), -np.inf, np.float32), np.full((b, 0), -1, np.int64))
        ws, wi = empty
        if cand_w is None or len(cand_w):
            ws, wi = self.index.search(queries, min(k, n_warm), ex_w, cand_w)
        cs, ci = empty
        if cand_c is None or len(cand_c):
            cs, ci = cold_index.search(queries, min(k, cold_index.n_items), ex_c, cand_c)
            ci = np.where(ci >= 0, ci + n_warm, -1)
        width = min(k, self.n_items)
        scores, idx = _merge(np.hstack([ws, cs]), np.hstack([wi, ci]), width)
        if cold.slots:
            bar = None
            if cold.min_z is not None:
                if self._warm_scores is None:  # a race computes it twice, to the same value
                    self._warm_scores = _WarmScores.of(self.item_emb[:n_warm])
                bar = self._warm_scores.bar(queries, cold.min_z)
            _reserve(scores, idx, cs, ci, min(cold.slots, width), bar, n_warm)
        return scores, idx

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
        seen = self._seen
        assert seen is not None  # the caller raised RequestError otherwise
        return seen.indices[seen.indptr[user] : seen.indptr[user + 1]]

    def _cosine_index(self) -> tuple[VectorIndex, np.ndarray]:
        # Called under the read lock: add_items (the writer) cannot run meanwhile, and the
        # build lock keeps two first similar_items calls from building it twice.
        with self._cosine_build:
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
        """The trained model rebuilt from ``model.pt`` on its training data (cached; the caller
        holds ``_adding``)."""
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
        if not splits or "train" not in splits or not set(splits) <= set(_ALL_SPLITS):
            raise ServeError(
                f"{path}: splits must name the splits the file holds, train among them, from "
                f"{list(_ALL_SPLITS)}; got {named.tolist()!r}"
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


def _check_features(
    features: Mapping[str, np.ndarray], dataset: Dataset, n_new: int
) -> dict[str, torch.Tensor]:
    """The new items' features as float32 tensors; ``RequestError`` naming what is wrong."""
    if not isinstance(features, Mapping):
        raise RequestError("features must be a mapping {modality: [n_new, width] array}")
    expected = dataset.modalities
    missing = [m for m in expected if m not in features]
    extra = [str(m)[:64] for m in features if m not in expected]
    if missing or extra:
        raise RequestError(
            f"features must have exactly the modalities {expected}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {extra[:_SHOWN_IDS]}" if extra else "")
        )
    out = {}
    for m in expected:
        width = dataset.features[m].shape[1]
        try:
            with np.errstate(over="ignore"):  # beyond float32: inf, refused below
                x = np.asarray(features[m], dtype=np.float32)
        except (TypeError, ValueError, OverflowError):
            raise RequestError(
                f"modality {m!r}: not a numeric [{n_new}, {width}] array (one row of {width} "
                "numbers per new item)"
            ) from None
        if x.shape != (n_new, width):
            raise RequestError(
                f"modality {m!r}: shape {x.shape}; expected ({n_new}, {width}): one row of "
                f"{width} numbers per new item"
            )
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise RequestError(
                f"modality {m!r}: non-finite values (NaN, inf, or beyond float32) in row(s) "
                f"{np.flatnonzero(bad)[:_SHOWN_IDS].tolist()}"
            )
        out[m] = torch.from_numpy(np.ascontiguousarray(x))
    return out


def _read_feature_file(
    path: Path, modality: str, n_rows: int, width: int, ids_file: Path
) -> np.ndarray:
    """One ``<modality>_feat.npy`` of a new-items folder, checked (``ServeError`` naming it)."""
    if not path.is_file():
        raise ServeError(f"new items: missing {path} (modality {modality!r})")
    try:
        x = read_feature_file(path, modality)
    except DataError as e:
        raise ServeError(str(e)) from None
    if x.shape[0] != n_rows:
        raise ServeError(
            f"{path}: {x.shape[0]} rows, but {ids_file} lists {n_rows} ids (one row per id, in "
            "its order)"
        )
    if x.shape[1] != width:
        raise ServeError(
            f"{path}: width {x.shape[1]}, but the run's {modality!r} features have width "
            f"{width} (encoded with another model?)"
        )
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ServeError(
            f"{path}: NaN/inf values in {int(bad.sum())} row(s) (first: row "
            f"{int(np.flatnonzero(bad)[0])})"
        )
    return x


def _sidecar_field(sidecar: dict[str, Any], model_key: str | None) -> Any:
    """``model.<model_key>`` of a sidecar, or its ``normalisation`` (None: not stated)."""
    if model_key is None:
        return sidecar.get("normalisation")
    model = sidecar.get("model")
    return model.get(model_key) if isinstance(model, dict) else None


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    """A feature file's provenance sidecar, or None when there is none (or it is unreadable:
    the check it serves is best-effort)."""
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return sidecar if isinstance(sidecar, dict) else None


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): inner products become cosines."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)
