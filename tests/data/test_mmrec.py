"""Loading an MMRec directory: <name>.inter (x_label 0/1/2) + <modality>_feat.npy."""

from __future__ import annotations

import numpy as np
import pytest

from cranerec.data import DataConfig, DataError, detect_format, load_dataset, load_mmrec

from .builders import (
    N_ITEMS,
    N_USERS,
    TOY_SPLITS,
    pairs_of,
    toy_features,
    toy_rows,
    write_feat,
    write_inter,
)

# The toy data has no cold users/items: any DataWarning here is a bug.
pytestmark = pytest.mark.filterwarnings("error::cranerec.data.DataWarning")


def test_loads_shapes_splits_and_features(mmrec_dir):
    ds = load_dataset(path=str(mmrec_dir))
    assert detect_format(mmrec_dir) == "mmrec"
    assert ds.name == "toy"
    assert (ds.n_users, ds.n_items) == (N_USERS, N_ITEMS)
    assert {s: ds.split(s).nnz for s in ("train", "valid", "test")} == {
        "train": 12, "valid": 4, "test": 4,
    }  # fmt: skip
    for split, pairs in TOY_SPLITS.items():
        assert pairs_of(ds.split(split)) == set(pairs)
        assert ds.split(split).dtype == np.float32
    assert ds.modalities == ["image", "text"]
    assert ds.features["image"].shape == (N_ITEMS, 8)
    assert ds.features["text"].shape == (N_ITEMS, 5)
    np.testing.assert_array_equal(ds.features["image"], np.load(mmrec_dir / "image_feat.npy"))
    assert ds.synthetic is False


def test_inter_file_path_loads_the_same_dataset(mmrec_dir):
    by_dir = load_dataset(path=str(mmrec_dir))
    by_file = load_dataset(path=str(mmrec_dir / "toy.inter"))
    assert by_file.fingerprint == by_dir.fingerprint


def test_float16_features_become_float32_with_same_values(mmrec_dir):
    half = toy_features(width=4, seed=7).astype(np.float16)
    write_feat(mmrec_dir, "image", half)
    ds = load_mmrec(DataConfig(path=str(mmrec_dir)))
    assert ds.features["image"].dtype == np.float32
    assert ds.features["text"].dtype == np.float32
    np.testing.assert_array_equal(ds.features["image"], half.astype(np.float32))


def test_only_files_named_modality_feat_npy_are_modalities(mmrec_dir):
    np.save(mmrec_dir / "notes.npy", np.zeros((N_ITEMS, 2)))
    (mmrec_dir / "README.txt").write_text("not a feature file")
    assert load_dataset(path=str(mmrec_dir)).modalities == ["image", "text"]


def test_feature_files_maps_a_modality_to_another_file_name(mmrec_dir):
    clip = toy_features(width=6, seed=9)
    np.save(mmrec_dir / "clip_vectors.npy", clip)
    ds = load_mmrec(DataConfig(path=str(mmrec_dir), modalities=["visual"],
                               feature_files={"visual": "clip_vectors.npy"}))  # fmt: skip
    assert ds.modalities == ["visual"]
    np.testing.assert_array_equal(ds.features["visual"], clip)


def test_directory_with_only_inter_file_has_no_modalities(tmp_path):
    write_inter(tmp_path / "plain", toy_rows())
    ds = load_dataset(path=str(tmp_path / "plain"))
    assert ds.modalities == []
    assert ds.features == {}
    assert (ds.n_users, ds.n_items) == (N_USERS, N_ITEMS)


def test_requesting_one_modality_loads_only_it(mmrec_dir):
    ds = load_mmrec(DataConfig(path=str(mmrec_dir), modalities=["image"]))
    assert ds.modalities == ["image"]


def test_empty_modality_list_loads_none(mmrec_dir):
    assert load_mmrec(DataConfig(path=str(mmrec_dir), modalities=[])).modalities == []


def test_requested_missing_modality_names_the_file(mmrec_dir):
    with pytest.raises(DataError, match=r"missing file: .*audio_feat\.npy") as e:
        load_mmrec(DataConfig(path=str(mmrec_dir), modalities=["image", "audio"]))
    assert "image" in str(e.value)  # says which modalities are there


def test_several_inter_files_need_a_choice(mmrec_dir):
    write_inter(mmrec_dir, toy_rows(), name="other")
    with pytest.raises(DataError, match="several .inter files"):
        load_dataset(path=str(mmrec_dir))
    ds = load_dataset(path=str(mmrec_dir), inter_file="other.inter")
    assert ds.name == "other"


def test_extra_columns_and_column_order_do_not_matter(tmp_path):
    rows = [[ts, x, i, "x", u] for u, i, _r, ts, x in toy_rows()]
    write_inter(tmp_path / "d", rows, header=["timestamp", "x_label", "itemID", "extra", "userID"])
    ds = load_dataset(path=str(tmp_path / "d"))
    for split, pairs in TOY_SPLITS.items():
        assert pairs_of(ds.split(split)) == set(pairs)


# ---------------------------------------------------------------------------- raw ids beside .inter

RAW_USERS = ["carol", "alice", "dave", "bob"]  # index order, not sorted: read as they are listed
RAW_ITEMS = ["B07", "A12", "C99", "B01", "Z00", "A02"]


def write_ids(directory, users=RAW_USERS, items=RAW_ITEMS) -> None:
    (directory / "user_ids.txt").write_text("".join(f"{u}\n" for u in users), encoding="utf-8")
    (directory / "item_ids.txt").write_text("".join(f"{i}\n" for i in items), encoding="utf-8")


def test_user_and_item_id_files_give_each_index_its_raw_id(mmrec_dir):
    write_ids(mmrec_dir)
    ds = load_mmrec(DataConfig(path=str(mmrec_dir)))
    assert ds.user_ids.tolist() == RAW_USERS
    assert ds.item_ids.tolist() == RAW_ITEMS
    assert pairs_of(ds.test) == set(TOY_SPLITS["test"])  # the indices are unchanged


def test_without_id_files_the_ids_are_the_indices(mmrec_dir):
    ds = load_mmrec(DataConfig(path=str(mmrec_dir)))
    assert ds.user_ids.tolist() == list(range(N_USERS))
    assert ds.item_ids.tolist() == list(range(N_ITEMS))


@pytest.mark.parametrize(
    ("users", "items", "message"),
    [(RAW_USERS[:3], RAW_ITEMS, r"user_ids\.txt: 3 user ids for 4 users"),
     (RAW_USERS, RAW_ITEMS + ["extra"], r"item_ids\.txt: 7 item ids for 6 items"),
     (RAW_USERS[:3] + ["alice"], RAW_ITEMS, r"user_ids\.txt: user ids are not unique")],
)  # fmt: skip
def test_an_id_file_that_does_not_match_the_inter_file_is_an_error(
    mmrec_dir, users, items, message
):
    write_ids(mmrec_dir, users, items)
    with pytest.raises(DataError, match=message):
        load_mmrec(DataConfig(path=str(mmrec_dir)))
