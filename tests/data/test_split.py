"""split_per_user and kcore_filter on their own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cranerec.data import PAPER_SPLIT_SEEDS, kcore_filter, split_per_user
from cranerec.data.split import resolve_split_seed


def split_counts(labels: np.ndarray, users: np.ndarray, n_users: int) -> np.ndarray:
    """[n_users, 3] counts of train/valid/test labels per user."""
    out = np.zeros((n_users, 3), dtype=int)
    np.add.at(out, (users, labels.astype(int)), 1)
    return out


def grouped_users(sizes: list[int], seed: int = 0) -> np.ndarray:
    """User codes with ``sizes[u]`` interactions for user u, in shuffled row order."""
    users = np.repeat(np.arange(len(sizes)), sizes)
    return np.random.default_rng(seed).permutation(users)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, (1, 0, 0)), (2, (2, 0, 0)), (3, (1, 1, 1)), (4, (2, 1, 1)), (10, (8, 1, 1)),
     (15, (11, 2, 2)), (30, (24, 3, 3)), (100, (80, 10, 10))],
)  # fmt: skip
def test_8_1_1_counts_per_user(n, expected):
    users = grouped_users([n, 7])
    labels = split_per_user(users, seed=3, ratios=[0.8, 0.1, 0.1])
    assert tuple(split_counts(labels, users, 2)[0]) == expected


@pytest.mark.parametrize("ratios", [[0.8, 0.1, 0.1], [0.0, 0.5, 0.5], [0.2, 0.0, 0.8], [1, 1, 1]])
def test_every_user_keeps_a_training_interaction(ratios):
    sizes = list(range(1, 41))
    users = grouped_users(sizes, seed=1)
    counts = split_counts(split_per_user(users, seed=5, ratios=ratios), users, len(sizes))
    assert counts[:, 0].min() >= 1
    np.testing.assert_array_equal(counts.sum(axis=1), sizes)


def test_ratios_are_normalised():
    users = grouped_users([20] * 5)
    a = split_per_user(users, seed=1, ratios=[0.8, 0.1, 0.1])
    b = split_per_user(users, seed=1, ratios=[8, 1, 1])
    np.testing.assert_array_equal(a, b)


def test_seed_reproduces_and_changes_assignment_but_not_counts():
    users = grouped_users([12] * 20)
    a = split_per_user(users, seed=9, ratios=[0.8, 0.1, 0.1])
    np.testing.assert_array_equal(a, split_per_user(users, seed=9, ratios=[0.8, 0.1, 0.1]))
    b = split_per_user(users, seed=10, ratios=[0.8, 0.1, 0.1])
    assert (a != b).any()
    np.testing.assert_array_equal(split_counts(a, users, 20), split_counts(b, users, 20))


def test_split_is_spread_over_positions():
    # Every position of a user's rows ends up in test for some seed: the split is not "last n".
    users = np.zeros(10, dtype=int)
    in_test = np.zeros(10, dtype=bool)
    for seed in range(60):
        in_test |= split_per_user(users, seed=seed, ratios=[0.8, 0.1, 0.1]) == 2
    assert in_test.all()


def test_paper_split_seeds():
    assert PAPER_SPLIT_SEEDS["paper1"] == 9
    assert resolve_split_seed("paper1") == 9
    assert resolve_split_seed("paper5") == 2023
    assert resolve_split_seed("123") == 123
    assert resolve_split_seed(7) == 7
    with pytest.raises(ValueError, match="paper1"):
        resolve_split_seed("paper9")


def test_kcore_single_pass_would_not_suffice():
    rows = [(u, i) for u in "BCD" for i in "pqrs"] + [("A", i) for i in "pqrz"]
    df = pd.DataFrame(rows, columns=["user", "item"])
    out = kcore_filter(df, "user", "item", user_min=4, item_min=2)
    assert set(out["user"]) == {"B", "C", "D"}
    assert set(out["item"]) == {"p", "q", "r", "s"}
    # The result is a fixed point: every user and item meets its minimum.
    assert out["user"].value_counts().min() >= 4
    assert out["item"].value_counts().min() >= 2


def test_kcore_cascades_over_several_rounds():
    # A chain: dropping z1 drops A, which drops y (only A and one other liked it), which
    # drops E, ... each round removes the next link.
    rows = [(u, i) for u in "BCDF" for i in "pqrs"]
    rows += [("A", i) for i in ("p", "q", "y", "z1")]
    rows += [("E", i) for i in ("p", "q", "r", "y")]
    df = pd.DataFrame(rows, columns=["user", "item"])
    out = kcore_filter(df, "user", "item", user_min=4, item_min=2)
    assert set(out["user"]) == {"B", "C", "D", "F"}
    assert "y" not in set(out["item"])


def test_kcore_minimum_of_one_keeps_everything():
    df = pd.DataFrame({"user": ["a", "b", "b"], "item": ["x", "x", "y"]})
    assert len(kcore_filter(df, "user", "item", user_min=1, item_min=0)) == 3
