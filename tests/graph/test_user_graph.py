"""The user co-occurrence graph (DualGNN, DRAGON) against a loop over user pairs written from the
references' preprocessing script, its per-epoch padding, weights and sparse aggregation."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cranerec.graph import UserCooccurrenceGraph, cooccurrence_neighbours


def _naive_lists(train, n):
    """The preprocessing script, as a loop: c(u, v) = |I_u & I_v| for u != v, each user's users
    with c > 0 by count descending (ties: lower index), at most n."""
    items = [set(train[u].indices) for u in range(train.shape[0])]
    out = []
    for u, mine in enumerate(items):
        counts = [(v, len(mine & theirs)) for v, theirs in enumerate(items) if v != u]
        counts = sorted(((v, c) for v, c in counts if c > 0), key=lambda t: (-t[1], t[0]))
        out.append(counts[:n])
    return out


def _small():
    """6 users: 0-3 share items in varying amounts (user 3 shares one item with each of 0, 1,
    2), user 4 shares one item with user 0 only, user 5 shares none; a repeated pair (user 1,
    item 2) counts once."""
    rows = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 4, 5]
    cols = [0, 1, 2, 3, 0, 1, 2, 2, 0, 1, 0, 3, 7]
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(6, 8))


@pytest.mark.parametrize("n", [1, 3, 200])
def test_lists_are_the_preprocessing_scripts(tiny_data, n):
    for train in (_small(), tiny_data.train):
        users, counts, length = cooccurrence_neighbours(train, n)
        for u, expected in enumerate(_naive_lists(sp.csr_matrix(train), n)):
            assert length[u] == len(expected)
            assert users[u, : length[u]].tolist() == [v for v, _ in expected]
            assert counts[u, : length[u]].tolist() == [c for _, c in expected]


def test_ties_go_to_a_random_choice_not_to_the_lowest_ids():
    # user 0 shares item 0 with users 1..200 and item 1 with users 1..3 (count 2): the three
    # come first, then 7 of the 197 users tied at 1, drawn from all of them, not users 4..10
    rows = [0, 0] + list(range(1, 201)) + [1, 2, 3]
    cols = [0, 1] + [0] * 200 + [1, 1, 1]
    train = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(201, 2))
    by_index = cooccurrence_neighbours(train, 10)[0][0]
    assert by_index.tolist() == list(range(1, 11))
    drawn = [cooccurrence_neighbours(train, 10, np.random.default_rng(s))[0][0] for s in range(2)]
    for users in drawn:
        assert sorted(users[:3].tolist()) == [1, 2, 3]
        assert set(users[3:].tolist()) <= set(range(4, 201)) and len(set(users[3:])) == 7
        assert users[3:].mean() > 40  # the lowest ids would give 7.0
    assert drawn[0][3:].tolist() != drawn[1][3:].tolist()


def test_padding_draws_from_the_users_own_list_and_weights_are_the_softmax_of_counts():
    k = 5
    graph = UserCooccurrenceGraph(_small(), k)
    lists = _naive_lists(_small(), 200)
    slots, weights = graph.slots.numpy(), graph.weights.numpy()
    for u, expected in enumerate(lists):
        if not expected:  # no neighbour: no message
            assert (weights[u] == 0).all()
            continue
        mine = dict(expected)
        n = min(len(expected), k)
        kept = slots[u, :n].tolist()
        assert [mine[v] for v in kept] == [c for _, c in expected[:n]]  # count order kept
        assert len(set(kept)) == n
        assert set(slots[u]) <= set(mine)  # padding copies the user's own neighbours
        counts = np.array([mine[v] for v in slots[u]], dtype=np.float64)
        softmax = np.exp(counts - counts.max()) / np.exp(counts - counts.max()).sum()
        np.testing.assert_allclose(weights[u], softmax, rtol=1e-6)


def test_padding_is_redrawn_from_the_filled_slots_every_epoch():
    """Slot j copies one of slots 0..j-1: user 4's one neighbour fills every slot; user 3's
    three neighbours keep slots 0-2 and slots 3-4 take each of them over the epochs."""
    graph = UserCooccurrenceGraph(_small(), 5)
    rng = np.random.default_rng(1)
    drawn, kept = set(), graph.slots[3, :3].tolist()
    assert sorted(kept) == [0, 1, 2]
    for _ in range(30):
        graph.resample(rng)
        assert graph.slots[4].tolist() == [0] * 5
        assert graph.slots[3, :3].tolist() == kept
        drawn.update((j, int(graph.slots[3, j])) for j in (3, 4))
    assert drawn == {(j, v) for j in (3, 4) for v in (0, 1, 2)}


def test_mean_weights_and_resampling_change_only_the_short_lists(tiny_data):
    graph = UserCooccurrenceGraph(tiny_data.train, 40, "mean")
    assert torch.allclose(graph.weights, torch.full_like(graph.weights, 1 / 40))
    full = torch.from_numpy(graph.length >= 40)
    before = graph.slots.clone()
    graph.resample(np.random.default_rng(5))
    assert torch.equal(graph.slots[full], before[full])
    assert not torch.equal(graph.slots[~full], before[~full])


def test_aggregate_is_the_dense_product_and_survives_a_state_dict_round_trip(tiny_data):
    graph = UserCooccurrenceGraph(tiny_data.train, 40)
    graph.resample(np.random.default_rng(2))
    x = torch.randn(tiny_data.n_users, 3, requires_grad=True)
    dense = torch.zeros(tiny_data.n_users, tiny_data.n_users)
    for u in range(tiny_data.n_users):  # W[u, v] = sum of u's slot weights naming v
        for s in range(40):
            dense[u, graph.slots[u, s]] += graph.weights[u, s]
    torch.testing.assert_close(graph.aggregate(x), dense @ x)
    torch.testing.assert_close(graph.dense(), dense)
    g = torch.randn(tiny_data.n_users, 3)
    (grad,) = torch.autograd.grad((graph.aggregate(x) * g).sum(), x)
    torch.testing.assert_close(grad, dense.T @ g)
    other = UserCooccurrenceGraph(tiny_data.train, 40)  # drawn with seed 0
    other.load_state_dict(graph.state_dict())
    torch.testing.assert_close(other.aggregate(x), graph.aggregate(x))
