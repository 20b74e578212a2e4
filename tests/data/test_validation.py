"""Invalid input is a DataError naming the file, the row (where there is one) and the problem;
cold users/items in valid/test are a DataWarning with counts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cranerec.data import DataError, DataWarning, load_dataset

from .builders import (
    N_ITEMS,
    TOY_SPLITS,
    toy_features,
    toy_rows,
    write_feat,
    write_inter,
    write_matrices,
)

pytestmark = pytest.mark.filterwarnings("error::cranerec.data.DataWarning")


def load(path):
    return load_dataset(path=str(path))


def raises(*fragments: str):
    """pytest.raises(DataError) whose message must contain every fragment (literally)."""
    lookaheads = "".join(f"(?=.*{re.escape(f)})" for f in fragments)
    return pytest.raises(DataError, match="(?s)" + lookaheads)


# ---------------------------------------------------------------------------- missing files


def test_missing_path(tmp_path):
    with raises("data path not found", "nowhere"):
        load(tmp_path / "nowhere")


def test_directory_with_no_known_format(tmp_path):
    (tmp_path / "empty").mkdir()
    with raises("empty", "no known data format"):
        load(tmp_path / "empty")


def test_missing_matrix_file(matrices_dir):
    (matrices_dir / "valMat.pkl").unlink()
    with raises("missing file", "valMat.pkl"):
        load(matrices_dir)


def test_mmrec_format_forced_on_a_directory_without_inter(tmp_path):
    (tmp_path / "d").mkdir()
    with raises("missing file", ".inter", str(tmp_path / "d")):
        load_dataset(path=str(tmp_path / "d"), format="mmrec")


# ---------------------------------------------------------------------------- MMRec columns and ids


def test_missing_column(tmp_path):
    rows = [[u, i, x] for u, i, _r, _t, x in toy_rows()]
    inter = write_inter(tmp_path / "d", rows, header=["userID", "item", "x_label"])
    with raises(str(inter), "missing column", "itemID"):
        load(tmp_path / "d")


def test_comma_separated_inter_is_reported_as_missing_columns(tmp_path):
    inter = write_inter(tmp_path / "d", toy_rows(), sep=",")
    with raises(str(inter), "missing column", "tab-separated"):
        load(tmp_path / "d")


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [("userID", "abc", "userID 'abc' is not an integer"),
     ("itemID", "1.5", "itemID '1.5' is not an integer"),
     ("x_label", "", "x_label '' is not an integer"),
     ("x_label", "3", "x_label 3 is not 0, 1 or 2"),
     ("x_label", "-1", "x_label -1 is not 0, 1 or 2")],
)  # fmt: skip
def test_bad_value_names_file_row_and_problem(tmp_path, column, value, fragment):
    rows = toy_rows()
    rows[2][["userID", "itemID", "rating", "timestamp", "x_label"].index(column)] = value
    inter = write_inter(tmp_path / "d", rows)
    # The header is line 1, so the third data row is row 4.
    with raises(str(inter), "row 4:", fragment):
        load(tmp_path / "d")


def test_negative_id(tmp_path):
    rows = toy_rows()
    rows[5][0] = -2
    inter = write_inter(tmp_path / "d", rows)
    with raises(str(inter), "row 7:", "user id -2 is negative"):
        load(tmp_path / "d")


def test_item_id_beyond_feature_rows_is_out_of_range(mmrec_dir):
    rows = toy_rows()
    rows[3][1] = N_ITEMS  # image/text features have N_ITEMS rows
    write_inter(mmrec_dir, rows)
    with raises("toy.inter", "row 5:", f"item id {N_ITEMS} is out of range", "ids 0..5"):
        load(mmrec_dir)


def test_user_ids_not_contiguous(tmp_path):
    rows = [[u if u < 2 else u + 1, *rest] for u, *rest in toy_rows()]  # users 0, 1, 3, 4
    inter = write_inter(tmp_path / "d", rows)
    with raises(str(inter), "user ids are not contiguous", "first: 2"):
        load(tmp_path / "d")


def test_feature_rows_without_interactions_are_not_contiguous_item_ids(mmrec_dir):
    write_feat(mmrec_dir, "image", toy_features(n_items=N_ITEMS + 2))
    write_feat(mmrec_dir, "text", toy_features(n_items=N_ITEMS + 2))
    with raises("toy.inter", "item ids are not contiguous", "2 of 0..7 never appear"):
        load(mmrec_dir)


# ---------------------------------------------------------------------------- features


def test_mmrec_feature_with_too_few_rows(mmrec_dir):
    write_feat(mmrec_dir, "text", toy_features(n_items=N_ITEMS - 1))
    with raises("text_feat.npy", "'text'", f"{N_ITEMS - 1} rows", f"{N_ITEMS} items"):
        load(mmrec_dir)


def test_matrices_feature_rows_differ_from_items(matrices_dir):
    write_feat(matrices_dir, "audio", toy_features(n_items=N_ITEMS + 1))
    with raises("audio_feat.npy", f"{N_ITEMS + 1} rows", f"{N_ITEMS} items"):
        load(matrices_dir)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features(mmrec_dir, bad):
    feat = toy_features()
    feat[3, 1] = bad
    feat[5, 0] = bad
    write_feat(mmrec_dir, "image", feat)
    with raises("image_feat.npy", "NaN/inf", "2 row(s)", "first: row 3"):
        load(mmrec_dir)


def test_one_dimensional_feature(mmrec_dir):
    write_feat(mmrec_dir, "image", np.zeros(N_ITEMS, dtype=np.float32))
    with raises("image_feat.npy", "must be 2-D"):
        load(mmrec_dir)


def test_non_numeric_feature(mmrec_dir):
    write_feat(mmrec_dir, "image", np.array([["a"]] * N_ITEMS))
    with raises("image_feat.npy", "non-numeric"):
        load(mmrec_dir)


def test_unreadable_feature_file(mmrec_dir):
    (mmrec_dir / "image_feat.npy").write_bytes(b"definitely not npy")
    with raises("image_feat.npy", "not a readable .npy"):
        load(mmrec_dir)


# ---------------------------------------------------------------------------- duplicates


def test_mmrec_duplicate_within_a_split(tmp_path):
    rows = toy_rows()
    rows.insert(4, list(rows[1]))  # data row 5 repeats data row 2 (both train)
    inter = write_inter(tmp_path / "d", rows)
    with raises(str(inter), "1 duplicate interaction", "row 6 repeats row 3"):
        load(tmp_path / "d")


def test_mmrec_duplicate_across_splits(tmp_path):
    rows = toy_rows()
    u, i = TOY_SPLITS["train"][0]
    rows.append([u, i, 1, 0, 2])  # the first training pair again, as a test interaction
    inter = write_inter(tmp_path / "d", rows)
    with raises(str(inter), "duplicate", f"row {len(rows) + 1} repeats row 2", "across all splits"):
        load(tmp_path / "d")


def test_matrices_duplicate_within_a_split(tmp_path):
    splits = dict(TOY_SPLITS, test=TOY_SPLITS["test"] + [TOY_SPLITS["test"][1]])
    d = write_matrices(tmp_path / "m", splits)
    with raises("tstMat.pkl", "duplicate", "entry 4 repeats entry 1"):
        load(d)


def test_matrices_duplicate_across_splits(tmp_path):
    splits = dict(TOY_SPLITS, valid=TOY_SPLITS["valid"] + [TOY_SPLITS["train"][7]])
    d = write_matrices(tmp_path / "m", splits)
    with raises("duplicate", "valMat.pkl entry 4 repeats trnMat.pkl entry 7"):
        load(d)


# ---------------------------------------------------------------------------- splits


def test_empty_train_split_is_an_error(tmp_path):
    inter = write_inter(tmp_path / "d", toy_rows(dict(TOY_SPLITS, train=[])))
    with raises(str(inter), "the train split is empty"):
        load(tmp_path / "d")


@pytest.mark.parametrize("split", ["valid", "test"])
def test_empty_valid_or_test_split_loads_with_a_warning(tmp_path, split):
    """A `full` build keeps everything for training: it loads, and says it has no metrics."""
    write_inter(tmp_path / "d", toy_rows(dict(TOY_SPLITS, **{split: []})))
    with pytest.warns(DataWarning, match=f"the {split} split is empty: no {split} metrics"):
        data = load(tmp_path / "d")
    assert data.split(split).nnz == 0


def test_empty_split_matrices(tmp_path):
    d = write_matrices(tmp_path / "m", dict(TOY_SPLITS, valid=[]))
    with pytest.warns(DataWarning, match="the valid split is empty"):
        load(d)


def test_cold_users_and_items_warn_with_counts(tmp_path):
    splits = {
        "train": [p for p in TOY_SPLITS["train"] if p[0] != 3 and p[1] != 5],
        "valid": TOY_SPLITS["valid"] + [(0, 5)],  # item 5 only ever in valid
        "test": TOY_SPLITS["test"] + [(3, 4)],  # user 3 never in train
    }
    write_inter(tmp_path / "d", toy_rows(splits))
    with pytest.warns(DataWarning) as record:
        ds = load(tmp_path / "d")
    messages = sorted(str(w.message) for w in record if issubclass(w.category, DataWarning))
    assert len(messages) == 2
    test_msg, valid_msg = messages  # "the test split" < "the valid split"
    # valid: user 3 (3, 1) is cold; items 5 (1, 5) and (0, 5) are one cold item.
    assert "the valid split has 1 user(s) and 1 item(s) with no training interaction" in valid_msg
    # test: user 3 has (3, 2) and (3, 4): one cold user; items all seen in training.
    assert "the test split has 1 user(s) and 0 item(s)" in test_msg
    assert "toy.inter" in valid_msg
    assert ds.summary()["splits"]["valid"]["cold_items"] == 1
    assert ds.summary()["splits"]["test"]["cold_users"] == 1


def test_warm_dataset_does_not_warn(mmrec_dir, matrices_dir):
    # pytestmark turns any DataWarning into an error.
    load(mmrec_dir)
    load(matrices_dir)
