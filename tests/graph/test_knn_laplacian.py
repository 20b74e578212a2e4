"""LATTICE's normalised similarity kNN graph against a dense numpy construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cranerec.graph import knn_laplacian


def dense_knn_laplacian(features, k, weights, exclude_self=False):
    """sum_m w_m topk-masked cosine matrices, then D^{-1/2} S D^{-1/2} with the row sums
    (dense numpy, float64, ties by the lower index; rows summing to <= 0 set to zero)."""
    n = features[0].shape[0]
    mixed = np.zeros((n, n))
    for x, w in zip(features, weights, strict=True):
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = xn @ xn.T
        if exclude_self:
            np.fill_diagonal(sim, -np.inf)
        kept = np.zeros((n, n))
        for i, row in enumerate(sim):
            top = np.argsort(-row, kind="stable")[:k]
            kept[i, top] = row[top]
        mixed += w * kept
    deg = mixed.sum(axis=1)
    d = np.where(deg > 0, np.abs(deg) ** -0.5, 0.0)
    return d[:, None] * mixed * d[None, :]


def _features(n=15, widths=(5, 3, 7), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, w)) for w in widths]


@pytest.mark.parametrize("k", [1, 4, 14])
@pytest.mark.parametrize("n_modalities", [1, 2, 3])
def test_matches_the_dense_construction(k, n_modalities):
    feats = _features()[:n_modalities]
    weights = np.random.default_rng(1).dirichlet(np.ones(n_modalities))
    got = knn_laplacian([torch.from_numpy(x) for x in feats], k, torch.from_numpy(weights))
    assert got.is_sparse and got.is_coalesced() and got.shape == (15, 15)
    expected = dense_knn_laplacian(feats, k, weights)
    np.testing.assert_allclose(got.to_dense().numpy(), expected, rtol=1e-10, atol=1e-12)
    assert got._nnz() <= 15 * min(k * n_modalities, 15)  # coalesced: shared edges merged


def test_unweighted_single_modality_float32_and_exclude_self():
    (x,) = _features(widths=(6,))
    got = knn_laplacian([x.astype(np.float32)], 3)  # numpy input, weight 1
    np.testing.assert_allclose(
        got.to_dense().numpy(), dense_knn_laplacian([x], 3, [1.0]), rtol=1e-5, atol=1e-6
    )
    got = knn_laplacian([torch.from_numpy(x)], 3, exclude_self=True)
    expected = dense_knn_laplacian([x], 3, [1.0], exclude_self=True)
    np.testing.assert_allclose(got.to_dense().numpy(), expected, rtol=1e-10, atol=1e-12)
    assert np.diag(expected).max() == 0


def test_rows_with_a_nonpositive_sum_are_zero():
    # row 2 points away from all others: its only (k = 1, self excluded) cosine is negative
    x = torch.tensor([[1.0, 0.1], [1.0, -0.1], [-1.0, 0.0]], dtype=torch.float64)
    got = knn_laplacian([x], 1, exclude_self=True).to_dense()
    assert torch.isfinite(got).all()
    assert (got[2] == 0).all() and (got[:, 2] == 0).all()
    assert (got[:2] != 0).sum() == 2


def test_differentiable_in_features_and_weights():
    feats = [torch.from_numpy(x).requires_grad_() for x in _features(n=8, widths=(4, 3))]
    weights = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    probe = torch.from_numpy(np.random.default_rng(2).normal(size=(8, 8)))

    def f(a, b, w):
        return (knn_laplacian([a, b], 3, w).to_dense() * probe).sum()

    assert torch.autograd.gradcheck(f, (*feats, weights))


def test_mismatched_weights_are_refused():
    with pytest.raises(ValueError, match="weights"):
        knn_laplacian(_features(), 2, [0.5, 0.5])
