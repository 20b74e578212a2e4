"""k-nearest-neighbour item graphs from feature vectors (LATTICE, FREEDOM, CRANE)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from cranerec.graph.adjacency import normalize_adjacency
from cranerec.utils.ranking import topk_items


def knn_graph(
    features: torch.Tensor, k: int, *, exclude_self: bool = True, block_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` cosine neighbours of every row of ``features`` [N, D].

    Returns ``(indices [N, k], values [N, k])``: the neighbour indices and their cosine
    similarities, computed in row blocks so memory stays O(block_size x N). Differentiable in
    ``values`` (gradients flow into ``features`` through the kept similarities, recomputed for the
    k neighbours, so a backward keeps O(N k D), not the N x N similarities). Ties are broken by
    the lower index.
    """
    n = features.shape[0]
    if not 0 < k < n + (0 if exclude_self else 1):
        raise ValueError(f"k={k} must be in [1, {n - 1 if exclude_self else n}] for {n} rows")
    normed = F.normalize(features, dim=1)
    idx_blocks, val_blocks = [], []
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        with torch.no_grad():  # the [B, N] block is never kept for a backward
            sim = normed[start:stop] @ normed.T  # [B, N]
            if exclude_self:
                rows = torch.arange(stop - start, device=sim.device)
                sim[rows, rows + start] = float("-inf")
            _, top = topk_items(sim, k)  # ties by the lower index
        idx_blocks.append(top)
        # the kept similarities again, with gradient: O(B k D) saved instead of O(B N)
        val_blocks.append((normed[start:stop, None, :] * normed[top]).sum(-1))  # [B, k]
    return torch.cat(idx_blocks), torch.cat(val_blocks)


def knn_adjacency(
    features: torch.Tensor | np.ndarray,
    k: int,
    *,
    exclude_self: bool = True,
    block_size: int = 4096,
) -> sp.csr_matrix:
    """The top-``k`` cosine graph of ``features`` [N, D] as a binary [N, N] scipy matrix.

    Row i holds a one at each of its ``k`` neighbours (``knn_graph``'s indices, ties by the
    lower index). The graph is directed: j may be among i's neighbours without i among j's.
    With ``exclude_self=False`` an item competes for its own list (cosine 1, so it is in it
    unless k other rows point exactly the same way), as in LATTICE's and FREEDOM's graphs.
    """
    with torch.no_grad():
        idx, _ = knn_graph(
            torch.as_tensor(features), k, exclude_self=exclude_self, block_size=block_size
        )
    n = idx.shape[0]
    rows = np.repeat(np.arange(n), k)
    cols = idx.reshape(-1).cpu().numpy()
    return sp.csr_matrix((np.ones(n * k, dtype=np.float32), (rows, cols)), shape=(n, n))


def mixed_knn_adjacency(
    features: Sequence[torch.Tensor | np.ndarray],
    k: int,
    weights: Sequence[float],
    *,
    exclude_self: bool = False,
    normalization: Literal["sym", "row", "none"] = "sym",
    block_size: int = 4096,
) -> sp.csr_matrix:
    """A weighted sum of per-modality kNN graphs, each normalised first (FREEDOM's item graph):

        S = sum_m w_m N(A_m),  A_m = knn_adjacency(features[m], k, exclude_self=...)

    With ``sym`` N(A) = D^{-1/2} A D^{-1/2}, D the row sums of A: every row of a kNN graph has
    k ones, so this is A / k. Where two modalities share an edge their weights add.
    """
    if len(features) != len(weights) or not features:
        raise ValueError(f"{len(features)} feature matrices but {len(weights)} weights")
    mixed = None
    for x, w in zip(features, weights, strict=True):
        part = float(w) * normalize_adjacency(
            knn_adjacency(x, k, exclude_self=exclude_self, block_size=block_size), normalization
        )
        mixed = part if mixed is None else mixed + part
    return sp.csr_matrix(mixed, dtype=np.float32)


def knn_laplacian(
    features: Sequence[torch.Tensor | np.ndarray],
    k: int,
    weights: torch.Tensor | Sequence[float] | None = None,
    *,
    exclude_self: bool = False,
    block_size: int = 4096,
) -> torch.Tensor:
    """LATTICE's item graph: per-modality top-``k`` cosine graphs that keep their similarity
    values, mixed with ``weights``, then normalised once by the row sums of the mixture:

        A_m[i, j] = cos(x^m_i, x^m_j) if j is among row i's top-k (``knn_graph``), else 0
        S = sum_m w_m A_m                 (w_m = 1 when ``weights`` is None)
        L = D^{-1/2} S D^{-1/2},  D = diag(row sums of S)

    Unlike ``mixed_knn_adjacency`` (binary graphs, each normalised, then mixed) the values are
    the similarities and the mixture is normalised as a whole. With ``exclude_self=False`` an
    item competes for its own list (cosine 1), as in LATTICE. The graph is directed, yet both
    sides use the row sums (so L is not symmetric). A row whose sum is <= 0 becomes all zero.

    Returns L as a coalesced [N, N] sparse COO tensor (where modalities share an edge their
    terms add) whose values are differentiable in the features and in ``weights`` (a tensor).
    """
    if weights is None:
        weights = [1.0] * len(features)
    if len(features) != len(weights) or not len(features):
        raise ValueError(f"{len(features)} feature matrices but {len(weights)} weights")
    cols, vals = [], []
    for x, w in zip(features, weights, strict=True):
        idx, sim = knn_graph(
            torch.as_tensor(x), k, exclude_self=exclude_self, block_size=block_size
        )  # [N, k] each
        cols.append(idx)
        vals.append(w * sim)
    col = torch.cat(cols, dim=1)  # [N, K k]
    val = torch.cat(vals, dim=1)  # [N, K k]
    deg = val.sum(dim=1)  # [N], row sums of S
    positive = deg > 0
    d_inv_sqrt = torch.where(positive, deg.clamp(min=torch.finfo(deg.dtype).tiny).rsqrt(), 0.0)
    val = val * d_inv_sqrt[:, None] * d_inv_sqrt[col]  # [N, K k]
    n = col.shape[0]
    row = torch.arange(n, device=col.device).repeat_interleave(col.shape[1])  # [N K k]
    return torch.sparse_coo_tensor(
        torch.stack([row, col.reshape(-1)]), val.reshape(-1), (n, n), check_invariants=False
    ).coalesce()


def knn_join(
    new: torch.Tensor,
    trained: torch.Tensor,
    k: int,
    *,
    include_self: bool = True,
    block_size: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """New rows of a top-``k`` cosine graph over ``trained`` [n, D] (cold-start items).

    Each row of ``new`` [n_new, D] takes its top-``k`` cosine neighbours among the trained rows
    and, with ``include_self``, itself (index ``n``; it competes for its own list as every
    trained row does in ``knn_graph(..., exclude_self=False)``; ``include_self=False`` matches
    ``exclude_self=True``). New rows never see each other, and no trained row gains a neighbour.
    Ties go to the lower index, so the trained rows before the row itself.

    Returns ``(indices [n_new, k], cosines [n_new, k])``, index ``n`` meaning the row itself.
    """
    n = trained.shape[0]
    if not 0 < k <= n + int(include_self):
        raise ValueError(f"k={k} must be in [1, {n + int(include_self)}] for {n} trained rows")
    trained_n = F.normalize(trained, dim=1)
    idx_blocks, val_blocks = [], []
    for start in range(0, new.shape[0], block_size):
        rows = F.normalize(new[start : start + block_size], dim=1)  # [B, D]
        sim = rows @ trained_n.T  # [B, n]
        if include_self:
            sim = torch.cat([sim, (rows * rows).sum(dim=1, keepdim=True)], dim=1)  # [B, n + 1]
        _, top = topk_items(sim.detach(), k)  # ties by the lower index
        idx_blocks.append(top)
        val_blocks.append(sim.gather(1, top))
    return torch.cat(idx_blocks), torch.cat(val_blocks)


def normalize_joined(
    idx: torch.Tensor,
    values: torch.Tensor,
    trained_deg: torch.Tensor | None,
    mode: Literal["sym", "row"] = "sym",
) -> torch.Tensor:
    """Normalise new rows ``(idx, values)`` [n_new, m] (from ``knn_join``; index n = the row
    itself, repeated indices add) of a graph whose trained rows have row sums ``trained_deg``
    [n], as ``normalize_adjacency`` / ``knn_laplacian`` normalise the trained rows:

        row: v / D_new;  sym: v / sqrt(D_new D_j), D_j = ``trained_deg[j]`` or D_new for itself

    where D_new is the new row's own sum (``trained_deg`` is not read for ``row``: None); a
    row or column with degree <= 0 gives 0."""
    deg_new = values.sum(dim=1, keepdim=True)  # [n_new, 1]
    if mode == "row":
        return values * torch.where(deg_new > 0, 1.0 / deg_new, 0.0)
    if trained_deg is None:
        raise ValueError("sym normalisation needs the trained rows' degrees")
    n = trained_deg.shape[0]
    deg_col = torch.where(idx == n, deg_new, trained_deg[idx.clamp(max=n - 1)])  # [n_new, m]

    def inv_sqrt(d: torch.Tensor) -> torch.Tensor:
        return torch.where(d > 0, d.clamp(min=torch.finfo(d.dtype).tiny).rsqrt(), 0.0)

    return values * inv_sqrt(deg_new) * inv_sqrt(deg_col)


def knn_laplacian_join(
    new: Sequence[torch.Tensor],
    trained: Sequence[torch.Tensor],
    k: int,
    weights: torch.Tensor | Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """New rows of ``knn_laplacian(trained, k, weights)`` (self included) for cold-start items:
    per modality their top-``k`` cosine values among the trained rows and themselves
    (``knn_join``), mixed with ``weights`` and normalised by their own row sums and the trained
    rows' (recomputed, unchanged: no trained row gains a neighbour).

    Returns ``(indices [n_new, K k], values [n_new, K k])``, index n meaning the row itself
    (repeated indices add)."""
    if weights is None:
        weights = [1.0] * len(trained)
    if not len(new) == len(trained) == len(weights) or not len(trained):
        raise ValueError(f"{len(new)} / {len(trained)} feature matrices, {len(weights)} weights")
    cols, vals, deg = [], [], 0.0
    for x_new, x, w in zip(new, trained, weights, strict=True):
        idx, sim = knn_join(x_new, x, k)
        cols.append(idx)
        vals.append(w * sim)
        deg = deg + w * knn_graph(x, k, exclude_self=False)[1].sum(dim=1)  # trained row sums
    col = torch.cat(cols, dim=1)
    return col, normalize_joined(col, torch.cat(vals, dim=1), deg)
