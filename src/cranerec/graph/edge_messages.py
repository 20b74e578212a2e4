"""Message passing over an explicit list of directed edges (GRCN's graph convolutions, PyG's
``MessagePassing`` with ``aggr='add'``): each edge e = (src_e -> dst_e) carries row src_e of x,
scaled, to node dst_e, where the messages are summed.

    edge_weighted_sum:      out_n = sum_{e: dst_e = n} w_e x_{src_e}
    dot_product_attention:  alpha_e = softmax over the edges e' into dst_e of x_{dst_e} . x_{src_e'}
                            out_n   = sum_{e: dst_e = n} alpha_e x_{src_e}

Pass both directions for an undirected graph. A node without incoming edges gets 0. Both are
differentiable in x and in the weights; memory O(E x d), never a dense [N, N] matrix.
"""

from __future__ import annotations

import torch

from cranerec.graph.softmax import edge_softmax


def edge_weighted_sum(
    x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """out_n = sum_{e: dst_e = n} w_e x_{src_e}: x [N, d], src / dst [E] (long), weight [E] or
    None (1 per edge) -> [N, d]."""
    messages = x.index_select(0, src)  # [E, d]; backward an index_add (x[src]'s is slower)
    if weight is not None:
        messages = messages * weight.reshape(-1, 1)
    return x.new_zeros(x.shape).index_add(0, dst, messages)


def dot_product_attention(
    x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Parameter-free graph attention: each node's incoming messages weighted by a softmax of
    the inner products of its row with the senders' rows. x [N, d], src / dst [E] ->
    (out [N, d], alpha [E]), alpha_e the weight of edge e (summing to one into every node that
    has incoming edges)."""
    scores = (x.index_select(0, src) * x.index_select(0, dst)).sum(dim=-1)  # [E]
    alpha = edge_softmax(scores, dst, x.shape[0])  # [E]
    return edge_weighted_sum(x, src, dst, alpha), alpha
