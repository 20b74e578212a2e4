"""The bipartite adjacency and its normalisations against dense numpy formulas."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cranerec.graph import (
    bipartite_adjacency,
    normalize_adjacency,
    propagate,
    sparse_mm,
    to_torch_sparse,
)


def _interactions() -> np.ndarray:
    """A random 6 x 5 binary matrix where user 2 and item 3 (only they) have no interaction."""
    r = (np.random.default_rng(0).random((6, 5)) < 0.5).astype(np.float32)
    r[2, :] = 0
    r[:, 3] = 0
    r[[0, 1, 3, 4, 5], [0, 1, 2, 4, 4]] = 1  # every other user and item keeps an edge
    return r


def _dense_adjacency(r: np.ndarray) -> np.ndarray:
    n_users, n_items = r.shape
    a = np.zeros((n_users + n_items, n_users + n_items))
    a[:n_users, n_users:] = r
    a[n_users:, :n_users] = r.T
    return a


def test_bipartite_adjacency_is_users_then_items():
    r = _interactions()
    adj = bipartite_adjacency(sp.csr_matrix(r))
    assert adj.shape == (11, 11)
    assert adj.dtype == np.float32
    np.testing.assert_array_equal(adj.toarray(), _dense_adjacency(r))


def test_bipartite_adjacency_is_binary_and_leaves_its_input_alone():
    weighted = sp.csr_matrix(np.array([[3.0, 0.0], [0.0, 5.0]], dtype=np.float32))
    adj = bipartite_adjacency(weighted)
    np.testing.assert_array_equal(adj.toarray(), _dense_adjacency(np.eye(2)))
    np.testing.assert_array_equal(weighted.data, [3.0, 5.0])  # the caller's matrix unchanged


def test_bipartite_adjacency_ignores_stored_zeros_and_duplicates():
    # a CSR with a stored zero at (0, 1) and the pair (1, 0) stored twice
    r = sp.csr_matrix(
        (np.array([1.0, 0.0, 1.0, 1.0]), np.array([0, 1, 0, 0]), np.array([0, 2, 4])),
        shape=(2, 2),
    )
    adj = bipartite_adjacency(r)
    np.testing.assert_array_equal(adj.toarray(), _dense_adjacency(np.array([[1, 0], [1, 0]])))


def test_sym_normalisation_matches_dense_formula():
    a = _dense_adjacency(_interactions())
    deg = a.sum(axis=1)
    assert (deg == 0).sum() == 2  # user 2 and item 3
    d = np.zeros_like(deg)
    d[deg > 0] = deg[deg > 0] ** -0.5
    expected = d[:, None] * a * d[None, :]
    norm = normalize_adjacency(bipartite_adjacency(sp.csr_matrix(_interactions())), "sym")
    dense = norm.toarray()
    assert norm.dtype == np.float32
    assert np.isfinite(dense).all()
    np.testing.assert_allclose(dense, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(dense[deg == 0], 0.0)
    np.testing.assert_array_equal(dense[:, deg == 0], 0.0)
    np.testing.assert_allclose(dense, dense.T, rtol=1e-6)


def test_row_normalisation_rows_sum_to_one_or_zero():
    a = _dense_adjacency(_interactions())
    deg = a.sum(axis=1)
    dense = normalize_adjacency(sp.csr_matrix(a), "row").toarray()
    assert np.isfinite(dense).all()
    np.testing.assert_allclose(dense.sum(axis=1), (deg > 0).astype(float), rtol=1e-6)
    np.testing.assert_allclose(dense[deg > 0], a[deg > 0] / deg[deg > 0, None], rtol=1e-6)


def test_none_normalisation_and_unknown_mode():
    a = _dense_adjacency(_interactions())
    np.testing.assert_array_equal(normalize_adjacency(sp.csr_matrix(a), "none").toarray(), a)
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize_adjacency(sp.csr_matrix(a), "col")


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_to_torch_sparse_round_trips(layout):
    norm = normalize_adjacency(bipartite_adjacency(sp.csr_matrix(_interactions())), "sym")
    t = to_torch_sparse(norm, layout=layout)
    if layout == "coo":
        assert t.is_sparse and t.is_coalesced()
    else:
        assert t.layout == torch.sparse_csr
    assert t.dtype == torch.float32 and tuple(t.shape) == norm.shape
    np.testing.assert_array_equal(t.to_dense().numpy(), norm.toarray())
    x = torch.randn(norm.shape[0], 3)
    torch.testing.assert_close(
        torch.sparse.mm(t, x), torch.from_numpy(norm.toarray()) @ x, rtol=1e-5, atol=1e-6
    )


def test_sparse_mm_backward_uses_the_transpose_correctly():
    """The custom backward (A^T @ grad from a precomputed transpose) passes gradcheck."""
    rng = np.random.default_rng(0)
    a = sp.random(6, 4, density=0.5, random_state=rng, format="csr")
    a_t = to_torch_sparse(a.T).double()
    a_torch = to_torch_sparse(a).double()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: sparse_mm(a_torch, v, a_t), (x,))


def test_propagate_is_the_mean_of_layers_including_layer_zero():
    norm = normalize_adjacency(bipartite_adjacency(sp.csr_matrix(_interactions())), "sym")
    dense = torch.from_numpy(norm.toarray()).double()
    e = torch.randn(norm.shape[0], 2, dtype=torch.float64)
    t = to_torch_sparse(norm).double()
    expected = (e + dense @ e + dense @ dense @ e) / 3
    torch.testing.assert_close(propagate(t, e, 2, adj_t=t), expected)


def test_kept_edges_adjacency_normalises_on_the_kept_edges_only():
    from cranerec.graph import kept_edges_adjacency

    train = sp.random(6, 5, density=0.5, format="coo", random_state=0)
    users, items = train.row.astype(np.int64), train.col.astype(np.int64)
    keep = np.arange(len(users)) % 3 != 0
    got = kept_edges_adjacency(users, items, keep, 6, 5).to_dense().numpy()
    kept = sp.csr_matrix((np.ones(keep.sum()), (users[keep], items[keep])), shape=(6, 5))
    want = normalize_adjacency(bipartite_adjacency(kept), "sym").toarray()
    np.testing.assert_allclose(got, want, rtol=1e-6)
