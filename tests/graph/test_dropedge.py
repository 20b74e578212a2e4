"""Edge dropping keeps each edge with the right frequency."""

import numpy as np
import pytest

from cranerec.graph import drop_edges, edge_keep_probability

USERS = np.array([0, 0, 0, 0, 1, 1, 2])
ITEMS = np.array([0, 1, 2, 3, 0, 1, 0])


def test_keep_probability_is_inverse_sqrt_degree_product():
    p = edge_keep_probability(USERS, ITEMS, 3, 4)
    # d_u = [4, 2, 1], d_i = [3, 2, 1, 1]
    expected = [
        1 / np.sqrt(4 * 3),
        1 / np.sqrt(4 * 2),
        1 / 2,
        1 / 2,
        1 / np.sqrt(6),
        1 / 2,
        1 / np.sqrt(3),
    ]
    np.testing.assert_allclose(p, expected)


def test_paper_mode_keeps_each_edge_with_probability_p():
    rng = np.random.default_rng(0)
    runs = 20000
    kept = sum(drop_edges(USERS, ITEMS, 3, 4, "paper", rng).astype(int) for _ in range(runs))
    p = edge_keep_probability(USERS, ITEMS, 3, 4)
    se = np.sqrt(p * (1 - p) / runs)
    assert np.all(np.abs(kept / runs - p) < 4 * se)


def test_degree_sampled_keeps_a_fixed_count_weighted_by_p():
    rng = np.random.default_rng(1)
    runs = 20000
    masks = [
        drop_edges(USERS, ITEMS, 3, 4, "degree_sampled", rng, keep_ratio=1 / 7) for _ in range(runs)
    ]
    assert all(m.sum() == 1 for m in masks)
    freq = np.mean(masks, axis=0)
    p = edge_keep_probability(USERS, ITEMS, 3, 4)
    np.testing.assert_allclose(freq, p / p.sum(), atol=0.012)  # one draw: proportional to p


def test_none_keeps_everything_and_bad_mode_is_refused():
    rng = np.random.default_rng(0)
    assert drop_edges(USERS, ITEMS, 3, 4, "none", rng).all()
    with pytest.raises(ValueError, match="unknown dropedge mode"):
        drop_edges(USERS, ITEMS, 3, 4, "random", rng)
