"""Recommendations from a trained run directory, without retraining and without unpickling.

``Recommender.load(run_dir)`` reads the run's files and checks each of them then (``loading``):
no query reads a file or fails on one. Cold-start items (``add_items``) are placed by the
model's content path and ranked beside the trained items (``cold_start``).

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

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from cranerec._version import __version__
from cranerec.data.dataset import Dataset
from cranerec.models import get_model_class
from cranerec.models.base import Model
from cranerec.serve.cold_start import (
    DEFAULT_COLD_MIN_Z,
    ColdItems,
    ColdOptions,
    check_features,
    duplicates,
    no_content_path,
    read_new_features,
    read_new_ids,
    vectors_from_features,
)
from cranerec.serve.errors import ItemExistsError, RequestError, ServeError, UnknownIdError, shown
from cranerec.serve.index import VectorIndex
from cranerec.serve.loading import (
    check_training_data,
    load_trained_model,
    load_training_data,
    read_run,
    settle_seen,
)
from cranerec.serve.locks import ReadWriteLock
from cranerec.serve.query import RankedItems, RawId, as_ids, check_k, per_user_items
from cranerec.train.config import RunConfig

log = logging.getLogger(__name__)

#: The lock's name when it was defined here (tests import it from this module).
_ReadWriteLock = ReadWriteLock


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
        self._lock = ReadWriteLock()
        self._cosine_build = threading.Lock()  # similar_items' index, built once on first use
        # add_items one at a time (the model, its cache and the new ids); queries are held back
        # by the write lock only while the computed vectors are appended
        self._adding = threading.RLock()
        self._user_index = {u: i for i, u in enumerate(user_ids.tolist())}
        self._item_index = {t: i for i, t in enumerate(item_ids.tolist())}
        self.index = VectorIndex(item_emb, index, **self._index_options)  # the trained items
        # Queries search every item through _cold_items: the trained items' index, and the
        # cold-start items (add_items) exactly in an index of their own, so that a query can
        # rank them on a calibrated scale or reserve slots for them.
        self._cold_items = ColdItems(self.index)
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
        files = read_run(run_dir)
        rec = cls(
            run_dir=run_dir, config=files.config, user_ids=files.user_ids,
            item_ids=files.item_ids, user_emb=files.user_emb, item_emb=files.item_emb,
            seen=files.seen, results=files.results, seen_splits=files.seen_splits,
            synthetic=files.synthetic, index=index, index_options=index_options, dataset=dataset,
        )  # fmt: skip
        rec._seen, rec._seen_splits = settle_seen(
            run_dir, rec._seen, rec._seen_splits, seen_splits, require_seen, rec._training_data
        )
        return rec

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
            "version": __version__,
            "trained_with_version": self._results.get("cranerec_version"),
            "seen_splits": list(self._seen_splits),
        }

    def check_ids(self, ids: RawId | Iterable[RawId], kind: str = "user") -> None:
        """Raise ``UnknownIdError`` naming every id of ``ids`` the run does not know."""
        _, ids = as_ids(ids, kind)
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
        single, ids = as_ids(user_ids, "user")
        k = check_k(k)
        cold = ColdOptions.of(cold_slots, cold_min_z)
        held = per_user_items(user_items, single, len(ids))
        if exclude_seen and self._seen is None:
            raise RequestError(
                "this service has no record of the users' seen items: ask with "
                "exclude_seen=false (user_items are still left out)"
            )
        with self._lock.read():
            users = self._lookup(ids, self._user_index, "user")
            candidates = None
            if items is not None:
                _, item_list = as_ids(items, "item")
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
            scores, idx = self._cold_items.search(
                self.user_emb[users], k, exclude, candidates, cold, self.item_emb
            )
            out = [self._ranked(q, s, i) for q, s, i in zip(ids, scores, idx, strict=True)]
        return out[0] if single else out

    def similar_items(
        self, item_ids: RawId | Iterable[RawId], k: int = 20
    ) -> RankedItems | list[RankedItems]:
        """The ``k`` items nearest to each item by cosine similarity of the model's item
        vectors, the item itself excluded (one id -> one ``RankedItems``, a list -> a list)."""
        single, ids = as_ids(item_ids, "item")
        k = check_k(k)
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
        _, ids = as_ids(item_ids, "item")
        k = check_k(k)
        cold = ColdOptions.of(cold_slots, cold_min_z)
        if not ids:
            raise RequestError("recommend_for_items needs at least one item id")
        with self._lock.read():
            items = self._lookup(ids, self._item_index, "item")
            held = torch.from_numpy(self.item_emb[np.unique(items)])
            user = self.model_class.user_from_items(held, self.config.model)
            query = user.detach().float().cpu().numpy().reshape(1, -1)
            exclude = [np.unique(items)] if exclude_seen else None
            scores, idx = self._cold_items.search(query, k, exclude, None, cold, self.item_emb)
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
            feats = check_features(features, dataset, len(ids))
            vectors = vectors_from_features(
                model, dataset, feats, self.config.model_name, self.user_emb
            )
            with self._lock.write():
                self._append(ids, vectors)
        log.info("added %d cold-start items (%d served)", len(ids), self.n_items)

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
        ids = read_new_ids(folder, served=self._item_index)
        self._check_new_ids(ids)  # the model has a content path
        with self._adding:
            _, dataset = self._trained_model()
        features = read_new_features(folder, len(ids), dataset, self.config.data)
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
            raise ServeError(no_content_path(self.config.model_name))
        with self._adding:
            self._trained_model()

    def _check_new_ids(self, item_ids: Sequence[RawId]) -> list[str]:
        """The new ids as strings, after the checks that need no model: a content path, at
        least one id, no duplicates, none served already (``RequestError`` otherwise)."""
        _, ids = as_ids(item_ids, "item")
        if not self.model_class.has_content_path():
            raise RequestError(no_content_path(self.config.model_name))
        if not ids:
            raise RequestError("add_items needs at least one item id")
        dup = duplicates(ids)
        if dup:
            raise RequestError(f"duplicate new item ids: {shown(dup)}")
        with self._lock.read():
            self._refuse_known(ids)
        return ids

    def _refuse_known(self, ids: list[str]) -> None:
        known = [i for i in ids if i in self._item_index]
        if known:
            raise ItemExistsError(known)

    def _append(self, ids: list[str], vectors: np.ndarray) -> None:
        """Serve ``vectors`` under ``ids`` (the caller holds the write lock)."""
        start = self.n_items
        self.item_emb = np.concatenate([self.item_emb, vectors])
        self.item_ids = np.concatenate([self.item_ids, np.asarray(ids, dtype=str)])
        self._item_index.update({t: start + j for j, t in enumerate(ids)})
        self._cold_items.add(vectors)
        if self._cosine is not None:
            unit = _unit_rows(vectors)
            self._cosine[0].add(unit)
            self._cosine = (self._cosine[0], np.concatenate([self._cosine[1], unit]))

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
        """The training data (``dataset=`` of ``load``, else loaded once on first need),
        checked against the run; ``purpose`` says what needs it in the error."""
        if self._dataset is None:
            self._dataset = load_training_data(self.run_dir, self.config, purpose)
        check_training_data(
            self._dataset, self.run_dir, self._results, self.n_users, self.n_trained_items
        )
        return self._dataset

    def _trained_model(self) -> tuple[Model, Dataset]:
        """The trained model rebuilt from ``model.pt`` on its training data (cached; the caller
        holds ``_adding``)."""
        dataset = self._training_data("adding cold-start items")
        if self._model is None:
            self._model = load_trained_model(
                self.run_dir, self.config, self.model_class, dataset,
                self.item_emb[: self.n_trained_items],
            )  # fmt: skip
        return self._model, dataset


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): inner products become cosines. The
    norms in float64: a float32 row above ~1.8e19 (a new item's, from features off the training
    scale) has a squared norm beyond float32, which made its row 0 and its cosines all 0."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))[:, None].astype(np.float32)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)
