"""Synthetic data of any shape and user subsamples (the efficiency suite's dataset sizes)."""

import numpy as np
import pytest

from cranerec.config import ConfigError, from_dict
from cranerec.data import load_dataset, make_synthetic
from cranerec.data.loaders import DataConfig


def test_default_synthetic_data_is_unchanged():
    """Regression: drawing users in blocks must not change the built-in dataset."""
    assert make_synthetic().fingerprint == "035a675f956420ec"


def test_synthetic_shape_and_widths():
    data = load_dataset(path="synthetic", synthetic_users=300, synthetic_items=90, synthetic_interactions=7,
                        synthetic_widths={"image": 40, "text": 12})  # fmt: skip
    assert (data.n_users, data.n_items) == (300, 90)
    assert data.features["image"].shape == (90, 40) and data.features["text"].shape == (90, 12)
    n = data.train.nnz + data.valid.nnz + data.test.nnz
    assert 6 * 300 < n < 8 * 300 and data.synthetic


def test_subsample_keeps_a_fraction_of_users_with_all_their_interactions():
    full = make_synthetic(n_users=200, n_items=120, mean_interactions=12, seed=3)
    config = from_dict(DataConfig, {"path": "synthetic", "synthetic_users": 200, "synthetic_items": 120,
                                    "synthetic_interactions": 12, "synthetic_seed": 3, "subsample_users": 0.25})  # fmt: skip
    part = load_dataset(config)
    assert part.n_users == 50 and part.name == "synthetic-users0.25"
    users = np.searchsorted(full.user_ids, part.user_ids)
    items = np.searchsorted(full.item_ids, part.item_ids)
    for split in ("train", "valid", "test"):
        # every interaction of a kept user survives, in the kept items' columns
        assert part.split(split).nnz == full.split(split)[users].nnz
        np.testing.assert_array_equal(
            part.split(split).toarray(), full.split(split)[users][:, items].toarray()
        )
    np.testing.assert_array_equal(part.features["image"], full.features["image"][items])
    assert load_dataset(config).fingerprint == part.fingerprint  # seeded


@pytest.mark.parametrize(
    "bad",
    [
        {"subsample_users": 0},
        {"subsample_users": 1.5},
        {"synthetic_widths": {"audio": 8}},
        {"synthetic_interactions": 3},
    ],
)
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ConfigError):
        from_dict(DataConfig, {"path": "synthetic", **bad}, "data")
