"""k-nearest-neighbour cosine graphs against a brute-force numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cranerec.graph import knn_adjacency, knn_graph, mixed_knn_adjacency


def brute_force_knn(x: np.ndarray, k: int, exclude_self: bool = True):
    """Cosine top-k per row, ties by the lower index, in plain numpy (float64)."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
    idx = np.stack([np.argsort(-row, kind="stable")[:k] for row in sim])
    return idx, np.take_along_axis(sim, idx, axis=1)


def _features(n: int = 13, d: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("exclude_self", [True, False])
@pytest.mark.parametrize("k", [1, 4, 12])
def test_matches_brute_force_cosine_topk(k, exclude_self):
    x = _features()
    idx, vals = knn_graph(torch.from_numpy(x), k, exclude_self=exclude_self)
    ref_idx, ref_vals = brute_force_knn(x, k, exclude_self)
    assert idx.shape == vals.shape == (13, k)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(vals.numpy(), ref_vals, rtol=1e-10, atol=1e-12)
    if exclude_self:
        assert not (idx.numpy() == np.arange(13)[:, None]).any()
    else:
        np.testing.assert_array_equal(idx[:, 0].numpy(), np.arange(13))  # itself, cosine 1


def test_float32_features_match_too():
    x = _features(seed=1)
    idx, vals = knn_graph(torch.from_numpy(x).float(), 3)
    ref_idx, ref_vals = brute_force_knn(x, 3)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(vals.numpy(), ref_vals, rtol=1e-5, atol=1e-6)


def test_ties_go_to_the_lower_index():
    # rows 0, 1, 3 share a direction (1, 0); rows 2, 4 share (0, 1) (row 4 at another length)
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    idx, vals = knn_graph(x, 3)
    assert idx[0].tolist() == [1, 3, 5]
    assert idx[2].tolist() == [4, 5, 0]  # rows 0, 1, 3 tie at cosine 0
    assert idx[3].tolist() == [0, 1, 5]
    torch.testing.assert_close(vals[0], torch.tensor([1.0, 1.0, 2**-0.5]))
    idx, _ = knn_graph(x, 3, exclude_self=False)
    assert idx[1].tolist() == [0, 1, 3]
    for block in (1, 2, 4):
        assert knn_graph(x, 4, block_size=block)[0].tolist() == knn_graph(x, 4)[0].tolist()


def test_block_size_does_not_change_the_result():
    x = torch.from_numpy(_features(n=17, seed=2))
    idx, vals = knn_graph(x, 5)
    for block in (1, 3, 16, 17, 100):
        b_idx, b_vals = knn_graph(x, 5, block_size=block)
        torch.testing.assert_close(b_idx, idx, rtol=0, atol=0)
        torch.testing.assert_close(b_vals, vals, rtol=1e-12, atol=1e-12)


def test_values_are_differentiable_wrt_features():
    x = torch.from_numpy(_features(n=6, d=3, seed=3)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: knn_graph(f, 2, block_size=4)[1], (x,))
    _, vals = knn_graph(x, 2, block_size=4)
    vals.sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_a_graph_with_gradient_keeps_only_its_k_columns_for_the_backward():
    """What autograd saves grows with N k D, not with the N x N similarities (16 GB at
    Amazon-Electronics' 63,001 items when every block was kept)."""
    n, d, k = 3000, 8, 5
    feats = torch.randn(n, d, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.nbytes) or t, lambda t: t
    ):
        _, values = knn_graph(feats, k, block_size=1024)
    assert sum(saved) < 20 * n * (k + 2) * d * 4  # a few copies of [n, k, d]; n * n * 4 is 36 MB
    values.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


@pytest.mark.parametrize(("k", "exclude_self"), [(0, True), (5, True), (-1, False), (6, False)])
def test_k_out_of_range_raises(k, exclude_self):
    x = torch.from_numpy(_features(n=5))
    with pytest.raises(ValueError, match=f"k={k}"):
        knn_graph(x, k, exclude_self=exclude_self)


def test_k_at_the_limit_is_accepted():
    x = torch.from_numpy(_features(n=5))
    assert knn_graph(x, 4)[0].shape == (5, 4)
    assert knn_graph(x, 5, exclude_self=False)[0].shape == (5, 5)


def brute_force_mixed_graph(xs, k, weights, exclude_self=False):
    """sum_m w_m D_m^{-1/2} A_m D_m^{-1/2} with dense numpy kNN adjacencies, D_m their row sums."""
    out = 0.0
    for x, w in zip(xs, weights, strict=True):
        idx, _ = brute_force_knn(x, k, exclude_self)
        a = np.zeros((len(x), len(x)))
        np.put_along_axis(a, idx, 1.0, axis=1)
        d = a.sum(axis=1) ** -0.5
        out = out + w * (d[:, None] * a * d[None, :])
    return out


@pytest.mark.parametrize("exclude_self", [True, False])
def test_knn_adjacency_is_the_binary_top_k_graph(exclude_self):
    x = _features(n=11, d=4, seed=4)
    adj = knn_adjacency(x.astype(np.float32), 3, exclude_self=exclude_self)
    idx, _ = brute_force_knn(x, 3, exclude_self)
    expected = np.zeros((11, 11))
    np.put_along_axis(expected, idx, 1.0, axis=1)
    assert adj.dtype == np.float32 and adj.shape == (11, 11)
    np.testing.assert_array_equal(adj.toarray(), expected)
    assert (adj.diagonal() == (0 if exclude_self else 1)).all()  # random rows: self is nearest


def test_mixed_knn_adjacency_matches_brute_force_and_rows_sum_to_one():
    xs = [_features(n=12, d=d, seed=s) for d, s in ((4, 5), (7, 6), (3, 7))]
    weights = [0.1, 0.45, 0.45]
    adj = mixed_knn_adjacency([x.astype(np.float32) for x in xs], 4, weights)
    expected = brute_force_mixed_graph(xs, 4, weights)
    np.testing.assert_allclose(adj.toarray(), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(adj.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    assert not np.allclose(expected, expected.T)  # kNN graphs are directed


def test_sym_normalised_knn_graph_is_a_over_k():
    x = _features(n=9, seed=8)
    a = knn_adjacency(x, 3, exclude_self=False).toarray()
    np.testing.assert_allclose(mixed_knn_adjacency([x], 3, [1.0]).toarray(), a / 3, rtol=1e-6)


def test_mixed_knn_adjacency_needs_one_weight_per_modality():
    with pytest.raises(ValueError, match="weights"):
        mixed_knn_adjacency([_features()], 3, [0.5, 0.5])
