"""K-core filtering and the per-user splits: random 8:1:1 (the paper's), temporal 8:1:1 (MMRec's,
in time order), leave-last-out, and ``full`` (everything in training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: The five split seeds of the CRANE paper (Sec. 4.3.1), selectable as ``paper1`` .. ``paper5``.
PAPER_SPLIT_SEEDS = {"paper1": 9, "paper2": 672, "paper3": 5368, "paper4": 12784, "paper5": 2023}


def resolve_split_seed(seed: str | int) -> int:
    """An integer split seed from an int, a numeric string or a name in ``PAPER_SPLIT_SEEDS``."""
    if isinstance(seed, int):
        return seed
    if seed in PAPER_SPLIT_SEEDS:
        return PAPER_SPLIT_SEEDS[seed]
    try:
        return int(seed)
    except ValueError:
        raise ValueError(
            f"split_seed {seed!r} is neither an integer nor one of {sorted(PAPER_SPLIT_SEEDS)}"
        ) from None


def kcore_filter(
    df: pd.DataFrame, user_col: str, item_col: str, user_min: int, item_min: int
) -> pd.DataFrame:
    """Drop users with fewer than ``user_min`` and items with fewer than ``item_min``
    interactions, repeatedly, until both hold (an iterative k-core)."""
    while True:
        n = len(df)
        if user_min > 1:
            counts = df[user_col].map(df[user_col].value_counts())
            df = df[counts >= user_min]
        if item_min > 1:
            counts = df[item_col].map(df[item_col].value_counts())
            df = df[counts >= item_min]
        if len(df) == n:
            return df


SPLIT_MODES = ("random", "temporal", "last", "full")


def split_per_user(user_codes: np.ndarray, seed: int, ratios: list[float]) -> np.ndarray:
    """Labels 0/1/2 (train/valid/test) splitting each user's interactions at random.

    For a user with n interactions, ``round(n * r_valid)`` go to valid and ``round(n * r_test)``
    to test, each at least 1 when n >= 3 and the ratio is positive; the rest (at least one) is
    training. The permutation comes from ``seed`` alone (independent of the training seed).
    """
    user_codes = np.asarray(user_codes, dtype=np.int64)
    keys = np.random.default_rng(seed).random(len(user_codes))
    return _split_by_rank(user_codes, np.lexsort((keys, user_codes)), ratios)


def split_temporal(user_codes: np.ndarray, times: np.ndarray, ratios: list[float]) -> np.ndarray:
    """Labels 0/1/2 splitting each user's history in time order (MMRec's protocol): the earliest
    interactions train, the next validate, the latest test, in MMRec's counts (``_mmrec_counts``).
    Of equal times, the later row counts as the later interaction."""
    user_codes = np.asarray(user_codes, dtype=np.int64)
    order = np.lexsort((-np.arange(len(user_codes)), -np.asarray(times), user_codes))
    return _split_by_rank(user_codes, order, ratios, _mmrec_counts)  # rank 0: the latest


def split_leave_last_out(user_codes: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Labels 0/1/2: each user's latest interaction is test, the one before is valid, the rest
    train; users with fewer than 3 interactions keep all of them in training."""
    user_codes = np.asarray(user_codes, dtype=np.int64)
    order = np.lexsort((-np.arange(len(user_codes)), -np.asarray(times), user_codes))
    rank = _rank_in_group(user_codes, order)
    enough = np.bincount(user_codes)[user_codes] >= 3
    labels = np.zeros(len(user_codes), dtype=np.int8)
    labels[enough & (rank == 0)] = 2
    labels[enough & (rank == 1)] = 1
    return labels


def _rank_in_group(user_codes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The position of each row among its user's rows in ``order`` (grouped by user)."""
    counts = np.bincount(user_codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(user_codes), dtype=np.int64)
    rank[order] = np.arange(len(user_codes)) - np.repeat(starts, counts)
    return rank


def _random_counts(counts: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(valid, test) counts per user of the random split: each rounded half up, at least 1 when
    the user has 3 or more interactions and the ratio is positive."""
    n_valid = np.floor(counts * r[1] + 0.5).astype(np.int64)
    n_test = np.floor(counts * r[2] + 0.5).astype(np.int64)
    enough = counts >= 3
    n_valid = np.where(enough & (r[1] > 0), np.maximum(n_valid, 1), n_valid)
    n_test = np.where(enough & (r[2] > 0), np.maximum(n_test, 1), n_test)
    return n_valid, n_test


def _mmrec_counts(counts: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(valid, test) counts per user of MMRec's split in time order: ``round(n * r_train)``
    train and ``round(n * r_valid)`` valid (half to even, as Python rounds), the rest test; a
    user whose history is too short for one of each (``n * r < 1``) gives one to valid and one to
    test. Reproduces the x_label of MMRec's Amazon releases from their time order."""
    n_train = np.round(np.round(counts * r[0], 9)).astype(np.int64)  # 9: no float noise at .5
    n_valid = np.round(np.round(counts * r[1], 9)).astype(np.int64)
    n_test = counts - n_train - n_valid
    short = (counts >= 3) & (np.minimum(counts * r[1], counts * r[2]) < 1)
    n_valid = np.where(short, np.int64(r[1] > 0), n_valid)
    n_test = np.where(short, np.int64(r[2] > 0), np.maximum(n_test, 0))
    n_valid = np.where(counts < 3, 0, n_valid)
    n_test = np.where(counts < 3, 0, n_test)
    return n_valid, n_test


def _split_by_rank(
    user_codes: np.ndarray, order: np.ndarray, ratios: list[float], rule=_random_counts
) -> np.ndarray:
    """Labels from each row's rank in ``order`` (grouped by user): the first ranks test, the next
    valid, the rest train, in the counts ``rule`` gives."""
    r = np.asarray(ratios, dtype=np.float64) / np.sum(ratios)
    counts = np.bincount(user_codes)
    rank = _rank_in_group(user_codes, order)
    n_valid, n_test = rule(counts, r)
    # Never leave a user without a training interaction.
    over = np.maximum(n_valid + n_test - (counts - 1), 0)
    n_test = n_test - np.minimum(over, n_test)
    over = np.maximum(n_valid + n_test - (counts - 1), 0)
    n_valid = n_valid - over
    u_test, u_valid = n_test[user_codes], n_valid[user_codes]
    labels = np.zeros(len(user_codes), dtype=np.int8)
    labels[rank < u_test] = 2
    labels[(rank >= u_test) & (rank < u_test + u_valid)] = 1
    return labels


def matrices_from_labels(
    users: np.ndarray, items: np.ndarray, labels: np.ndarray, n_users: int, n_items: int
) -> dict[str, sp.csr_matrix]:
    """Binary train/valid/test matrices from interaction arrays and their 0/1/2 split labels."""
    out = {}
    for code, split in enumerate(("train", "valid", "test")):
        sel = labels == code
        out[split] = sp.csr_matrix(
            (np.ones(int(sel.sum()), dtype=np.float32), (users[sel], items[sel])),
            shape=(n_users, n_items),
        )
    return out
