"""Regression tests for data-layer bugs found in review."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from cranerec.data import DataError, Dataset, load_dataset


def test_raw_log_with_an_empty_user_cell_names_the_row(tmp_path):
    # bug: pandas turned the empty cell into NaN and the split crashed on a -1 code
    (tmp_path / "interactions.csv").write_text("user,item\nu1,a\n,b\nu1,c\n")
    with pytest.raises(DataError, match=r"row 3: empty user"):
        load_dataset(path=str(tmp_path))


def test_stored_zeros_are_not_interactions():
    # bug: Dataset binarised before eliminating zeros, so an explicit 0 became an interaction
    train = sp.csr_matrix(
        (np.array([1.0, 0.0]), (np.array([0, 1]), np.array([0, 1]))), shape=(2, 2)
    )
    eye = sp.csr_matrix(np.eye(2, dtype=np.float32))
    d = Dataset("z", train, eye, eye, np.arange(2), np.arange(2))
    assert d.train.nnz == 1


def test_pickled_matrix_with_out_of_range_index_names_the_file(tmp_path):
    # bug: scipy's own message named neither the file nor the entry
    good = sp.coo_matrix(np.eye(3))
    bad = sp.coo_matrix(np.eye(3))
    bad.row = bad.row.copy()
    bad.row[1] = 5
    for name, m in (("trnMat.pkl", good), ("valMat.pkl", bad), ("tstMat.pkl", good)):
        (tmp_path / name).write_bytes(pickle.dumps(m))
    with pytest.raises(DataError, match=r"valMat\.pkl: entry 1: row index 5 is out of range"):
        load_dataset(path=str(tmp_path))


def test_split_seed_changes_the_synthetic_split():
    # bug: data.split_seed was ignored for the built-in data
    a = load_dataset(path="synthetic")
    b = load_dataset(path="synthetic", split_seed="paper2")
    assert (a.train != b.train).nnz > 0
    assert ((a.train + a.valid + a.test) != (b.train + b.valid + b.test)).nnz == 0


def test_dataset_refuses_inconsistent_parts():
    eye = sp.csr_matrix(np.eye(2, dtype=np.float32))
    with pytest.raises(ValueError, match="user ids"):
        Dataset("x", eye, eye, eye, np.arange(3), np.arange(2))
    with pytest.raises(ValueError, match="modality 'image'"):
        Dataset("x", eye, eye, eye, np.arange(2), np.arange(2), {"image": np.zeros((3, 4))})
