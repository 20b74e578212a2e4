"""The item table (CSV, TSV or Parquet, one row per item) and its alignment to a dataset's items.

Rows are matched to items by raw id, never by position: ``align_items`` is the one place that
does it. Ids are compared as stripped strings (``"42"`` in the table is item ``42`` of an MMRec
dataset, whose raw ids are the integers 0..n-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cranerec.data.errors import DataError
from cranerec.data.tables import file_sha256, read_table


@dataclass(frozen=True)
class ItemTable:
    """The rows of an item table: ``ids[r]`` is the raw id of row ``r``; ``columns[name][r]`` its
    value in that column (strings; an empty cell is ``""``)."""

    path: Path
    id_col: str
    ids: np.ndarray
    columns: dict[str, np.ndarray]
    sha256: str

    def __len__(self) -> int:
        return len(self.ids)


def read_item_table(path: str | Path, id_col: str, columns: list[str]) -> ItemTable:
    """Read ``path``, check that ``id_col`` and ``columns`` exist and that ids are present and
    unique. Errors name the file, the column and the first offending row (file lines: the
    header is line 1)."""
    path = Path(path)
    hint = "name yours with --id-col and the column options"
    df = read_table(path, "item table", (id_col, *columns), hint)
    ids = df[id_col].astype(str).str.strip().to_numpy(dtype=object)
    empty = np.flatnonzero(ids == "")
    if len(empty):
        raise DataError(
            f"{path}: line {empty[0] + 2}: empty {id_col} ({len(empty)} row(s) without an item id)"
        )
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        first = ids[np.flatnonzero(dup)[0]]
        lines = (np.flatnonzero(ids == first) + 2).tolist()
        raise DataError(
            f"{path}: item id {first!r} appears on lines {lines[:5]} "
            f"({int(pd.Series(ids[dup]).nunique())} duplicated id(s)); each item needs one row"
        )
    cols = {c: df[c].fillna("").astype(str).str.strip().to_numpy(dtype=object) for c in columns}
    return ItemTable(path=path, id_col=id_col, ids=ids, columns=cols, sha256=file_sha256(path))


def sorted_ids(ids: np.ndarray) -> np.ndarray:
    """Raw ids in a stable order: numeric when every id is an integer, else lexicographic."""
    ids = np.asarray(ids, dtype=object)
    try:
        keys = np.array([int(i) for i in ids], dtype=np.int64)
    except ValueError:
        return np.array(sorted(ids.tolist()), dtype=object)
    return ids[np.argsort(keys, kind="stable")]


@dataclass(frozen=True)
class Alignment:
    """``rows[i]``: the table row of item ``i``; ``extra``: table rows matching no item."""

    rows: np.ndarray
    extra: int


def align_items(table: ItemTable, item_ids: np.ndarray, allow_missing: bool = False) -> Alignment:
    """Match the dataset's items (raw ids, in index order) to the table's rows by id.

    Items missing from the table are an error naming them, or with ``allow_missing`` row -1
    (the caller treats them as items without content); more than half of the items missing is
    always an error, naming both sides' ids (most often the wrong ``--id-col``). Extra table
    rows are counted.
    """
    row_of = {raw: r for r, raw in enumerate(table.ids.tolist())}
    wanted = [str(i).strip() for i in np.asarray(item_ids).tolist()]
    rows = np.array([row_of.get(raw, -1) for raw in wanted], dtype=np.int64)
    missing = [raw for raw, r in zip(wanted, rows.tolist(), strict=True) if r < 0]
    n, k = len(wanted), len(missing)
    if k > n / 2:  # most often the wrong --id-col
        found = (f"none of the {n:,} item(s) of the dataset has" if k == n
                 else f"{k:,} of the {n:,} item(s) of the dataset have no")  # fmt: skip
        raise DataError(
            f"{table.path}: {found} row in the item table (first: {missing[:5]}); column "
            f"{table.id_col!r} holds ids like {table.ids[:3].tolist()}: is --id-col the column "
            "of the dataset's raw item ids?"
        )
    if missing and not allow_missing:
        raise DataError(
            f"{table.path}: {len(missing)} item(s) of the dataset have no row in the item table "
            f"(column {table.id_col!r}), first: {missing[:5]}; add them to the table, or pass "
            "--on-missing zero to give them a row of zeros"
        )
    found = rows[rows >= 0]
    return Alignment(rows=rows, extra=len(table) - len(set(found.tolist())))
