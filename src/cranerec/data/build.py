"""From a raw interaction log to a split dataset: read, binarise, deduplicate, optional k-core,
split per user (random, temporal, leave-last-out or full), with a count of what each step
dropped. ``cranerec data build`` runs this, adds item features (``cranerec.features``) and
writes an MMRec folder."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from cranerec.data.dataset import Dataset
from cranerec.data.errors import DataError
from cranerec.data.split import (
    SPLIT_MODES,
    kcore_filter,
    matrices_from_labels,
    resolve_split_seed,
    split_leave_last_out,
    split_per_user,
    split_temporal,
)
from cranerec.data.tables import read_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogConfig:
    """How to read and split an interaction log (validated when built).

    ``split``: ``random`` (per user, ``split_seed``; the paper's), ``temporal`` (per user in
    ``time_col`` order, MMRec's 8:1:1), ``last`` (leave-last-out by ``time_col``) or ``full``
    (everything in training, to train a model to serve). ``user_min``/``item_min``: an iterative
    k-core (default none: every user and item is kept). ``min_rating``: keep rows whose
    ``rating_col`` is at least this (binarising explicit feedback)."""

    user_col: str = "user"
    item_col: str = "item"
    time_col: str | None = None
    rating_col: str | None = None
    min_rating: float | None = None
    split: str = "random"
    split_seed: str = "9"
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    user_min: int = 1
    item_min: int = 0

    def __post_init__(self) -> None:
        if self.split not in SPLIT_MODES:
            raise DataError(f"--split {self.split!r}: choose one of {list(SPLIT_MODES)}")
        if self.split in ("temporal", "last") and not self.time_col:
            raise DataError(f"--split {self.split} orders each user's history: name --time-col")
        if self.min_rating is not None and not self.rating_col:
            raise DataError("--min-rating needs --rating-col")
        named = [x for x in (self.user_col, self.item_col, self.time_col, self.rating_col) if x]
        twice = sorted({x for x in named if named.count(x) > 1})
        if twice:
            raise DataError(
                f"column {twice[0]!r} is named by more than one of --user-col, --item-col, "
                "--time-col, --rating-col; each names a different column"
            )
        if self.min_rating is not None and not math.isfinite(self.min_rating):
            raise DataError(f"--min-rating must be a finite number, got {self.min_rating}")
        r = self.split_ratios
        if len(r) != 3 or not all(math.isfinite(x) and x >= 0 for x in r) or r[0] <= 0:
            raise DataError(f"--ratios must be three non-negative numbers with train > 0, got {r}")
        if self.user_min < 1 or self.item_min < 0:
            raise DataError("--user-min must be >= 1 and --item-min >= 0")
        try:
            resolve_split_seed(self.split_seed)
        except ValueError as e:
            raise DataError(f"--split-seed: {e}") from None


@dataclass
class BuildReport:
    """What each step kept and dropped (written as ``build.json``, printed by the CLI)."""

    rows_read: int = 0
    dropped_rating: int = 0
    dropped_duplicates: int = 0
    kcore: dict = field(default_factory=dict)
    users: int = 0
    items: int = 0
    interactions: int = 0
    splits: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        k = self.kcore
        out = [f"read {self.rows_read:,} rows"]
        if self.dropped_rating:
            out.append(f"dropped {self.dropped_rating:,} rows below the rating threshold")
        if self.dropped_duplicates:
            out.append(f"dropped {self.dropped_duplicates:,} repeated (user, item) rows")
        out.append(
            f"k-core (user_min {k['user_min']}, item_min {k['item_min']}) dropped "
            f"{k['users']:,} users, {k['items']:,} items, {k['interactions']:,} interactions"
        )
        out.append(f"kept {self.users:,} users, {self.items:,} items, "
                   f"{self.interactions:,} interactions; split "
                   + ", ".join(f"{s} {n:,}" for s, n in self.splits.items()))  # fmt: skip
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def _times(col: pd.Series, src: str, name: str) -> np.ndarray:
    """A sortable number per row: numbers as they are, else dates parsed (to one integer unit).

    Values neither reading accepts are named by their line: those that are not numbers when most
    of the column is numbers (an empty cell among epochs), else those that are not dates."""
    values = pd.to_numeric(col, errors="coerce")
    not_number = values.isna().to_numpy()
    if not not_number.any():
        infinite = ~np.isfinite(values.to_numpy(dtype=np.float64))
        if infinite.any():
            _bad_time(col, infinite, src, name, "is not a finite number")
        return values.to_numpy(dtype=np.float64)
    dates = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
    not_date = dates.isna().to_numpy()
    if not not_date.any():
        return dates.astype("int64").to_numpy()
    if not_number.mean() < not_date.mean():
        _bad_time(col, not_number, src, name, "is not a number as the column's other values are")
    _bad_time(col, not_date, src, name, "is not a date as the column's other values are")


def _bad_time(col: pd.Series, bad: np.ndarray, src: str, name: str, what: str) -> None:
    first = int(np.flatnonzero(bad)[0])
    line = int(col.index[first]) + 2  # the row's label: rows may have been dropped before
    raise DataError(
        f"{src}: line {line}: {name} {col.iloc[first]!r} {what} ({int(bad.sum())} such row(s)); "
        "fix or drop them"
    )


def read_log(path, config: LogConfig) -> pd.DataFrame:
    """The log's columns as strings; errors name the file, the column and the first bad line."""
    c = config
    need = tuple(x for x in (c.user_col, c.item_col, c.time_col, c.rating_col) if x)
    hint = "name yours with --user-col, --item-col, --time-col, --rating-col"
    df = read_table(path, "interaction log", need, hint)
    for col in (c.user_col, c.item_col):
        values = df[col].astype(str).str.strip()
        empty = np.flatnonzero((values == "").to_numpy())
        if len(empty):
            raise DataError(f"{path}: line {empty[0] + 2}: empty {col} ({len(empty)} such rows)")
        df[col] = values
    return df


def split_log(
    df: pd.DataFrame, config: LogConfig, src: str
) -> tuple[Dataset, pd.DataFrame, BuildReport]:
    """Binarise, deduplicate, k-core and split ``df``; returns the dataset, the kept rows with
    their ``label`` (0/1/2) and user/item codes, and the report."""
    c = config
    report = BuildReport(rows_read=len(df))
    if c.min_rating is not None:
        ratings = pd.to_numeric(df[c.rating_col], errors="coerce")
        bad = np.flatnonzero(ratings.isna().to_numpy())
        if len(bad):
            raise DataError(
                f"{src}: line {bad[0] + 2}: {c.rating_col} {df[c.rating_col].iloc[bad[0]]!r} is not a number"
            )
        keep = (ratings >= c.min_rating).to_numpy()
        report.dropped_rating = int((~keep).sum())
        if not keep.any():
            raise DataError(
                f"{src}: no row has {c.rating_col} >= {c.min_rating} (--min-rating; the highest "
                f"is {ratings.max():g}); lower --min-rating"
            )
        df = df[keep]
    if c.time_col:
        df = df.assign(_t=_times(df[c.time_col], src, c.time_col))
        df = df.sort_values("_t", kind="stable")  # a repeated pair keeps its first time
    n = len(df)
    df = df.drop_duplicates(subset=[c.user_col, c.item_col])
    report.dropped_duplicates = n - len(df)
    users0, items0, n0 = df[c.user_col].nunique(), df[c.item_col].nunique(), len(df)
    df = kcore_filter(df, c.user_col, c.item_col, c.user_min, c.item_min)
    report.kcore = {
        "user_min": c.user_min, "item_min": c.item_min, "users": users0 - df[c.user_col].nunique(),
        "items": items0 - df[c.item_col].nunique(), "interactions": n0 - len(df),
    }  # fmt: skip
    if df.empty:
        raise DataError(
            f"{src}: no interactions left after the k-core (user_min {c.user_min}, item_min "
            f"{c.item_min}); lower them"
        )
    user_codes, user_ids = pd.factorize(df[c.user_col], sort=True)
    item_codes, item_ids = pd.factorize(df[c.item_col], sort=True)
    user_codes, item_codes = user_codes.astype(np.int64), item_codes.astype(np.int64)
    if c.split == "random":
        labels = split_per_user(user_codes, resolve_split_seed(c.split_seed), list(c.split_ratios))
    elif c.split == "temporal":
        labels = split_temporal(user_codes, df["_t"].to_numpy(), list(c.split_ratios))
    elif c.split == "last":
        labels = split_leave_last_out(user_codes, df["_t"].to_numpy())
    else:
        labels = np.zeros(len(df), dtype=np.int8)
    splits = matrices_from_labels(user_codes, item_codes, labels, len(user_ids), len(item_ids))
    data = Dataset(
        name=str(src), user_ids=np.asarray(user_ids, dtype=object),
        item_ids=np.asarray(item_ids, dtype=object), **splits,
    )  # fmt: skip
    report.users, report.items, report.interactions = data.n_users, data.n_items, len(df)
    report.splits = {s: int(m.nnz) for s, m in splits.items()}
    rows = pd.DataFrame({
        "userID": user_codes, "itemID": item_codes, "rating": 1,
        "timestamp": df["_t"].to_numpy() if c.time_col else 0, "x_label": labels,
    })  # fmt: skip
    return data, rows, report
