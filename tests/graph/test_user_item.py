"""UserItemGraph: the propagation every graph model uses, against a dense naive computation."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cranerec.graph import UserItemGraph


def _interactions(seed: int = 0, n_users: int = 7, n_items: int = 5) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    r = (rng.random((n_users, n_items)) < 0.4).astype(np.float32)
    r[0, 0] = r[1, 1] = 1.0
    r[n_users - 1] = 0.0  # a user without edges
    return sp.csr_matrix(r)


def _dense_adjacency(r: np.ndarray, norm: str) -> np.ndarray:
    n_users, n_items = r.shape
    a = np.zeros((n_users + n_items,) * 2)
    a[:n_users, n_users:], a[n_users:, :n_users] = r, r.T
    if norm == "row_self":
        a = a + np.eye(len(a))
        return a / a.sum(1, keepdims=True)
    d = a.sum(1)
    inv = np.where(d > 0, d**-0.5, 0.0)
    return inv[:, None] * a * inv[None, :]


@pytest.mark.parametrize("norm", ["sym", "row_self"])
def test_propagation_is_the_layer_mean_over_the_normalised_graph(norm):
    r = _interactions()
    graph = UserItemGraph(r, norm)
    users = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    items = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    out_u, out_i = graph.propagate(users.float(), items.float(), n_layers=2)

    a = _dense_adjacency(r.toarray(), norm)
    e0 = np.concatenate([users.detach().numpy(), items.detach().numpy()])
    expected = (e0 + a @ e0 + a @ a @ e0) / 3
    np.testing.assert_allclose(out_u.detach().numpy(), expected[:7], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out_i.detach().numpy(), expected[7:], rtol=1e-5, atol=1e-6)
    # a user without edges: only layer 0 counts (sym), or its self-loop keeps it (row_self)
    alone = e0[6] / 3 if norm == "sym" else e0[6]
    np.testing.assert_allclose(out_u[6].detach().numpy(), alone, rtol=1e-5)


@pytest.mark.parametrize("norm", ["sym", "row_self"])
def test_gradients_go_through_the_transpose(norm):
    # the backward pass uses A^T: for the row-normalised (not symmetric) graph a wrong transpose
    # would give the wrong gradient
    r = _interactions(1)
    graph = UserItemGraph(r, norm)
    users = torch.randn(7, 2, requires_grad=True)
    items = torch.randn(5, 2, requires_grad=True)
    out_u, out_i = graph.propagate(users, items, n_layers=2)
    (out_u.pow(2).sum() + out_i.pow(2).sum()).backward()

    a = torch.tensor(_dense_adjacency(r.toarray(), norm), dtype=torch.float32)
    e0 = torch.cat([users, items]).detach().requires_grad_(True)
    dense = (e0 + a @ e0 + a @ (a @ e0)) / 3
    dense.pow(2).sum().backward()
    torch.testing.assert_close(torch.cat([users.grad, items.grad]), e0.grad, rtol=1e-4, atol=1e-5)


def test_kept_edges_are_what_training_propagates_over_and_inference_sees_every_edge():
    r = _interactions(2)
    graph = UserItemGraph(r)
    keep = np.zeros(len(graph.edge_users), dtype=bool)
    keep[::2] = True
    graph.keep_edges(keep)
    kept = sp.csr_matrix(
        (np.ones(keep.sum()), (graph.edge_users[keep], graph.edge_items[keep])), shape=r.shape
    ).toarray()
    users, items = torch.randn(7, 3), torch.randn(5, 3)
    e0 = torch.cat([users, items]).numpy()

    graph.train()
    out_u, _ = graph.propagate(users, items, n_layers=1)
    expected = (e0 + _dense_adjacency(kept, "sym") @ e0) / 2
    np.testing.assert_allclose(out_u.numpy(), expected[:7], rtol=1e-5, atol=1e-6)

    graph.eval()
    out_u, _ = graph.propagate(users, items, n_layers=1)
    expected = (e0 + _dense_adjacency(r.toarray(), "sym") @ e0) / 2
    np.testing.assert_allclose(out_u.numpy(), expected[:7], rtol=1e-5, atol=1e-6)

    graph.train()
    graph.keep_edges(None)  # every edge again
    assert graph.adjacency()[0] is graph.adj


def test_a_layer_function_applies_to_every_propagated_layer():
    r = _interactions(3)
    graph = UserItemGraph(r)
    users, items = torch.randn(7, 3), torch.randn(5, 3)
    seen = []

    def layer(i, msg):
        seen.append(i)
        return torch.relu(msg) * 2

    out_u, _ = graph.propagate(users, items, n_layers=2, layer=layer)
    a = torch.tensor(_dense_adjacency(r.toarray(), "sym"), dtype=torch.float32)
    e0 = torch.cat([users, items])
    e1 = torch.relu(a @ e0) * 2
    e2 = torch.relu(a @ e1) * 2
    assert seen == [0, 1]
    torch.testing.assert_close(out_u, ((e0 + e1 + e2) / 3)[:7], rtol=1e-5, atol=1e-6)


def test_edge_sampling_is_refused_on_a_graph_it_is_not_defined_for():
    graph = UserItemGraph(_interactions(), "row_self")
    with pytest.raises(ValueError, match="symmetric"):
        graph.keep_edges(np.ones(len(graph.edge_users), dtype=bool))
