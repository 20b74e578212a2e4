"""Message passing over edge lists (``graph.edge_messages``) against dense matrices, and its
gradients against finite differences."""

import torch

from cranerec.graph import dot_product_attention, edge_weighted_sum


def _edges():
    g = torch.Generator().manual_seed(0)
    src = torch.randint(0, 7, (20,), generator=g)
    dst = torch.randint(0, 6, (20,), generator=g)  # node 6 receives nothing
    return src, dst


def test_weighted_sum_is_the_weighted_adjacency_product():
    src, dst = _edges()
    x, w = torch.randn(7, 3, dtype=torch.float64), torch.randn(20, dtype=torch.float64)
    dense = torch.zeros(7, 7, dtype=torch.float64)
    for s, d, v in zip(src.tolist(), dst.tolist(), w.tolist(), strict=True):
        dense[d, s] += v  # repeated edges add
    torch.testing.assert_close(edge_weighted_sum(x, src, dst, w), dense @ x)
    ones = torch.zeros(7, 7, dtype=torch.float64).index_put_(
        (dst, src), torch.ones(20, dtype=torch.float64), True
    )
    torch.testing.assert_close(edge_weighted_sum(x, src, dst), ones @ x)


def test_dot_product_attention_is_a_softmax_over_each_nodes_incoming_edges():
    src, dst = _edges()
    x = torch.randn(7, 3, dtype=torch.float64)
    out, alpha = dot_product_attention(x, src, dst)
    for n in range(7):
        into = (dst == n).nonzero().flatten()
        if len(into) == 0:
            assert (out[n] == 0).all()
            continue
        a = torch.softmax(x[src[into]] @ x[n], dim=0)
        torch.testing.assert_close(alpha[into], a)
        torch.testing.assert_close(out[n], a @ x[src[into]])


def test_gradients_match_finite_differences():
    src, dst = _edges()
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(20, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: edge_weighted_sum(x, src, dst, w), (x, w))
    assert torch.autograd.gradcheck(lambda x: dot_product_attention(x, src, dst), (x,))
