"""Softmax over the edges that share an endpoint (graph attention), with scatter ops."""

from __future__ import annotations

import torch


def edge_softmax(scores: torch.Tensor, index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """Normalise edge scores with a softmax over each node's edges.

    ``scores`` [E] holds one score per edge and ``index`` [E] the node each edge belongs to (its
    destination, the node whose neighbours compete). Returns alpha [E] with, for every node n,
    alpha_e = exp(scores_e) / sum_{e': index_e' = n} exp(scores_e'), so each node's weights sum to
    one (a node without edges has none). The per-node maximum is subtracted first (detached: the
    softmax does not depend on it), so large scores do not overflow. Differentiable in
    ``scores``; memory O(E + n_nodes), never a dense [n_nodes, n_nodes] matrix.
    """
    if scores.shape != index.shape or scores.dim() != 1:
        raise ValueError(
            f"scores {tuple(scores.shape)} and index {tuple(index.shape)} must be equal 1-D shapes"
        )
    with torch.no_grad():
        top = scores.new_full((n_nodes,), float("-inf")).scatter_reduce(
            0, index, scores, "amax", include_self=True
        )  # [n_nodes]
    weights = torch.exp(scores - top.index_select(0, index))  # [E], each <= 1
    total = weights.new_zeros(n_nodes).index_add(0, index, weights)  # [n_nodes], >= 1 where used
    return weights / total.index_select(0, index)
