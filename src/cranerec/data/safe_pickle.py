"""A restricted unpickler for the pickled-matrix format: it rebuilds scipy sparse matrices and numpy
arrays and refuses every other global, so a crafted file cannot run code on load."""

from __future__ import annotations

import codecs
import importlib
import pickle
from pathlib import Path
from typing import Any

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
    (duplicate entries are kept, so that callers can report them)."""
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
    if isinstance(obj, sp.coo_matrix):
        return obj  # indices are range-checked by the caller, which names the entry
    try:
        return sp.coo_matrix(obj)
    except ValueError as e:
        raise DataError(f"{path}: invalid sparse matrix ({e})") from None
