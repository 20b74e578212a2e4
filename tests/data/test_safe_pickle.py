"""Crafted pickled matrices: a sparse object's arrays come out of the pickle unchecked, and
scipy's C code trusts them (an ``indptr`` past the end corrupted memory: segfaults, "double free
or corruption", heap garbage in messages). Every array is now checked before scipy sees it."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from cranerec.data import DataError
from cranerec.data.safe_pickle import load_sparse_pickle


def crafted_csr(**state) -> sp.csr_matrix:
    """A 3 x 3 identity CSR whose internals are then overwritten, as a crafted file would be."""
    m = sp.csr_matrix(np.eye(3, dtype=np.float32))
    m.__dict__.update(state)
    return m


def write(tmp_path, obj, name="trnMat.pkl"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


BAD = {
    "indptr past the end": (
        lambda: crafted_csr(indptr=np.array([0, 1, 2, 10**6], dtype=np.int32)),
        "indptr does not rise from 0",
    ),
    "indptr not monotone": (
        lambda: crafted_csr(indptr=np.array([0, 2, 1, 3], dtype=np.int32)),
        "indptr does not rise",
    ),
    "indptr of the wrong length": (
        lambda: crafted_csr(indptr=np.array([0, 3], dtype=np.int32)),
        "indptr has 2 entries",
    ),
    "column index out of range": (
        lambda: crafted_csr(indices=np.array([0, 1, 7], dtype=np.int32)),
        "entry 2: column index 7 is out of range for a 3 x 3 matrix",
    ),
    "float indices": (
        lambda: crafted_csr(indices=np.array([0.0, 1.0, 2.0])),
        "indices has dtype float64, not integers",
    ),
    "data shorter than indices": (
        lambda: crafted_csr(data=np.ones(2, dtype=np.float32)),
        "2 values for 3 indices",
    ),
    "negative value": (
        lambda: crafted_csr(data=np.array([1.0, -1.0, 1.0], dtype=np.float32)),
        "entry 1: a negative value is not an interaction",
    ),
    "NaN value": (
        lambda: crafted_csr(data=np.array([1.0, np.nan, 1.0], dtype=np.float32)),
        "entry 1: a value is NaN or infinite",
    ),
    "absurd shape": (
        lambda: crafted_csr(_shape=(10**12, 3), indptr=np.array([0, 1, 2, 3])),
        "is not believable for a file of this size",
    ),
    "shape not integers": (lambda: crafted_csr(_shape=("3", 3)), "is not two integers"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_crafted_matrix_is_a_clear_error(tmp_path, case):
    make, message = BAD[case]
    path = write(tmp_path, make())
    with pytest.raises(DataError, match=rf"{path.name}: .*{message}"):
        load_sparse_pickle(path)


def test_coo_coordinates_of_different_lengths(tmp_path):
    m = sp.coo_matrix(np.eye(3))
    m.__dict__["coords"] = (np.array([0, 1, 2]), np.array([0, 1]))
    with pytest.raises(DataError, match="row, col and data have lengths 3, 2, 3"):
        load_sparse_pickle(write(tmp_path, m))


@pytest.mark.parametrize("fmt", ["coo", "csr", "csc"])
def test_valid_matrices_of_every_accepted_format_load_unchanged(tmp_path, fmt):
    dense = np.zeros((4, 5), dtype=np.float32)
    dense[[0, 1, 3, 3], [4, 0, 1, 2]] = 1
    loaded = load_sparse_pickle(write(tmp_path, sp.coo_matrix(dense).asformat(fmt)))
    assert loaded.shape == (4, 5)
    np.testing.assert_array_equal(loaded.toarray(), dense)


def test_crafted_indptr_does_not_crash_the_command(tmp_path):
    """The case that corrupted memory, end to end in a fresh process: exit 2 with one line."""
    good = sp.coo_matrix(np.eye(3))
    write(tmp_path, crafted_csr(indptr=np.array([0, 1, 2, 2**30], dtype=np.int32)))
    write(tmp_path, good, "valMat.pkl")
    write(tmp_path, good, "tstMat.pkl")
    proc = subprocess.run(
        [sys.executable, "-m", "cranerec.cli", "data", "describe", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "trnMat.pkl" in lines[0] and "indptr" in lines[0]
