"""The per-user splits (random, temporal, leave-last-out) and kcore_filter on their own."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cranerec.data import PAPER_SPLIT_SEEDS, kcore_filter, split_per_user
from cranerec.data.split import resolve_split_seed, split_leave_last_out, split_temporal


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


# ---------------------------------------------------------------------------- time-ordered splits


def naive_history(users: np.ndarray, times: np.ndarray) -> dict[int, list[int]]:
    """Each user's row indices, earliest first; of equal times the later row is later."""
    rows: dict[int, list[int]] = {}
    for i, u in enumerate(users.tolist()):
        rows.setdefault(u, []).append(i)
    return {u: sorted(r, key=lambda i: (times[i], i)) for u, r in rows.items()}


def naive_temporal(users: np.ndarray, times: np.ndarray) -> np.ndarray:
    """MMRec's 8:1:1 in time order, one user at a time: train round(0.8n), valid round(0.1n)
    (half to even, exact fractions), the rest test; 3 <= n*0.1 < 1: one valid and one test; n < 3:
    all train."""
    labels = np.zeros(len(users), dtype=int)
    for hist in naive_history(users, times).values():
        n = len(hist)
        if n < 3:
            continue
        if Fraction(n, 10) < 1:
            n_train, n_valid = n - 2, 1
        else:
            n_train, n_valid = round(Fraction(8 * n, 10)), round(Fraction(n, 10))
        for pos, i in enumerate(hist):
            labels[i] = 0 if pos < n_train else 1 if pos < n_train + n_valid else 2
    return labels


def naive_last(users: np.ndarray, times: np.ndarray) -> np.ndarray:
    labels = np.zeros(len(users), dtype=int)
    for hist in naive_history(users, times).values():
        if len(hist) >= 3:
            labels[hist[-1]], labels[hist[-2]] = 2, 1
    return labels


def random_log(seed: int, n_users: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """User codes (histories of 1..40, rows shuffled) and times with many ties."""
    rng = np.random.default_rng(seed)
    users = grouped_users(rng.integers(1, 41, size=n_users).tolist(), seed=seed)
    return users, rng.integers(0, 6, size=len(users)).astype(float)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, (1, 0, 0)), (2, (2, 0, 0)), (3, (1, 1, 1)), (9, (7, 1, 1)), (10, (8, 1, 1)),
     (13, (10, 1, 2)), (15, (12, 2, 1)), (25, (20, 2, 3)), (35, (28, 4, 3))],
)  # fmt: skip
def test_temporal_split_has_mmrecs_counts_per_user(n, expected):
    users = grouped_users([n, 7])
    times = np.random.default_rng(n).permutation(len(users)).astype(float)
    labels = split_temporal(users, times, [0.8, 0.1, 0.1])
    assert tuple(split_counts(labels, users, 2)[0]) == expected


def test_temporal_split_puts_the_latest_in_test_then_valid_then_train():
    times = np.random.default_rng(0).permutation(20).astype(float) * 10  # shuffled rows
    labels = split_temporal(np.zeros(20, dtype=int), times, [0.8, 0.1, 0.1])
    by_time = labels[np.argsort(times)]
    np.testing.assert_array_equal(by_time, [0] * 16 + [1, 1] + [2, 2])


def test_temporal_split_of_equal_times_counts_the_later_row_as_later():
    labels = split_temporal(np.zeros(10, dtype=int), np.zeros(10), [0.8, 0.1, 0.1])
    np.testing.assert_array_equal(labels, [0] * 8 + [1, 2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_temporal_split_matches_a_per_user_loop(seed):
    users, times = random_log(seed)
    np.testing.assert_array_equal(
        split_temporal(users, times, [0.8, 0.1, 0.1]), naive_temporal(users, times)
    )


def test_temporal_split_reproduces_mmrecs_sports_x_label():
    path = Path(__file__).resolve().parents[2].parent / "shared/datasets/amazon-sports/sports.inter"
    if not path.is_file():
        pytest.skip(f"MMRec's Amazon-Sports release not available at {path}")
    df = pd.read_csv(path, sep="\t", usecols=["userID", "timestamp", "x_label"])
    labels = split_temporal(df["userID"].to_numpy(), df["timestamp"].to_numpy(), [0.8, 0.1, 0.1])
    np.testing.assert_array_equal(labels, df["x_label"].to_numpy())


def test_leave_last_out_tests_the_last_and_validates_the_second_last():
    times = np.array([5.0, 1.0, 9.0, 3.0, 7.0])
    labels = split_leave_last_out(np.zeros(5, dtype=int), times)
    np.testing.assert_array_equal(labels, [0, 0, 2, 0, 1])


def test_leave_last_out_keeps_users_with_fewer_than_three_in_training():
    users = np.array([0, 1, 1, 2, 2, 2])
    labels = split_leave_last_out(users, np.array([1.0, 1.0, 2.0, 1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(labels, [0, 0, 0, 0, 1, 2])


@pytest.mark.parametrize("seed", [0, 1])
def test_leave_last_out_matches_a_per_user_loop(seed):
    users, times = random_log(seed)
    np.testing.assert_array_equal(split_leave_last_out(users, times), naive_last(users, times))


def naive_random(users: np.ndarray, seed: int, ratios: list[float]) -> np.ndarray:
    """The random split as it always was: each user's rows in the order of one uniform key per
    row (from ``seed``); the first round-half-up(n * r_test) test, the next valid (each at least 1
    when n >= 3), at least one left for training."""
    keys = np.random.default_rng(seed).random(len(users))
    r = np.asarray(ratios, dtype=float) / np.sum(ratios)
    labels = np.zeros(len(users), dtype=int)
    for u in np.unique(users):
        rows = sorted(np.flatnonzero(users == u).tolist(), key=lambda i: keys[i])
        n = len(rows)
        n_valid, n_test = int(np.floor(n * r[1] + 0.5)), int(np.floor(n * r[2] + 0.5))
        if n >= 3:
            n_valid = max(n_valid, 1) if r[1] > 0 else n_valid
            n_test = max(n_test, 1) if r[2] > 0 else n_test
        over = max(n_valid + n_test - (n - 1), 0)
        n_test -= min(over, n_test)
        n_valid -= max(n_valid + n_test - (n - 1), 0)
        for pos, i in enumerate(rows):
            labels[i] = 2 if pos < n_test else 1 if pos < n_test + n_valid else 0
    return labels


@pytest.mark.parametrize("ratios", [[0.8, 0.1, 0.1], [0.6, 0.2, 0.2], [1, 1, 1]])
def test_random_split_is_unchanged(ratios):
    users, _ = random_log(4)
    np.testing.assert_array_equal(split_per_user(users, 9, ratios), naive_random(users, 9, ratios))
