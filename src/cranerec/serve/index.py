"""Top-k item search over exported vectors with faiss: exact inner product by default, HNSW or
IVF as approximate options for large catalogues.

Order: score descending, then item index ascending (as ``cranerec.utils.ranking.topk_items``,
the evaluator's order). The exact index (``flat``, faiss ``IndexFlatIP``) returns exactly that
top-k of faiss's inner products, ties across the cut included: it fetches more than k, orders
the fetched items by (score, index) and fetches again whenever an item not fetched could tie
with the k-th. Faiss's inner products can differ from torch's matmul in the last bits (another
summation order), so on float vectors a near-tie may order differently from the evaluator;
with exactly representable products (tested) the two agree item for item.

Excluded items (a user's training items) and candidate restrictions stay correct with every
index: the search over-fetches ``k + |excluded|`` items, drops the excluded ones, and doubles
the fetch for rows left with fewer than k; an approximate row that cannot be completed that
way (the index returns no more, e.g. a user who has seen most of the catalogue) is searched
exactly. A candidate restriction (``candidates``) is always searched exactly (faiss selector
on the flat index).

Queries go to faiss in chunks small enough for its per-query kernel (faiss switches to a BLAS
product for large batches, whose last bits differ), so a user's scores do not depend on which
other users share the batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from cranerec.utils.extras import require

faiss = require("faiss", "serve", "vector search (cranerec serve, recommend)")

log = logging.getLogger(__name__)

INDEX_KINDS = ("flat", "hnsw", "ivf")


def _chunk_rows(dim: int) -> int:
    """Queries per faiss call that stay on its per-query kernel (below its BLAS threshold)."""
    threshold = int(getattr(faiss.cvar, "distance_compute_blas_threshold", 20))
    return max(1, min(1024, threshold // max(dim, 1) - 1))


class VectorIndex:
    """Top-k inner-product search over item vectors ``[n_items, d]``.

    Args:
        vectors: the item vectors (float32 copies are kept by faiss).
        kind: ``flat`` (exact, default), ``hnsw`` (``IndexHNSWFlat``: ``hnsw_m`` links per node,
            ``ef_construction``, ``ef_search``) or ``ivf`` (``IndexIVFFlat``: ``nlist`` k-means
            cells, default ~sqrt(n) with at least 39 training points each; ``nprobe`` cells
            visited per query). Both approximate indexes store the full vectors, so the scores
            they return are exact inner products; only which items are found is approximate.
        seed: seed of IVF's k-means.

    ``search`` returns ``(scores [B, k] float32, idx [B, k] int64)``, rows padded with
    ``-inf`` / ``-1`` where fewer than k items are available.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        kind: str = "flat",
        *,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 8,
        seed: int = 0,
    ) -> None:
        if kind not in INDEX_KINDS:
            raise ValueError(f"index kind {kind!r} is not one of {list(INDEX_KINDS)}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] == 0:
            raise ValueError(f"need a non-empty [n, d] matrix of vectors, got {vectors.shape}")
        self.kind = kind
        self.dim = vectors.shape[1]
        self._chunk = _chunk_rows(self.dim)
        self._flat = faiss.IndexFlatIP(self.dim)
        self._flat.add(vectors)
        self._ann: faiss.Index | None = None
        if kind == "hnsw":
            self._ann = faiss.IndexHNSWFlat(self.dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._ann.hnsw.efConstruction = ef_construction
            self._ann.hnsw.efSearch = ef_search
            self._ann.add(vectors)
        elif kind == "ivf":
            n = vectors.shape[0]
            nlist = nlist or max(1, min(int(math.sqrt(n)), n // 39))
            quantizer = faiss.IndexFlatIP(self.dim)
            self._ann = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self._ann.cp.seed = seed
            self._ann.train(vectors)
            self._ann.nprobe = min(nprobe, nlist)
            self._ann.add(vectors)
            self._quantizer = quantizer  # faiss does not own it: keep it alive

    @property
    def n_items(self) -> int:
        return int(self._flat.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        """Append items (their indices follow the existing ones)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"need [n, {self.dim}] vectors, got {vectors.shape}")
        self._flat.add(vectors)
        if self._ann is not None:
            self._ann.add(vectors)

    # ---------------------------------------------------------------- search

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Sequence[np.ndarray] | None = None,
        candidates: np.ndarray | None = None,
        exact: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items of each query row by inner product, best first.

        ``exclude[b]``: item indices never returned for row b (e.g. the user's training items).
        ``candidates``: item indices the results are restricted to (searched exactly).
        ``exact``: use the exact index even when an approximate one exists.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"need [B, {self.dim}] queries, got {queries.shape}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        b = queries.shape[0]
        if exclude is None:
            exclude = [np.empty(0, np.int64)] * b
        if len(exclude) != b:
            raise ValueError(f"{len(exclude)} exclusion lists for {b} queries")
        scores = np.full((b, k), -np.inf, dtype=np.float32)
        idx = np.full((b, k), -1, dtype=np.int64)
        params = None
        n_available = self.n_items
        if candidates is not None:
            candidates = np.unique(np.asarray(candidates, dtype=np.int64))
            selector = faiss.IDSelectorBatch(candidates)
            params = faiss.SearchParameters(sel=selector)
            n_available = len(candidates)
        use_ann = self._ann is not None and not exact and candidates is None
        index = self._ann if use_ann else self._flat
        pending = self._run(index, queries, k, exclude, params, n_available, scores, idx)
        if pending:  # approximate rows the index could not complete: search them exactly
            log.debug("%d rows searched again exactly", len(pending))
            self._run(self._flat, queries, k, exclude, params, n_available, scores, idx, pending)
        return scores, idx

    def _faiss_search(
        self, index: faiss.Index, queries: np.ndarray, fetch: int, params: object | None
    ) -> tuple[np.ndarray, np.ndarray]:
        out_d, out_i = [], []
        for start in range(0, queries.shape[0], self._chunk):
            chunk = queries[start : start + self._chunk]
            d, i = (
                index.search(chunk, fetch)
                if params is None
                else index.search(chunk, fetch, params=params)
            )
            out_d.append(d)
            out_i.append(i)
        return np.concatenate(out_d), np.concatenate(out_i)

    def _run(
        self,
        index: faiss.Index,
        queries: np.ndarray,
        k: int,
        exclude: Sequence[np.ndarray],
        params: object | None,
        n_available: int,
        scores: np.ndarray,
        idx: np.ndarray,
        rows: list[int] | None = None,
    ) -> list[int]:
        """Fill ``scores`` / ``idx`` for ``rows`` (all when None); return the approximate rows
        that could not be completed."""
        rows = list(range(queries.shape[0])) if rows is None else rows
        n_total = self.n_items
        # Power-of-two fetch sizes: few distinct sizes, so few faiss calls per batch.
        fetch_of = {r: min(n_total, _pow2(k + len(exclude[r]))) for r in rows}
        given_up: list[int] = []
        while rows:
            # One faiss call per distinct fetch size (rows grow their fetch independently).
            by_fetch: dict[int, list[int]] = {}
            for r in rows:
                by_fetch.setdefault(fetch_of[r], []).append(r)
            next_rows = []
            for fetch, group in by_fetch.items():
                d_all, i_all = self._faiss_search(index, queries[group], fetch, params)
                for r, d, i in zip(group, d_all, i_all, strict=True):
                    state = self._take(r, d, i, k, exclude[r], fetch, n_available, scores, idx)
                    if state == "done":
                        continue
                    if state == "exhausted" or fetch >= n_total:
                        given_up.append(r)  # approximate only: exact rows end "done" at n_total
                        continue
                    fetch_of[r] = min(n_total, 2 * fetch)
                    next_rows.append(r)
            rows = next_rows
        return given_up

    @staticmethod
    def _take(
        r: int,
        d: np.ndarray,
        i: np.ndarray,
        k: int,
        excluded: np.ndarray,
        fetch: int,
        n_available: int,
        scores: np.ndarray,
        idx: np.ndarray,
    ) -> str:
        """Order one row's fetched items by (score desc, index asc), drop the excluded ones and
        store the first k. Returns ``done``; ``more`` (fetch more: too few left, or an item not
        fetched could tie with the k-th); or ``exhausted`` (an approximate index returned fewer
        items than asked and too few remain: it has nothing more to give)."""
        found = i >= 0
        d, i = d[found], i[found]
        order = np.lexsort((i, -d))
        d, i = d[order], i[order]
        keep = ~np.isin(i, excluded) if len(excluded) else np.ones(len(i), dtype=bool)
        kd, ki = d[keep][:k], i[keep][:k]
        scores[r, :] = -np.inf
        idx[r, :] = -1
        scores[r, : len(kd)] = kd
        idx[r, : len(ki)] = ki
        if len(i) >= n_available:  # every available item was fetched: the answer is exact
            return "done"
        if len(i) < fetch:  # only an approximate index returns fewer than asked
            return "done" if len(kd) >= k else "exhausted"
        if len(kd) < k:
            return "more"
        # An item not fetched scores <= the last fetched one: it may tie with the k-th only
        # when the k-th equals the last fetched.
        return "done" if kd[-1] > d[-1] else "more"


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def recall_at_k(index: VectorIndex, queries: np.ndarray, k: int) -> float:
    """Mean fraction of the exact top-``k`` that ``index`` returns (1.0 for ``flat``)."""
    _, approx = index.search(queries, k)
    _, exact = index.search(queries, k, exact=True)
    hits = [
        len(np.intersect1d(a[a >= 0], e[e >= 0])) / max(1, int((e >= 0).sum()))
        for a, e in zip(approx, exact, strict=True)
    ]
    return float(np.mean(hits))
