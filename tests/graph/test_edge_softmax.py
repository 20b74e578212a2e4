"""edge_softmax against a per-node softmax written in numpy."""

import numpy as np
import pytest
import torch

from cranerec.graph import edge_softmax


def numpy_edge_softmax(scores: np.ndarray, index: np.ndarray, n_nodes: int) -> np.ndarray:
    out = np.zeros_like(scores)
    for n in range(n_nodes):
        mine = index == n
        if mine.any():
            e = np.exp(scores[mine] - scores[mine].max())
            out[mine] = e / e.sum()
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_per_node_softmax(seed):
    rng = np.random.default_rng(seed)
    n_nodes, n_edges = 9, 30
    index = rng.integers(0, n_nodes - 2, n_edges)  # the last two nodes have no edges
    scores = rng.normal(size=n_edges) * 3
    got = edge_softmax(torch.from_numpy(scores), torch.from_numpy(index), n_nodes).numpy()
    np.testing.assert_allclose(got, numpy_edge_softmax(scores, index, n_nodes), rtol=1e-12)
    sums = np.bincount(index, weights=got, minlength=n_nodes)
    np.testing.assert_allclose(sums[np.bincount(index, minlength=n_nodes) > 0], 1.0)


def test_large_scores_do_not_overflow():
    scores = torch.tensor([1000.0, 999.0, -1000.0, 5.0])
    index = torch.tensor([0, 0, 1, 1])
    got = edge_softmax(scores, index, 2)
    assert torch.isfinite(got).all()
    want = numpy_edge_softmax(scores.double().numpy(), index.numpy(), 2)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-30)


def test_gradcheck():
    rng = np.random.default_rng(0)
    index = torch.from_numpy(rng.integers(0, 4, 12))
    scores = torch.randn(12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: edge_softmax(s, index, 5), (scores,))


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="1-D"):
        edge_softmax(torch.zeros(3), torch.zeros(4, dtype=torch.long), 2)
