"""Sparse products and layer propagation over graphs, with a backward pass that reuses a
precomputed transpose (torch's own sparse backward re-transposes the matrix at every step)."""

from __future__ import annotations

import torch


class _SparseMatmul(torch.autograd.Function):
    """y = A @ x with dL/dx = A^T @ dL/dy; A and A^T are constants (no gradient)."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj_t = adj_t
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, torch.sparse.mm(ctx.adj_t, grad)


def sparse_mm(
    adj: torch.Tensor, x: torch.Tensor, adj_t: torch.Tensor | None = None
) -> torch.Tensor:
    """``adj @ x`` for a constant sparse ``adj`` [N, M] and dense ``x`` [M, d].

    ``adj_t`` is ``adj``'s transpose in the same layout; pass ``adj`` itself for a symmetric
    matrix (the user-item adjacency). Without it torch's built-in backward is used.
    """
    if adj_t is None or not x.requires_grad:
        return torch.sparse.mm(adj, x)
    return _SparseMatmul.apply(adj, adj_t, x)


def propagate(
    adj: torch.Tensor, emb: torch.Tensor, n_layers: int, adj_t: torch.Tensor | None = None
) -> torch.Tensor:
    """LightGCN-style propagation: the mean of E^(0..K) with E^(k+1) = adj @ E^(k) (layer 0
    included, so a node without edges keeps its own embedding)."""
    layers = [emb]
    for _ in range(n_layers):
        layers.append(sparse_mm(adj, layers[-1], adj_t))
    return torch.stack(layers).mean(dim=0)
