"""The built-in synthetic dataset: deterministic, marked synthetic, and with features that carry
real signal about what users interact with."""

from __future__ import annotations

import numpy as np
import pytest

from cranerec.data import load_dataset, make_synthetic


@pytest.fixture(scope="module")
def synth():
    return make_synthetic(seed=0)


def test_same_seed_same_dataset(synth):
    again = make_synthetic(seed=0)
    assert again.fingerprint == synth.fingerprint
    np.testing.assert_array_equal(again.features["image"], synth.features["image"])


def test_different_seed_different_dataset(synth):
    other = make_synthetic(seed=1)
    assert other.fingerprint != synth.fingerprint
    assert (other.train != synth.train).nnz > 0


def test_is_marked_synthetic_and_is_the_default_data(synth):
    assert synth.synthetic is True
    assert synth.name == "synthetic"
    assert synth.summary()["synthetic"] is True
    default = load_dataset()  # DataConfig() points at the synthetic data
    assert default.synthetic and default.fingerprint == synth.fingerprint


def test_shape_splits_and_modalities(synth):
    assert (synth.n_users, synth.n_items) == (1500, 800)
    assert synth.modalities == ["image", "text"]
    assert synth.features["image"].shape == (800, 64)
    assert synth.features["text"].shape == (800, 32)
    for feat in synth.features.values():
        assert feat.dtype == np.float32 and np.isfinite(feat).all()
    train, valid, test = (synth.split(s) for s in ("train", "valid", "test"))
    assert min(np.diff(train.indptr)) >= 1  # every user trains on something
    assert (train.multiply(valid)).nnz == 0 and (train.multiply(test)).nnz == 0
    assert valid.nnz > 0 and test.nnz > 0


def recall_at_k(scores: np.ndarray, train: np.ndarray, test: np.ndarray, k: int) -> float:
    """Mean over users with test items of |top-k ∩ test| / min(k, |test|), training items masked."""
    scores = np.where(train > 0, -np.inf, scores)
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    hits = np.take_along_axis(test, top, axis=1).sum(axis=1)
    n_test = test.sum(axis=1)
    users = n_test > 0
    return float(np.mean(hits[users] / np.minimum(n_test[users], k)))


def test_image_features_predict_held_out_items(synth):
    train, test = synth.train.toarray(), synth.test.toarray()
    feat = synth.features["image"].astype(np.float64)
    feat /= np.linalg.norm(feat, axis=1, keepdims=True)
    profile = train @ feat / train.sum(axis=1, keepdims=True)  # mean training-item feature
    profile /= np.linalg.norm(profile, axis=1, keepdims=True)
    recall = recall_at_k(profile @ feat.T, train, test, k=20)
    chance = 20 / synth.n_items
    assert recall > 3 * chance, (recall, chance)


def test_recall_helper_scores_random_ranking_near_chance(synth):
    # Guards the helper above: random scores land near the random-ranking expectation.
    train, test = synth.train.toarray(), synth.test.toarray()
    scores = np.random.default_rng(0).random(train.shape)
    recall = recall_at_k(scores, train, test, k=20)
    assert recall < 2 * 20 / synth.n_items
