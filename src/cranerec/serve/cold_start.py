"""Cold-start items, known only by their features: their vectors from the model's content path
(``vectors_from_features``), a folder of them read and checked (``read_new_ids``,
``read_new_features``), and their place in a ranking beside the trained items (``ColdOptions``,
``ColdItems``). The ``Recommender`` holds the model, the items and the locks: its
``add_items`` and ``add_items_from_dir`` call these, and its queries search its ``ColdItems``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cranerec.data import DataConfig
from cranerec.data.dataset import Dataset
from cranerec.data.errors import DataError
from cranerec.data.loaders import FEAT_SUFFIX, read_feature_file
from cranerec.features.provenance import ITEM_IDS_FILE, read_item_ids
from cranerec.models.base import Model
from cranerec.serve.errors import SHOWN_IDS, RequestError, ServeError, shown
from cranerec.serve.index import VectorIndex
from cranerec.serve.loading import SCORE_LIMIT

log = logging.getLogger(__name__)

#: New items whose vectors are computed in one call of the model's content path.
_ADD_CHUNK = 1024


def no_content_path(model_name: str) -> str:
    """Why a model without a content path cannot add items."""
    return (
        f"model {model_name!r} has no content path: it cannot place an item from its features "
        "alone (cold-start items need a content model such as crane, freedom or vbpr)"
    )


def duplicates(ids: Iterable[str]) -> list[str]:
    """The ids that occur more than once, sorted."""
    return sorted(i for i, n in Counter(ids).items() if n > 1)


# ---------------------------------------------------------------- placing new items


def check_features(
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
            + (f"; unknown {extra[:SHOWN_IDS]}" if extra else "")
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
                f"{np.flatnonzero(bad)[:SHOWN_IDS].tolist()}"
            )
        out[m] = torch.from_numpy(np.ascontiguousarray(x))
    return out


def vectors_from_features(
    model: Model,
    dataset: Dataset,
    feats: dict[str, torch.Tensor],
    model_name: str,
    user_emb: np.ndarray,
) -> np.ndarray:
    """The new items' vectors ``[n_new, dim]``, ``_ADD_CHUNK`` items at a time (new items
    never see each other, so chunks give the same vectors with bounded memory); refused when
    one is not finite, or so large that a score with a user of ``user_emb`` would overflow."""
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
    if vectors.shape != (n_new, user_emb.shape[1]):
        raise ServeError(
            f"model {model_name!r} returned cold-start vectors of shape "
            f"{vectors.shape} (expected {(n_new, user_emb.shape[1])})"
        )
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():  # e.g. all-zero features, which have no cosine neighbours
        raise RequestError(
            f"{int(bad.sum())} new item(s) get no usable vector from their features (rows "
            f"{np.flatnonzero(bad)[:SHOWN_IDS].tolist()}); are their features all zero?"
        )
    user_norm = float(np.linalg.norm(user_emb, axis=1).max())
    big = np.linalg.norm(vectors.astype(np.float64), axis=1) * user_norm >= SCORE_LIMIT
    if big.any():  # as load checks the trained vectors: no score may overflow float32
        raise RequestError(
            f"{int(big.sum())} new item(s) get vectors so large that their scores overflow "
            f"(rows {np.flatnonzero(big)[:SHOWN_IDS].tolist()}): are their features on the "
            "training features' scale?"
        )
    return vectors


# ---------------------------------------------------------------- a folder of new items


def read_new_ids(folder: Path, served: Container[str]) -> list[str]:
    """The ids of a new-items folder (its ``item_ids.txt``, in row order), none of them
    duplicated or ``served`` already (``ServeError`` naming the folder or file)."""
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
    dup = duplicates(ids)
    if dup:
        raise ServeError(f"{ids_file}: duplicate ids: {shown(dup)}")
    known = [i for i in ids if i in served]
    if known:
        raise ServeError(
            f"{ids_file}: {len(known)} id(s) already served (trained or added before): "
            f"{shown(known)}"
        )
    return ids


def read_new_features(
    folder: Path, n_rows: int, dataset: Dataset, data: DataConfig
) -> dict[str, np.ndarray]:
    """The ``<modality>_feat.npy`` files of a new-items folder for every modality of the
    training data ``dataset`` (others are ignored, and logged), checked against it and, where
    both have a provenance sidecar, against the encoder of the training features (``data``);
    ``ServeError`` naming the file."""
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
        width, ids_file = dataset.features[m].shape[1], folder / ITEM_IDS_FILE
        features[m] = _read_feature_file(file, m, n_rows, width, ids_file)
        _check_provenance(file, m, data)
    return features


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


def _check_provenance(file: Path, modality: str, data: DataConfig) -> None:
    """The new features' encoder and normalisation, where both sidecars say, must be the
    training features' (see ``Recommender.add_items_from_dir``)."""
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


# ---------------------------------------------------------------- ranking them

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
class WarmScores:
    """The trained items' mean vector and covariance, from which a query's mean and spread
    of scores over them follow without scoring them: ``q . mean`` and ``sqrt(q^T cov q)``."""

    mean: np.ndarray  # [d] float64
    cov: np.ndarray  # [d, d] float64

    @classmethod
    def of(cls, item_emb: np.ndarray, chunk: int = 65536) -> WarmScores:
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


class ColdItems:
    """The cold-start items, served after the ``warm`` (trained) items: the exact index of their
    vectors (None: none yet), searched apart from the trained items' and merged with them, and
    the trained items' score statistics behind ``cold_min_z`` (computed on first use)."""

    def __init__(self, warm: VectorIndex) -> None:
        self.warm = warm
        self.index: VectorIndex | None = None
        self._warm_scores: WarmScores | None = None

    def add(self, vectors: np.ndarray) -> None:
        """Index the vectors of new cold-start items (the caller holds the write lock)."""
        if self.index is None:
            self.index = VectorIndex(vectors, "flat")
        else:
            self.index.add(vectors)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Sequence[np.ndarray] | None,
        candidates: np.ndarray | None,
        cold: ColdOptions,
        item_emb: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, idx)`` ``[B, min(k, n_items)]`` over the trained and the cold-start items
        (padded with ``-inf`` / ``-1``), best first by (score, then index). ``item_emb``: every
        item's vectors, the trained ones first (for ``cold_min_z``).

        The two are searched apart (the cold items exactly, in an index of their own) and
        merged: the top-k of the union, as one index over every item gives it. With
        ``cold.slots`` the lowest trained items then give way to the best cold ones."""
        n_warm, cold_index = self.warm.n_items, self.index
        if cold_index is None:
            return self.warm.search(queries, min(k, n_warm), exclude, candidates)
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
            ws, wi = self.warm.search(queries, min(k, n_warm), ex_w, cand_w)
        cs, ci = empty
        if cand_c is None or len(cand_c):
            cs, ci = cold_index.search(queries, min(k, cold_index.n_items), ex_c, cand_c)
            ci = np.where(ci >= 0, ci + n_warm, -1)
        width = min(k, n_warm + cold_index.n_items)
        scores, idx = _merge(np.hstack([ws, cs]), np.hstack([wi, ci]), width)
        if cold.slots:
            bar = None
            if cold.min_z is not None:
                if self._warm_scores is None:  # a race computes it twice, to the same value
                    self._warm_scores = WarmScores.of(item_emb[:n_warm])
                bar = self._warm_scores.bar(queries, cold.min_z)
            _reserve(scores, idx, cs, ci, min(cold.slots, width), bar, n_warm)
        return scores, idx


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
