"""The in-memory Dataset: normalisation on construction, fingerprint and summary."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from cranerec.data import Dataset

from .builders import N_ITEMS, N_USERS, TOY_SPLITS, coo, toy_features


def make(splits=TOY_SPLITS, features=None, **kw) -> Dataset:
    if features is None:
        features = {"image": toy_features(width=4, seed=1), "text": toy_features(width=3, seed=2)}
    mats = {s: coo(pairs) for s, pairs in splits.items()}
    kw.setdefault("user_ids", np.arange(N_USERS))
    kw.setdefault("item_ids", np.arange(N_ITEMS))
    return Dataset(name=kw.pop("name", "toy"), features=features, **mats, **kw)


def test_matrices_are_binary_float32_csr_and_features_float32():
    mats = {s: coo(p) for s, p in TOY_SPLITS.items()}
    mats["train"] = sp.coo_matrix(mats["train"] * 4.0)  # ratings 4
    extra = coo([TOY_SPLITS["train"][0]])
    mats["train"] = sp.coo_matrix(mats["train"] + extra)  # one entry 5
    feats = {"image": toy_features().astype(np.float64)}
    ds = Dataset("t", user_ids=np.arange(N_USERS), item_ids=np.arange(N_ITEMS), features=feats,
                 **mats)  # fmt: skip
    for split in ("train", "valid", "test"):
        m = ds.split(split)
        assert sp.isspmatrix_csr(m) and m.dtype == np.float32
        assert set(m.data.tolist()) == {1.0}
    assert ds.train.nnz == len(TOY_SPLITS["train"])
    assert ds.features["image"].dtype == np.float32


def test_unknown_split_name():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        make().split("dev")


def test_same_content_same_fingerprint():
    a, b = make(), make(name="another name")
    assert a.fingerprint == b.fingerprint
    assert len(a.fingerprint) == 16
    int(a.fingerprint, 16)


def test_changing_one_interaction_changes_fingerprint():
    base = make().fingerprint
    moved = dict(TOY_SPLITS, test=[(0, 5)] + TOY_SPLITS["test"][1:])  # (0, 4) -> (0, 5)
    assert make(moved).fingerprint != base
    # The same pairs in another split is different data too.
    swapped = dict(TOY_SPLITS, valid=TOY_SPLITS["test"], test=TOY_SPLITS["valid"])
    assert make(swapped).fingerprint != base


def test_changing_one_feature_value_changes_fingerprint():
    feats = {"image": toy_features(width=4, seed=1), "text": toy_features(width=3, seed=2)}
    base = make(features={k: v.copy() for k, v in feats.items()}).fingerprint
    feats["text"][5, 2] += 1e-3
    assert make(features=feats).fingerprint != base


def test_modality_names_and_ids_are_part_of_the_fingerprint():
    feats = {"image": toy_features(width=4, seed=1)}
    base = make(features=feats).fingerprint
    assert make(features={"visual": feats["image"]}).fingerprint != base
    assert make(features=feats, item_ids=np.arange(N_ITEMS) + 100).fingerprint != base


def test_summary_counts():
    s = make().summary()
    assert (s["users"], s["items"], s["interactions"]) == (N_USERS, N_ITEMS, 20)
    assert s["sparsity"] == pytest.approx(1 - 20 / (N_USERS * N_ITEMS))
    assert s["splits"]["train"] == {
        "interactions": 12, "users": 4, "items": 6, "cold_users": 0, "cold_items": 0,
    }  # fmt: skip
    assert s["modalities"] == {"image": 4, "text": 3}
    assert s["fingerprint"] == make().fingerprint


def test_index_maps_raw_ids_to_indices():
    ds = make(user_ids=np.array(["a", "b", "c", "d"], dtype=object))
    assert ds.user_index == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert ds.item_index[5] == 5


def test_construction_leaves_the_callers_matrices_alone():
    ratings = sp.csr_matrix(coo(TOY_SPLITS["train"]) * 3.0, dtype=np.float32)
    before = ratings.copy()
    valid, test = (coo(TOY_SPLITS[s]) for s in ("valid", "test"))
    ds = Dataset("t", ratings, valid, test, np.arange(N_USERS), np.arange(N_ITEMS))
    assert set(ds.train.data.tolist()) == {1.0}
    assert (ratings != before).nnz == 0  # still the ratings, not binarised in place
