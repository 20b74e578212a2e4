"""``KnnProduct``: S h over a kNN graph held as (idx, values) rows, against a dense S built in
numpy; a CSR product while the values are constants, a gather while they carry gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cranerec.graph import KnnProduct


def _graph(n=30, k=4, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(n)])  # distinct per row
    values = torch.rand(n, k, generator=g, dtype=torch.float64)
    h = torch.randn(n, d, generator=g, dtype=torch.float64)
    return idx, values, h


def _dense(idx, values, n):
    s = np.zeros((idx.shape[0], n))
    for i in range(idx.shape[0]):
        for j, v in zip(idx[i].tolist(), values[i].tolist(), strict=True):
            s[i, j] += v
    return torch.from_numpy(s)


def test_constant_graph_product_and_gradient_match_dense_s():
    idx, values, h = _graph()
    s = _dense(idx, values, h.shape[0])
    h.requires_grad_(True)
    out = KnnProduct()(idx, values, h)
    assert torch.allclose(out, s @ h.detach(), atol=1e-12)
    grad = torch.randn_like(out)
    (out * grad).sum().backward()
    assert torch.allclose(h.grad, s.T @ grad, atol=1e-12)  # dL/dh = S^T dL/dy


def test_gradient_reaches_values_while_they_carry_one():
    """The rebuild step: the item graph's weights are trained through S h (RCA's gradient)."""
    idx, values, h = _graph()
    values.requires_grad_(True)
    out = KnnProduct()(idx, values, h)
    assert torch.allclose(out, _dense(idx, values.detach(), h.shape[0]) @ h, atol=1e-12)
    out.sum().backward()
    assert torch.allclose(values.grad, h[idx].sum(-1), atol=1e-12)  # d(sum S h)/dS_ij = sum_d h_j


def test_in_place_rebuild_of_the_graph_is_seen():
    """A model's graph buffers are rewritten in place (a rebuild, a checkpoint load): the
    cached CSR matrices must not serve the old graph."""
    idx, values, h = _graph()
    product = KnnProduct()
    first = product(idx, values, h)
    new_idx, new_values, _ = _graph(seed=1)
    idx.copy_(new_idx)
    assert torch.allclose(product(idx, values, h), _dense(idx, values, 30) @ h, atol=1e-12)
    values.copy_(new_values)
    again = product(idx, values, h)
    assert torch.allclose(again, _dense(idx, values, 30) @ h, atol=1e-12)
    assert not torch.allclose(first, again)


def test_new_graphs_are_never_served_from_the_cache():
    """A new (idx, values) pair may land at a freed pair's address with the same version
    counters: the product must still be the new graph's."""
    product, h = KnnProduct(), torch.randn(50, 3)

    def product_of_new_graph(seed: int) -> bool:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, 50, (50, 4), generator=g)  # new tensors, freed on return
        values = torch.rand(50, 4, generator=g)
        expected = (values.unsqueeze(-1) * h[idx]).sum(dim=1)
        return torch.allclose(product(idx, values, h), expected, atol=1e-5)

    assert all(product_of_new_graph(seed) for seed in range(100))


def test_inference_mode_and_out_of_range_indices():
    """Serving may run under torch.inference_mode (tensors without a version counter); a graph
    whose indices do not fit h is an error, never a read outside memory."""
    idx, values, h = _graph()
    with torch.inference_mode():
        out = KnnProduct()(idx.clone(), values.clone(), h)
    assert torch.allclose(out, _dense(idx, values, 30) @ h, atol=1e-12)
    with pytest.raises(IndexError, match="outside"):
        KnnProduct()(idx, values, h[:20])
