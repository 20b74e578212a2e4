"""The user-user co-occurrence graph of DualGNN and DRAGON: each user aggregates the
representations of the ``k`` users it shares the most training items with.

Built from the training interactions (MMRec's references read it precomputed, as
``user_graph_dict.npy``, from the dataset folder; ``preprocessing/dualgnn-gen-u-u-matrix.py``
in MMRec, ``tools/generate-u-u-matrix.py`` in the DRAGON repository, make it). What that
preprocessing computes, and what ``cooccurrence_neighbours`` computes from ``dataset.train``:

    c(u, v) = |I_u & I_v|        the number of training items users u != v share (binary
                                 interactions: ``x_label == 0`` rows, i.e. our train split)
    list(u) = the users v with c(u, v) > 0, by c(u, v) descending, at most 200 of them
              (the script keeps ``torch.topk`` of the row, 200 at most), stored with their counts

Ties are broken in a random order drawn once from a fixed seed (``torch.topk`` leaves them
unspecified, so the script's order among equal counts is arbitrary). Not by the lower index: most
counts are small, ties decide most of the k slots, and where low ids are heavy users, as on
TikTok, an index order hands the slots to a few hub users (the 100 most-named users then carry
58% of all neighbour weight, against 42% at random and in MMRec's file:
``benchmarks/user_graph_ties.py``). Every user of the dataset has a row; a user who
shares no item with anyone has an empty list.

Sampling (the references' ``topk_sample``, redone before every training epoch): with ``k`` the
number of neighbours (40 in both references),
- a user with at least ``k`` listed neighbours keeps the first ``k`` (deterministic);
- a user with 0 < n < k listed neighbours is padded to ``k`` by an urn draw: for slot
  j = n .. k - 1, a slot drawn uniformly among the j already filled is copied (its user and
  count); the draws are redone every epoch (the only randomness of the graph);
- a user with no neighbour gets k slots of user 0 with weight 0 (no message).
Weights: ``softmax`` over the k slots' counts (duplicates included; the references' setting) or
``mean`` 1/k each. The aggregation is

    h_u = sum_{s = 1..k} w_{u,s} x_{nbr(u, s)}

a sparse [U, U] product (slots naming the same user add). The sampled slots and weights are
buffers saved with the model, so a restored model scores with the graph it was trained and
evaluated with.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cranerec.graph.adjacency import to_torch_sparse
from cranerec.graph.propagate import sparse_mm

#: How a user's k slots are weighted: softmax of the co-occurrence counts, or uniform.
UserAggr = Literal["softmax", "mean"]
#: The most neighbours the references' preprocessing stores per user.
STORED_NEIGHBOURS = 200


def cooccurrence_counts(train: sp.spmatrix) -> sp.csr_matrix:
    """C [U, U] with C[u, v] = the number of training items users u != v share (the diagonal
    is empty; a repeated (user, item) pair counts once)."""
    r = sp.csr_matrix(train, dtype=np.float32, copy=True)
    r.sum_duplicates()
    r.eliminate_zeros()
    r.data[:] = 1.0
    c = sp.csr_matrix(r @ r.T)
    c.setdiag(0.0)
    c.eliminate_zeros()
    return c


def cooccurrence_neighbours(
    train: sp.spmatrix, n: int = STORED_NEIGHBOURS, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's top-``n`` co-occurring users (the references' preprocessed lists).

    Returns ``(users [U, n] int64, counts [U, n] float32, length [U] int64)``: row u holds its
    ``length[u]`` neighbours by count descending, ties in a random order drawn from ``rng``
    (``None``: by the lower index), then zeros."""
    c = cooccurrence_counts(train)
    c.sort_indices()  # neighbours ascending within each user's row
    n_users = train.shape[0]
    row = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(c.indptr))
    cnt = np.rint(c.data).astype(np.int64)  # exact small integers
    tie = rng.random(len(cnt)) if rng is not None else np.arange(len(cnt))
    order = np.lexsort((tie, -cnt, row))  # by user, then count descending, then the tie key
    row, col, cnt = row[order], c.indices[order].astype(np.int64), cnt[order]
    rank = np.arange(len(row)) - c.indptr[row]  # position within the user's sorted row
    keep = rank < n
    users = np.zeros((n_users, n), dtype=np.int64)
    counts = np.zeros((n_users, n), dtype=np.float32)
    users[row[keep], rank[keep]] = col[keep]
    counts[row[keep], rank[keep]] = cnt[keep]
    length = np.minimum(np.bincount(row, minlength=n_users), n).astype(np.int64)
    return users, counts, length


def sample_neighbours(
    users: np.ndarray, counts: np.ndarray, length: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """k slots per user from the stored lists: the first k, or all n < k padded by the urn draw
    of the module docstring. Returns ``(slots [U, k] int64, counts [U, k] float32)``; a user
    without neighbours gets user 0 with count 0 in every slot."""
    n_users = users.shape[0]
    slots = np.zeros((n_users, k), dtype=np.int64)
    slot_counts = np.zeros((n_users, k), dtype=np.float32)
    width = min(k, users.shape[1])
    slots[:, :width], slot_counts[:, :width] = users[:, :width], counts[:, :width]
    short = length[(length > 0) & (length < k)]
    for j in range(int(short.min()) if len(short) else k, k):
        rows = np.flatnonzero((length > 0) & (length <= j))  # users filling slot j
        pick = np.floor(rng.random(len(rows)) * j).astype(np.int64)  # uniform in [0, j)
        slots[rows, j] = slots[rows, pick]
        slot_counts[rows, j] = slot_counts[rows, pick]
    return slots, slot_counts


def slot_weights(slot_counts: np.ndarray, length: np.ndarray, aggr: UserAggr) -> np.ndarray:
    """[U, k] weights of the slots: softmax of their counts, or 1/k; 0 for users without
    neighbours."""
    if aggr == "softmax":
        z = slot_counts - slot_counts.max(axis=1, keepdims=True)
        w = np.exp(z)
        w /= w.sum(axis=1, keepdims=True)
    elif aggr == "mean":
        w = np.full(slot_counts.shape, 1.0 / slot_counts.shape[1])
    else:
        raise ValueError(f"unknown user aggregation {aggr!r}; choose softmax or mean")
    w[length == 0] = 0.0
    return w.astype(np.float32)


class UserCooccurrenceGraph(nn.Module):
    """The sampled user-user graph (module docstring): ``aggregate(x [U, d]) -> [U, d]``.

    ``resample(rng)`` redraws the padding (before every training epoch); the order among tied
    counts and the first draw, at construction, use a fixed seed (0) so that two models built
    from the same data agree before training. ``slots`` / ``weights`` ([U, k]) are saved with the model.
    """

    def __init__(
        self,
        train: sp.spmatrix,
        k: int,
        aggr: UserAggr = "softmax",
        stored: int = STORED_NEIGHBOURS,
    ) -> None:
        super().__init__()
        if k < 1 or stored < 1:
            raise ValueError(f"k={k} and stored={stored} must be >= 1")
        self.n_users, self.k, self.aggr = train.shape[0], k, aggr
        self._users, self._counts, self.length = cooccurrence_neighbours(
            train, min(k, stored), np.random.default_rng(0)
        )
        self.register_buffer("slots", torch.zeros(self.n_users, k, dtype=torch.long))
        self.register_buffer("weights", torch.zeros(self.n_users, k))
        self.register_buffer("adj", None, persistent=False)  # [U, U] sparse, from the buffers
        self.register_buffer("adj_t", None, persistent=False)
        self.register_load_state_dict_post_hook(_rebuild_after_load)
        self.resample(np.random.default_rng(0))

    def resample(self, rng: np.random.Generator) -> None:
        """Redraw the padding of the users with fewer than k neighbours."""
        slots, counts = sample_neighbours(self._users, self._counts, self.length, self.k, rng)
        device = self.slots.device
        self.slots = torch.from_numpy(slots).to(device)
        self.weights = torch.from_numpy(slot_weights(counts, self.length, self.aggr)).to(device)
        self._build()

    def _build(self) -> None:
        """The sparse [U, U] matrix W[u, v] = sum of u's slot weights naming v, and W^T."""
        rows = np.repeat(np.arange(self.n_users), self.k)
        cols = self.slots.reshape(-1).cpu().numpy()
        vals = self.weights.reshape(-1).cpu().numpy()
        w = sp.csr_matrix((vals, (rows, cols)), shape=(self.n_users, self.n_users))  # sums dups
        device = self.slots.device
        self.adj, self.adj_t = to_torch_sparse(w, device), to_torch_sparse(w.T, device)

    def dense(self) -> torch.Tensor:
        """W as a dense [U, U] tensor (tests, small data)."""
        device = self.weights.device
        w = torch.zeros(self.n_users, self.n_users, device=device)
        rows = torch.arange(self.n_users, device=device).repeat_interleave(self.k)
        return w.index_put_(
            (rows, self.slots.reshape(-1)),
            self.weights.reshape(-1),
            accumulate=True,
        )

    def aggregate(self, x: torch.Tensor) -> torch.Tensor:
        """h = W x: each user's weighted sum of its slots' rows of ``x`` [U, d]."""
        return sparse_mm(self.adj, x, self.adj_t)


def _rebuild_after_load(module: UserCooccurrenceGraph, _keys) -> None:
    """Loaded slots and weights: rebuild the sparse matrix from them."""
    module._build()
