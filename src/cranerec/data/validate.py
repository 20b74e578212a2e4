"""Checks run before training. Each failure is a ``DataError`` naming the file, the row and the
problem; cold users/items in valid/test are a ``DataWarning`` with counts."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from cranerec.data.errors import DataError


class DataWarning(UserWarning):
    """Suspicious but usable data (e.g. users in the test split with no training interaction)."""


def check_features(
    features: dict[str, np.ndarray], n_items: int, files: dict[str, str], items_src: str = ""
) -> None:
    """Every modality is a 2-D finite array with one row per item (``items_src``: the file
    that says how many items there are, named beside the feature file when they disagree)."""
    for name, feat in features.items():
        src = files.get(name, name)
        if feat.ndim != 2:
            raise DataError(
                f"{src}: modality {name!r} must be 2-D [n_items, width], got shape {feat.shape}"
            )
        if feat.shape[0] != n_items:
            where = f"{items_src} has" if items_src else "the data has"
            raise DataError(
                f"{src}: modality {name!r} has {feat.shape[0]} rows but {where} {n_items} items "
                f"(ids 0..{n_items - 1}); one feature row per item index is required"
            )
        if not np.issubdtype(feat.dtype, np.number):
            raise DataError(f"{src}: modality {name!r} has non-numeric dtype {feat.dtype}")
        bad = ~np.isfinite(feat)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            raise DataError(
                f"{src}: modality {name!r} has NaN/inf values in {len(rows)} row(s) (first: row {rows[0]})"
            )


def check_no_duplicates(keys: np.ndarray, row_name: Callable[[int], str], src: str) -> None:
    """``keys`` are user*n_items+item codes of every interaction; ``row_name(i)`` says where entry
    ``i`` is in ``src`` (e.g. "row 7"). A duplicate pair is an error naming both places."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    dup = np.nonzero(sk[1:] == sk[:-1])[0]
    if len(dup):
        first, second = row_name(int(order[dup[0]])), row_name(int(order[dup[0] + 1]))
        raise DataError(
            f"{src}: {len(dup)} duplicate interaction(s); first: {second} repeats {first} "
            "(each user-item pair may appear once across all splits)"
        )


def check_splits(train: sp.csr_matrix, valid: sp.csr_matrix, test: sp.csr_matrix, src: str) -> None:
    """Training is not empty; warn about an empty valid or test split (a ``full`` build: models
    train for ``train.epochs`` and report no metrics of it), (with counts) about valid/test users
    and items unseen in training, and about a valid split covering under 5% of the training
    users."""
    if train.nnz == 0:
        raise DataError(f"{src}: the train split is empty")
    for name, m in (("valid", valid), ("test", test)):
        if m.nnz == 0:
            warnings.warn(
                f"{src}: the {name} split is empty: no {name} metrics"
                + ("; training runs every epoch (train.epochs) and keeps the last" if name == "valid" else ""),
                DataWarning, stacklevel=3,
            )  # fmt: skip
    train_users = np.diff(train.indptr) > 0
    train_items = np.zeros(train.shape[1], dtype=bool)
    train_items[train.indices] = True
    for name, m in (("valid", valid), ("test", test)):
        users = np.diff(m.indptr) > 0
        cold_users = int((users & ~train_users).sum())
        cold_items = int(np.unique(m.indices[~train_items[m.indices]]).size)
        if cold_users or cold_items:
            msg = (
                f"{src}: the {name} split has {cold_users} user(s) and {cold_items} item(s) with no "
                "training interaction; under the default 'mmrec' protocol users without training "
                "interactions are not evaluated, cold items stay candidates"
            )
            warnings.warn(msg, DataWarning, stacklevel=3)
    judged = int(((np.diff(valid.indptr) > 0) & train_users).sum())
    if valid.nnz and judged < 0.05 * train_users.sum():
        warnings.warn(
            f"{src}: the valid split covers only {judged:,} of the {int(train_users.sum()):,} "
            f"users with training interactions ({judged / train_users.sum():.1%}): early stopping "
            "and the best epoch rest on them alone; check the split (`cranerec data build` "
            "validates every user with at least 3 interactions: raise --user-min to 3 or more)",
            DataWarning, stacklevel=3,
        )  # fmt: skip


def check_ids(ids: np.ndarray, kind: str, src: str, row_offset: int, n: int | None = None) -> int:
    """Integer ids (already parsed) in [0, n) that are contiguous (every index used). Returns n."""
    if ids.size == 0:
        raise DataError(f"{src}: no interactions")
    neg = np.nonzero(ids < 0)[0]
    if len(neg):
        raise DataError(f"{src}: row {neg[0] + row_offset}: {kind} id {ids[neg[0]]} is negative")
    if n is None:
        n = int(ids.max()) + 1
    over = np.nonzero(ids >= n)[0]
    if len(over):
        raise DataError(
            f"{src}: row {over[0] + row_offset}: {kind} id {ids[over[0]]} is out of range "
            f"(there are {n} {kind}s, ids 0..{n - 1})"
        )
    # np.unique, not a table of n flags: an absurd id (999999999999) must not allocate n bytes
    present = np.unique(ids)
    if len(present) != n:
        raise DataError(
            f"{src}: {kind} ids are not contiguous: {n - len(present)} of 0..{n - 1} never "
            f"appear (first: {_first_missing(present)})"
        )
    return n


def _first_missing(present: np.ndarray) -> int:
    """The smallest non-negative integer not in the sorted unique array ``present``."""
    gaps = np.nonzero(present != np.arange(len(present)))[0]
    return int(gaps[0]) if len(gaps) else len(present)
