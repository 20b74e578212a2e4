"""Negative sampling: one per positive, uniform over the pool, never a training positive."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cranerec.train.sampler import InteractionSampler


def test_every_interaction_once_and_negatives_are_never_positives(tiny_data):
    s = InteractionSampler(tiny_data.train)
    batches = list(s.epoch("triples", 100, np.random.default_rng(0), torch.device("cpu")))
    users = torch.cat([b.user_idx for b in batches]).numpy()
    pos = torch.cat([b.pos_idx for b in batches]).numpy()
    neg = torch.cat([b.neg_idx for b in batches]).numpy()
    assert len(users) == tiny_data.train.nnz
    got = sp.csr_matrix((np.ones(len(users)), (users, pos)), shape=tiny_data.train.shape)
    assert (got != tiny_data.train).nnz == 0
    assert not np.asarray(tiny_data.train[users.copy(), neg.copy()]).any()


def test_negatives_are_uniform_over_items():
    train = sp.csr_matrix(([1.0], ([0], [0])), shape=(1, 5))
    neg = InteractionSampler(train).negatives(
        np.zeros(40000, dtype=np.int64), np.random.default_rng(1)
    )
    counts = np.bincount(neg, minlength=5)
    assert counts[0] == 0
    assert np.all(np.abs(counts[1:] / 40000 - 0.25) < 0.015)


def test_seen_pool_excludes_items_without_training_interactions():
    train = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 1, 1], [0, 1, 2])), shape=(2, 6))
    neg = InteractionSampler(train, "seen").negatives(
        np.zeros(2000, dtype=np.int64), np.random.default_rng(0)
    )
    assert set(np.unique(neg)) == {1, 2}


def test_user_with_every_item_is_refused():
    train = sp.csr_matrix(np.ones((1, 3)))
    sampler = InteractionSampler(train)
    with pytest.raises(ValueError, match="every item of the negative pool"):
        next(sampler.epoch("triples", 2, np.random.default_rng(0), torch.device("cpu")))
    # models trained without negatives are not affected
    assert next(sampler.epoch("positives", 2, np.random.default_rng(0), torch.device("cpu")))


def test_positives_batches_have_no_negatives(tiny_data):
    b = next(
        InteractionSampler(tiny_data.train).epoch(
            "positives", 10, np.random.default_rng(0), torch.device("cpu")
        )
    )
    assert b.neg_idx is None and len(b.user_idx) == 10
