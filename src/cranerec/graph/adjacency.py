"""The user-item bipartite adjacency and its normalisations.

Nodes are ordered users first, then items: node ``u`` is user ``u``, node ``n_users + i`` is
item ``i``. Built once from the training matrix and reused by every graph model.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch


def bipartite_adjacency(train: sp.spmatrix) -> sp.csr_matrix:
    """The symmetric (n_users + n_items) square adjacency A = [[0, R], [R^T, 0]] of a binary
    interaction matrix R [n_users, n_items]."""
    r = sp.csr_matrix(train, dtype=np.float32, copy=True)  # never write into the caller's matrix
    r.sum_duplicates()  # a repeated (user, item) pair is one edge
    r.eliminate_zeros()  # a stored zero is no interaction
    r.data[:] = 1.0
    return sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)


def normalize_adjacency(
    adj: sp.spmatrix, mode: Literal["sym", "row", "none"] = "sym"
) -> sp.csr_matrix:
    """Normalise a square adjacency.

    ``sym``: D^{-1/2} A D^{-1/2} (LightGCN); ``row``: D^{-1} A (rows sum to one). D is the
    diagonal of row sums; nodes with degree 0 keep all-zero rows (no division by zero).
    """
    adj = sp.csr_matrix(adj, dtype=np.float32)
    if mode == "none":
        return adj
    deg = np.asarray(adj.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        if mode == "sym":
            d = np.where(deg > 0, deg**-0.5, 0.0).astype(np.float32)
            return sp.csr_matrix(sp.diags(d) @ adj @ sp.diags(d), dtype=np.float32)
        if mode == "row":
            d = np.where(deg > 0, 1.0 / deg, 0.0).astype(np.float32)
            return sp.csr_matrix(sp.diags(d) @ adj, dtype=np.float32)
    raise ValueError(f"unknown normalisation {mode!r}; choose sym, row or none")


def to_torch_sparse(
    adj: sp.spmatrix, device: str | torch.device = "cpu", layout: str = "csr"
) -> torch.Tensor:
    """A scipy matrix as a torch sparse tensor (float32) on ``device``; ``layout`` is ``csr``
    (fastest products on CPU and GPU) or ``coo`` (coalesced)."""
    if layout == "csr":
        m = sp.csr_matrix(adj, dtype=np.float32)
        m.sort_indices()
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                torch.from_numpy(m.indptr.astype(np.int64)),
                torch.from_numpy(m.indices.astype(np.int64)),
                torch.from_numpy(m.data),
                size=m.shape,
                device=device,
                check_invariants=False,
            )
    if layout != "coo":
        raise ValueError(f"unknown layout {layout!r}; choose csr or coo")
    coo = sp.coo_matrix(adj)
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(
        indices, values, coo.shape, device=device, check_invariants=False
    ).coalesce()


def kept_edges_adjacency(
    users: np.ndarray, items: np.ndarray, keep: np.ndarray, n_users: int, n_items: int
) -> torch.Tensor:
    """The symmetric-normalised bipartite adjacency (a sparse tensor, users first) of the
    edges ``(users[e], items[e])`` with ``keep[e]`` true, degrees counted on the kept edges:
    the training graph after edge dropping (pass all-true for the full graph)."""
    r = sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (users[keep], items[keep])),
        shape=(n_users, n_items),
    )
    return to_torch_sparse(normalize_adjacency(bipartite_adjacency(r), "sym"))
