"""A restricted unpickler for the pickled-matrix format: it rebuilds scipy sparse matrices and numpy
arrays and refuses every other global, so a crafted file cannot run code on load."""

from __future__ import annotations

import codecs
import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from cranerec.data.errors import DataError

_SPARSE_CLASSES = {
    "coo_matrix", "csr_matrix", "csc_matrix", "dok_matrix", "lil_matrix",
    "coo_array", "csr_array", "csc_array",
}  # fmt: skip
_NUMPY_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    # pickle protocol 5 (pickle.HIGHEST_PROTOCOL) stores arrays as _frombuffer(buffer, ...)
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("scipy.sparse") and name in _SPARSE_CLASSES:
            return getattr(sp, name)
        if (module, name) in _NUMPY_GLOBALS:
            if module == "numpy":
                return getattr(importlib.import_module("numpy"), name)
            submodule = module.rsplit(".", 1)[1]  # multiarray or numeric
            try:
                mod = importlib.import_module(f"numpy._core.{submodule}")
            except ImportError:  # numpy < 2
                mod = importlib.import_module(f"numpy.core.{submodule}")
            return getattr(mod, name)
        if (module, name) == ("_codecs", "encode"):  # protocol 2 pickles bytes as encode(s, latin1)
            return codecs.encode
        raise DataError(
            f"{self.source}: refused to unpickle {module}.{name}; only scipy sparse matrices and "
            "numpy arrays are accepted in a pickled-matrix file"
        )


def load_sparse_pickle(path: str | Path) -> sp.coo_matrix:
    """Load one pickled scipy sparse matrix (``trnMat.pkl`` and friends) safely, as COO
    (duplicate entries are kept, so that callers can report them).

    Unpickling sets a sparse object's arrays without any check, and scipy's C code trusts them
    (an ``indptr`` past the end corrupts memory). So the object is never used: its raw arrays are
    read out, checked here (types, shape, lengths, ``indptr`` monotone and bounded, indices in
    range, values finite and not negative) and a new COO matrix is built from them."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing file: {path}")
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, str(path)).load()
    except DataError:
        raise
    except Exception as e:  # truncated or corrupt pickles raise many types
        raise DataError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
    if not sp.issparse(obj):
        raise DataError(f"{path}: expected a scipy sparse matrix, found {type(obj).__name__}")
    try:
        return _checked_coo(obj, path)
    except _BadMatrixError as e:
        raise DataError(f"{path}: {e}") from None


class _BadMatrixError(Exception):
    pass


def _max_dim(path: Path) -> int:
    """The largest number of rows or columns believable for a file of this size: shapes above it
    are refused before anything is allocated (a 10^8-user matrix in a small file)."""
    return max(10_000_000, 100 * path.stat().st_size)


def _array(state: dict, key: str, kind: str) -> np.ndarray:
    a = state.get(key)
    if not isinstance(a, np.ndarray) or a.ndim != 1:
        raise _BadMatrixError(f"invalid sparse matrix: {key} is not a 1-d array")
    if kind == "int" and not np.issubdtype(a.dtype, np.integer):
        raise _BadMatrixError(f"invalid sparse matrix: {key} has dtype {a.dtype}, not integers")
    if kind == "num" and not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise _BadMatrixError(f"invalid sparse matrix: {key} has dtype {a.dtype}, not numbers")
    return a.astype(np.int64) if kind == "int" else a.astype(np.float64)


def _in_range(idx: np.ndarray, n: int, what: str, shape: tuple[int, int]) -> None:
    bad = np.flatnonzero((idx < 0) | (idx >= n))
    if len(bad):
        raise _BadMatrixError(
            f"entry {bad[0]}: {what} index {idx[bad[0]]} is out of range for a "
            f"{shape[0]} x {shape[1]} matrix"
        )


def _checked_coo(obj: Any, path: Path) -> sp.coo_matrix:
    state = getattr(obj, "__dict__", {})
    shape = state.get("_shape")
    if (
        not isinstance(shape, tuple) or len(shape) != 2
        or not all(isinstance(n, int | np.integer) and not isinstance(n, bool) for n in shape)
    ):  # fmt: skip
        raise _BadMatrixError(f"invalid sparse matrix: shape {shape!r} is not two integers")
    n_rows, n_cols = int(shape[0]), int(shape[1])
    limit = _max_dim(path)
    if min(n_rows, n_cols) < 0 or max(n_rows, n_cols) > limit:
        raise _BadMatrixError(
            f"shape {n_rows} x {n_cols} is not believable for a file of this size "
            f"(at most {limit:,} rows or columns)"
        )
    fmt = getattr(obj, "format", None)
    if fmt in ("csr", "csc"):
        indptr, indices = _array(state, "indptr", "int"), _array(state, "indices", "int")
        data = _array(state, "data", "num")
        n_major, n_minor = (n_rows, n_cols) if fmt == "csr" else (n_cols, n_rows)
        if len(indptr) != n_major + 1:
            raise _BadMatrixError(
                f"indptr has {len(indptr)} entries for {n_major} {fmt[:2]} rows (+1)"
            )
        if indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(indices):
            raise _BadMatrixError(
                "invalid sparse matrix: indptr does not rise from 0 to the number of stored entries"
            )
        if len(data) != len(indices):
            raise _BadMatrixError(
                f"invalid sparse matrix: {len(data)} values for {len(indices)} indices"
            )
        _in_range(indices, n_minor, "column" if fmt == "csr" else "row", (n_rows, n_cols))
        major = np.repeat(np.arange(n_major, dtype=np.int64), np.diff(indptr))
        row, col = (major, indices) if fmt == "csr" else (indices, major)
    elif fmt == "coo":
        if "coords" in state:
            coords = state["coords"]
            if not isinstance(coords, tuple) or len(coords) != 2:
                raise _BadMatrixError("invalid sparse matrix: coords is not a pair of arrays")
            state = {**state, "row": coords[0], "col": coords[1]}
        row, col = _array(state, "row", "int"), _array(state, "col", "int")
        data = _array(state, "data", "num")
        if not len(row) == len(col) == len(data):
            raise _BadMatrixError(
                f"row, col and data have lengths {len(row)}, {len(col)}, {len(data)}"
            )
        _in_range(row, n_rows, "row", (n_rows, n_cols))
        _in_range(col, n_cols, "column", (n_rows, n_cols))
    else:
        raise _BadMatrixError(
            f"invalid sparse matrix: format {fmt!r} is not accepted (coo, csr or csc)"
        )
    if not np.all(np.isfinite(data)):
        raise _BadMatrixError(
            f"entry {np.flatnonzero(~np.isfinite(data))[0]}: a value is NaN or infinite "
            "(values must be finite, 1 for an interaction)"
        )
    if np.any(data < 0):
        raise _BadMatrixError(
            f"entry {np.flatnonzero(data < 0)[0]}: a negative value is not an interaction"
        )
    return sp.coo_matrix((data, (row, col)), shape=(n_rows, n_cols))
