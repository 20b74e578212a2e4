"""K-core filtering and the paper's random per-user 8:1:1 split."""

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


def split_per_user(user_codes: np.ndarray, seed: int, ratios: list[float]) -> np.ndarray:
    """Labels 0/1/2 (train/valid/test) splitting each user's interactions at random.

    For a user with n interactions, ``round(n * r_valid)`` go to valid and ``round(n * r_test)``
    to test, each at least 1 when n >= 3 and the ratio is positive; the rest (at least one) is
    training. The permutation comes from ``seed`` alone (independent of the training seed).
    """
    r = np.asarray(ratios, dtype=np.float64) / np.sum(ratios)
    user_codes = np.asarray(user_codes, dtype=np.int64)
    rng = np.random.default_rng(seed)
    keys = rng.random(len(user_codes))
    order = np.lexsort((keys, user_codes))  # grouped by user, random inside each group
    counts = np.bincount(user_codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(user_codes), dtype=np.int64)
    rank[order] = np.arange(len(user_codes)) - np.repeat(starts, counts)
    n_valid = np.floor(counts * r[1] + 0.5).astype(np.int64)
    n_test = np.floor(counts * r[2] + 0.5).astype(np.int64)
    enough = counts >= 3
    n_valid = np.where(enough & (r[1] > 0), np.maximum(n_valid, 1), n_valid)
    n_test = np.where(enough & (r[2] > 0), np.maximum(n_test, 1), n_test)
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
