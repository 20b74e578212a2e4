"""Invalid input is a DataError naming the file, the row (where there is one) and the problem;
cold users/items in valid/test are a DataWarning with counts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cranerec.data import DataError, DataWarning, load_dataset

from .builders import (
    N_ITEMS,
    N_USERS,
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


def test_item_id_beyond_feature_rows_names_both_files(mmrec_dir):
    rows = toy_rows()
    rows[3][1] = N_ITEMS  # image/text features have N_ITEMS rows
    write_inter(mmrec_dir, rows)
    # either file may be the wrong one: the message names both and both counts
    with raises("_feat.npy", f"{N_ITEMS} rows", "toy.inter has", f"{N_ITEMS + 1} items"):
        load(mmrec_dir)


def test_user_ids_not_contiguous(tmp_path):
    rows = [[u if u < 2 else u + 1, *rest] for u, *rest in toy_rows()]  # users 0, 1, 3, 4
    inter = write_inter(tmp_path / "d", rows)
    with raises(str(inter), "user ids are not contiguous", "first: 2"):
        load(tmp_path / "d")


def test_feature_rows_beyond_the_inter_items_blame_the_feature_file(mmrec_dir):
    write_feat(mmrec_dir, "image", toy_features(n_items=N_ITEMS + 2))
    write_feat(mmrec_dir, "text", toy_features(n_items=N_ITEMS + 2))
    with raises("image_feat.npy", f"{N_ITEMS + 2} rows", "toy.inter has", f"{N_ITEMS} items"):
        load(mmrec_dir)


def test_feature_file_one_row_short_is_blamed_not_the_inter(mmrec_dir):
    # bug: the item count came from the feature rows, so the .inter's last item was reported
    # as "out of range" in the .inter
    write_feat(mmrec_dir, "image", toy_features(n_items=N_ITEMS - 1))
    with raises("image_feat.npy", f"{N_ITEMS - 1} rows", f"{N_ITEMS} items"):
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


def test_complex_features_are_refused(mmrec_dir):
    write_feat(mmrec_dir, "image", np.ones((N_ITEMS, 3), dtype=np.complex64))
    with raises("image_feat.npy", "not real numbers"):
        load(mmrec_dir)


@pytest.mark.parametrize("rows", [N_ITEMS + 1, 10**11])
def test_a_header_declaring_more_than_the_file_holds_is_refused_before_reading(mmrec_dir, rows):
    # a cut-short file, or a crafted header that made np.load allocate terabytes
    path = mmrec_dir / "image_feat.npy"
    with open(path, "wb") as f:
        header = {"descr": "<f4", "fortran_order": False, "shape": (rows, 8)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(np.zeros((N_ITEMS, 8), dtype="<f4").tobytes())
    with raises("image_feat.npy", "its header declares"):
        load(mmrec_dir)


def test_unreadable_feature_file(mmrec_dir):
    (mmrec_dir / "image_feat.npy").write_bytes(b"definitely not npy")
    with raises("image_feat.npy", "not a readable .npy"):
        load(mmrec_dir)


def test_an_inter_file_that_is_not_utf8_names_its_line(mmrec_dir):
    inter = mmrec_dir / "toy.inter"
    lines = inter.read_bytes().splitlines(keepends=True)
    inter.write_bytes(b"".join(lines[:3]) + b"0\t1\xe9\t1\t0\t0\n" + b"".join(lines[3:]))
    with raises("toy.inter", "line 4 is not UTF-8 text"):
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


def test_a_valid_split_covering_few_users_warns_with_counts(tmp_path):
    """A re-split that leaves most users without a validation item still loads, and says that
    early stopping rests on the few it has (1 of 40 users here)."""
    train = [(u, i) for u in range(40) for i in (u % 7, (u + 1) % 7, (u + 2) % 7)]
    splits = {"train": train, "valid": [(0, 5)], "test": [(u, (u + 3) % 7) for u in range(40)]}
    write_inter(tmp_path / "d", toy_rows(splits))
    with pytest.warns(DataWarning, match=r"the valid split covers only 1 of the 40 users"):
        load(tmp_path / "d")
    splits["valid"] = [(u, (u + 4) % 7) for u in range(2)]  # 2 of 40: 5%, no warning
    write_inter(tmp_path / "e", toy_rows(splits))
    load(tmp_path / "e")


def test_warm_dataset_does_not_warn(mmrec_dir, matrices_dir):
    # pytestmark turns any DataWarning into an error.
    load(mmrec_dir)
    load(matrices_dir)


# ---------------------------------------------------------------------------- the hardening probe


def test_an_absurd_id_is_refused_before_allocating_for_it(tmp_path):
    # bug: user id 999999999999 allocated a 931 GiB table of flags (MemoryError)
    rows = toy_rows() + [[999_999_999_999, 1, 1, 0, 0]]
    inter = write_inter(tmp_path / "d", rows)
    with raises(str(inter), "user ids are not contiguous", "0..999999999999"):
        load(tmp_path / "d")


def test_an_id_beyond_int64_is_too_large_not_negative(tmp_path):
    # bug: 1e20 wrapped to -9223372036854775808 and was reported as a negative id
    rows = toy_rows() + [["1e20", 1, 1, 0, 0]]
    inter = write_inter(tmp_path / "d", rows)
    with raises(str(inter), "row 22:", "'1e20' is too large"):
        load(tmp_path / "d")


def test_a_utf8_bom_is_not_part_of_the_first_column_name(tmp_path):
    # bug: "\ufeffuserID" did not match userID, so the header looked like it lacked a column
    inter = write_inter(tmp_path / "d", toy_rows())
    inter.write_bytes(b"\xef\xbb\xbf" + inter.read_bytes())
    assert load(tmp_path / "d").n_users == N_USERS


def test_an_empty_inter_file_is_named(tmp_path):
    # bug: "No columns to parse from file", without the file's name
    d = tmp_path / "d"
    d.mkdir()
    (d / "toy.inter").write_bytes(b"")
    with raises("toy.inter", "empty file"):
        load(d)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: np.save(p, np.float32(3.0)), "shape ()"),  # bug: IndexError
        (lambda p: p.write_bytes(b""), "not a readable .npy array"),  # bug: EOFError
        (lambda p: np.savez(open(p, "wb"), a=np.zeros((6, 4))), "an .npz archive"),  # noqa: SIM115
        (lambda p: np.save(p, np.ones((N_ITEMS, 0), np.float32)), "width >= 1"),  # was accepted
    ],
)
def test_a_feature_file_that_is_not_items_x_width_is_named(mmrec_dir, make, fragment):
    make(mmrec_dir / "image_feat.npy")
    with raises("image_feat.npy", fragment):
        load(mmrec_dir)


def test_a_matrix_shape_absurd_for_its_entries_is_refused_before_allocating(tmp_path):
    # a shape far beyond the entries it holds (safe_pickle caps shapes at 10**7 outright)
    d = write_matrices(tmp_path / "m", shape=(2_000_000, N_ITEMS))
    with raises(str(d), "2000000 x 6", "the shape is likely wrong"):
        load(d)
