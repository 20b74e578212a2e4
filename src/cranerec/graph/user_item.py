"""The user-item graph a graph model propagates over: one module that holds the training edges,
the normalised adjacency (full, and the edge-sampled one training uses) and the propagation, so
that no model types ``torch.cat([user_emb, item_emb])`` and its own layer loop again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cranerec.graph.adjacency import (
    bipartite_adjacency,
    kept_edges_adjacency,
    normalize_adjacency,
    to_torch_sparse,
)
from cranerec.graph.propagate import propagate, sparse_mm

#: How the adjacency is normalised: ``sym`` D^{-1/2} A D^{-1/2} (LightGCN, BM3, FREEDOM, CRANE),
#: ``row_self`` D^{-1} (A + I) (LATTICE).
GraphNorm = Literal["sym", "row_self"]


class UserItemGraph(nn.Module):
    """The bipartite graph of the training interactions, an [U + I, U + I] sparse adjacency with
    the users first.

    ``adj`` is the graph of every training edge (inference); ``adj_train`` the one training
    propagates over: ``adj`` until ``keep_edges`` samples a subgraph (DropEdge, FREEDOM's
    pruning), with degrees counted on the kept edges. ``edge_users`` / ``edge_items`` (numpy,
    [E]) are the training edges, in the order ``keep_edges`` masks them. A ``row_self`` graph
    is not symmetric, so its transpose is kept for the backward pass.

    Shapes: ``propagate(user_emb [U, d], item_emb [I, d]) -> ([U, d], [I, d])``.
    """

    def __init__(self, train: sp.spmatrix, norm: GraphNorm = "sym") -> None:
        super().__init__()
        coo = train.tocoo()
        self.n_users, self.n_items = train.shape
        self.norm = norm
        self.edge_users = coo.row.astype(np.int64)  # [E]
        self.edge_items = coo.col.astype(np.int64)  # [E]
        adj = bipartite_adjacency(train)
        if norm == "sym":
            full, full_t = to_torch_sparse(normalize_adjacency(adj, "sym")), None
        elif norm == "row_self":
            adj = normalize_adjacency(adj + sp.identity(adj.shape[0], dtype="float32"), "row")
            full, full_t = to_torch_sparse(adj), to_torch_sparse(adj.T)
        else:
            raise ValueError(f"norm {norm!r} is not one of ['sym', 'row_self']")
        self.register_buffer("adj", full, persistent=False)
        self.register_buffer("adj_t", full_t, persistent=False)  # None: adj is symmetric
        self.register_buffer("adj_train", None, persistent=False)  # None: every edge (adj)

    def keep_edges(self, keep: np.ndarray | None) -> None:
        """Train on the edges with ``keep`` true ([E] bool; None: every edge again)."""
        if keep is None:
            self.adj_train = None
            return
        if self.norm != "sym":
            raise ValueError("edge sampling is defined for the symmetric-normalised graph only")
        adj = kept_edges_adjacency(
            self.edge_users, self.edge_items, keep, self.n_users, self.n_items
        )
        self.adj_train = adj.to(self.adj.device)

    def adjacency(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, A^T)`` of the graph this mode propagates over: the sampled graph in training
        (when one was sampled), the full graph otherwise."""
        if self.training and self.adj_train is not None:
            return self.adj_train, self.adj_train
        return self.adj, self.adj if self.adj_t is None else self.adj_t

    def propagate(
        self,
        user_emb: torch.Tensor,
        item_emb: torch.Tensor,
        n_layers: int,
        layer: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean of E^(0..L) with E^(l+1) = A E^(l) (LightGCN), or with
        E^(l+1) = layer(l, A E^(l)) when ``layer`` is given (a weight and an activation, CRANE);
        split back into (users [U, d], items [I, d])."""
        adj, adj_t = self.adjacency()
        emb = torch.cat([user_emb, item_emb])  # [U + I, d]
        if layer is None:
            out = propagate(adj, emb, n_layers, adj_t=adj_t)
        else:
            layers = [emb]
            for i in range(n_layers):
                layers.append(layer(i, sparse_mm(adj, layers[-1], adj_t)))
            out = torch.stack(layers).mean(dim=0)
        return out[: self.n_users], out[self.n_users :]
