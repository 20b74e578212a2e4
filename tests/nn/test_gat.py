"""GraphAttention over an edge list equals a dense masked-softmax GAT written out in full."""

import pytest
import torch

from cranerec.nn import GraphAttention


def dense_gat(layer: GraphAttention, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """adj[n, j] = 1 if j -> n is an edge; scores for every pair, non-edges masked out."""
    wh = x @ layer.weight.weight.T  # [N, out]
    out_dim = wh.shape[1]
    omega_dst, omega_src = layer.omega[:out_dim], layer.omega[out_dim:]
    pair = torch.cat(  # [N, N, 2 out]: [W h_n ; W h_j] for every (n, j)
        [wh[:, None, :].expand(-1, len(x), -1), wh[None, :, :].expand(len(x), -1, -1)], dim=2
    )
    scores = torch.nn.functional.leaky_relu(pair @ torch.cat([omega_dst, omega_src]), 0.2)
    scores = scores.masked_fill(adj == 0, float("-inf"))
    alpha = torch.softmax(scores, dim=1).nan_to_num(0.0)  # rows without neighbours -> 0
    return layer.act(alpha @ wh)


def _graph(n=7, seed=0, self_loops=False):
    g = torch.Generator().manual_seed(seed)
    adj = (torch.rand(n, n, generator=g) < 0.35).double()
    adj[-1] = 0  # node n-1 has no incoming edge
    if self_loops:
        adj[torch.arange(n - 1), torch.arange(n - 1)] = 1
    dst, src = adj.nonzero(as_tuple=True)
    return adj, src, dst


@pytest.mark.parametrize("activation", ["relu", "none", "elu"])
@pytest.mark.parametrize("self_loops", [False, True])
def test_edge_list_equals_dense(activation, self_loops):
    torch.manual_seed(0)
    layer = GraphAttention(4, 3, activation=activation).double()
    x = torch.randn(7, 4, dtype=torch.float64) * 2
    adj, src, dst = _graph(self_loops=self_loops)
    got = layer(x, src, dst)
    torch.testing.assert_close(got, dense_gat(layer, x, adj))
    torch.testing.assert_close(got[-1], layer.act(torch.zeros(3, dtype=torch.float64)))


def test_gradcheck_and_every_parameter_trains():
    torch.manual_seed(0)
    layer = GraphAttention(3, 2, activation="none").double()
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    _, src, dst = _graph()
    assert torch.autograd.gradcheck(lambda t: layer(t, src, dst), (x,))
    layer(x, src, dst).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation"):
        GraphAttention(2, 2, activation="gelu")
