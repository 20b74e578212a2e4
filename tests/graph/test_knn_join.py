"""Cold-start rows of kNN item graphs (``knn_join``, ``normalize_joined``,
``knn_laplacian_join``) and propagation through them (``propagate_joined``), against dense
numpy constructions: each new item is one more row of the graph, over the trained items and
itself, that no trained row sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cranerec.graph import (
    knn_graph,
    knn_join,
    knn_laplacian_join,
    normalize_joined,
    propagate_joined,
)


def _data(n=20, n_new=4, width=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, width)), rng.normal(size=(n_new, width))


def dense_joined_row(trained, new_row, k, include_self=True):
    """The cosines of one new item to the trained rows and (``include_self``) itself, all but
    its top-k zeroed (ties by the lower index): a dense row of n (+ 1) columns."""
    x = np.vstack([trained, new_row[None]]) if include_self else trained
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    q = new_row / np.linalg.norm(new_row)
    sim = x @ q
    top = np.argsort(-sim, kind="stable")[:k]
    row = np.zeros(len(sim))
    row[top] = sim[top]
    return row


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("k", [1, 3, 20])
def test_knn_join_matches_the_dense_rows(k, include_self):
    trained, new = _data()
    idx, sim = knn_join(
        torch.from_numpy(new), torch.from_numpy(trained), k, include_self=include_self
    )
    assert idx.shape == sim.shape == (4, k)
    for j in range(4):
        got = np.zeros(20 + include_self)
        got[idx[j].numpy()] = sim[j].numpy()
        want = dense_joined_row(trained, new[j], k, include_self)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_a_copy_of_a_trained_row_without_itself_has_that_rows_list():
    # with the self slot left out a copy's list is its original's list, self included
    trained, _ = _data()
    x = torch.from_numpy(trained)
    want_idx, want_sim = knn_graph(x, 4, exclude_self=False)
    idx, sim = knn_join(x, x, 4, include_self=False)
    assert torch.equal(idx, want_idx)
    torch.testing.assert_close(sim, want_sim)
    # with it, the copy and its original share the top two places (cosine 1 up to rounding)
    idx, _ = knn_join(x, x, 4)
    top2 = torch.sort(idx[:, :2], dim=1).values
    assert torch.equal(top2, torch.stack([torch.arange(20), torch.full((20,), 20)], dim=1))
    assert torch.equal(idx[:, 2:], want_idx[:, 1:3])  # then the original's next neighbours


def test_knn_join_refuses_a_k_out_of_range():
    trained, new = (torch.from_numpy(a) for a in _data(n=5))
    knn_join(new, trained, 6)  # five trained rows and the row itself
    with pytest.raises(ValueError, match="k=6"):
        knn_join(new, trained, 6, include_self=False)
    with pytest.raises(ValueError, match="k=0"):
        knn_join(new, trained, 0)


@pytest.mark.parametrize("mode", ["sym", "row"])
def test_normalize_joined_uses_the_new_rows_sums_and_the_trained_rows_own(mode):
    idx = torch.tensor([[0, 3, 2], [3, 1, 1]])  # index 3: the row itself; repeats add
    values = torch.tensor([[1.0, 2.0, 1.0], [4.0, 1.0, 0.0]])
    deg = torch.tensor([2.0, 0.0, 8.0])  # trained row 1 has no edges
    got = normalize_joined(idx, values, deg if mode == "sym" else None, mode)
    if mode == "row":
        want = values / values.sum(dim=1, keepdim=True)
    else:
        want = torch.tensor([[1 / (4 * 2) ** 0.5, 2 / 4, 1 / (4 * 8) ** 0.5], [4 / 5, 0.0, 0.0]])
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="degrees"):
        normalize_joined(idx, values, None, "sym")


def test_knn_laplacian_join_matches_the_dense_construction():
    (t1, n1), (t2, n2) = _data(width=5), _data(width=3, seed=1)
    weights = [0.3, 0.7]
    k = 4
    idx, values = knn_laplacian_join(
        [torch.from_numpy(n1), torch.from_numpy(n2)],
        [torch.from_numpy(t1), torch.from_numpy(t2)],
        k,
        weights,
    )
    # the trained rows' sums, from the dense trained graphs (each trained row with itself)
    deg = sum(
        w * np.array([dense_joined_row(t[np.arange(20) != i], t[i], k).sum() for i in range(20)])
        for t, w in zip([t1, t2], weights, strict=True)
    )
    for j in range(4):
        row = sum(
            w * dense_joined_row(t, x[j], k)
            for t, x, w in zip([t1, t2], [n1, n2], weights, strict=True)
        )  # [21]: the trained items, then the item itself
        d_col = np.append(deg, row.sum())
        want = row / np.sqrt(row.sum() * d_col)
        got = np.zeros(21)
        np.add.at(got, idx[j].numpy(), values[j].numpy())
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_layers", [0, 1, 3])
@pytest.mark.parametrize("own_start", [False, True])
def test_propagate_joined_is_the_joined_graph_applied_layer_by_layer(n_layers, own_start):
    rng = np.random.default_rng(2)
    n, n_new, d = 6, 3, 4
    s = rng.random((n, n)) * (rng.random((n, n)) < 0.5)  # the trained rows of S
    idx = torch.tensor([[0, 6, 2], [6, 6, 5], [1, 3, 3]])  # 6: the new row itself
    values = torch.from_numpy(rng.random((n_new, 3)))
    full = np.zeros((n + n_new, n + n_new))  # S over the trained and the new items
    full[:n, :n] = s  # no trained row sees a new item
    for j in range(n_new):
        for c, v in zip(idx[j].tolist(), values[j].tolist(), strict=True):
            full[n + j, n + j if c == n else c] += v
    h0 = rng.normal(size=(n + n_new, d))
    if not own_start:
        h0[n:] = 0
    want = (np.linalg.matrix_power(full, n_layers) @ h0)[n:]
    adj = torch.from_numpy(s)
    got = propagate_joined(
        idx,
        values,
        torch.from_numpy(h0[:n]),
        n_layers,
        lambda h: adj @ h,
        torch.from_numpy(h0[n:]) if own_start else None,
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    if n_layers > 1:
        with pytest.raises(ValueError, match="needs step"):
            propagate_joined(idx, values, torch.from_numpy(h0[:n]), n_layers)
