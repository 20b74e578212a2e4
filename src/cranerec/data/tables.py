"""Reading tables (CSV, TSV or Parquet) as strings, with errors that name the file.

Quotes: a CSV follows RFC 4180 (a cell may be quoted, ``""`` inside is one quote). A TSV is read
as the tab-separated format defines it, one line a row, whenever every line has the header's
number of tabs: product titles such as ``12" bat`` or ``Pro" glove`` keep their quotes, and a
stray quote cannot swallow the rows after it; a cell wrapped whole in quotes, as a CSV writer
leaves it (``"a ""b"" c"``), is unwrapped. Only a TSV whose lines do not all split that way is
read with CSV quoting (a quoted cell may then hold tabs and line breaks), with a warning naming
how many lines became how many rows when quoted cells span lines.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cranerec.data.errors import DataError
from cranerec.data.validate import DataWarning

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".parquet")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_table(
    path: str | Path, what: str = "table", need: tuple[str, ...] = (), hint: str = ""
) -> pd.DataFrame:
    """A CSV (``,``), TSV (``.tsv``/``.tab``/``.txt``: tab) or Parquet file as strings, with the
    columns ``need`` present (an error names the missing ones, the found ones and ``hint``) and
    at least one row."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give the {what}'s file (.csv, .tsv or .parquet)")
    if not path.is_file():
        raise DataError(f"missing file: {path} (the {what})")
    if path.suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: the {what} must be .csv, .tsv or .parquet")
    try:
        if path.suffix == ".parquet":
            df = _as_strings(pd.read_parquet(path))
        else:
            sep = "," if path.suffix == ".csv" else "\t"
            plain, lines = tsv_lines(path) if sep == "\t" else (False, 0)
            df = pd.read_csv(
                path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                quoting=csv.QUOTE_NONE if plain else csv.QUOTE_MINIMAL,
            )  # fmt: skip
            if plain:
                df = _unwrap_quoted(df)
            elif sep == "\t" and len(df) + 1 < lines:
                warnings.warn(
                    f"{path}: {lines:,} lines read as {len(df) + 1:,} rows (with the header): "
                    "quoted cells span lines, the table's lines do not all have the header's "
                    "number of tabs; if the quotes are part of the text, give every line the "
                    "same number of tabs (or save the table as .csv with quoted cells)",
                    DataWarning, stacklevel=2,
                )  # fmt: skip
    except ImportError as e:
        raise DataError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow): {e}"
        ) from None
    except UnicodeDecodeError as e:
        line = first_non_utf8_line(path) if path.suffix != ".parquet" else 0
        if not line:
            raise DataError(f"{path}: unreadable {what} ({e})") from None
        raise DataError(
            f"{path}: line {line} is not UTF-8 text; save the {what} as UTF-8 "
            "(e.g. iconv -f latin1 -t utf-8)"
        ) from None
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        ValueError,
        OSError,
    ) as e:
        raise DataError(f"{path}: unreadable {what} ({str(e).strip().splitlines()[0]})") from None
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)} ({hint})")
    if df.empty:
        raise DataError(f"{path}: the {what} has no rows")
    return df


def _as_strings(df: pd.DataFrame) -> pd.DataFrame:
    """A Parquet table's cells as the CSV reader gives them: strings, a null as "" (so the
    checks for empty ids, users and times see it), whole numbers of a float column (a column
    of integers with a null in it) without ".0"."""
    out = {}
    for name in df.columns:
        col = df[name]
        null = col.isna().to_numpy()
        if pd.api.types.is_float_dtype(col):
            values = col.to_numpy()[~null]
            # exact integers only: |x| below 2^53, where a float holds every integer
            if np.all(
                np.isfinite(values) & (np.abs(values) < 2**53) & (values == np.round(values))
            ):
                col = col.astype("Int64")
        out[name] = np.where(null, "", col.astype(str).to_numpy(dtype=object))
    return pd.DataFrame(out, index=df.index, columns=df.columns)


def tsv_lines(path: Path) -> tuple[bool, int]:
    """(whether every non-blank line of the TSV ``path`` has the header's number of tabs, the
    number of non-blank lines). Lines that are not UTF-8 are left to the reader's own error."""
    tabs, plain, lines = None, True, 0
    with open(path, encoding="utf-8-sig", errors="replace") as f:  # one line at a time
        for line in f:
            if not line.strip():
                continue
            lines += 1
            n = line.count("\t")
            tabs = n if tabs is None else tabs
            plain = plain and n == tabs
    return plain, lines


def _unwrap_quoted(df: pd.DataFrame) -> pd.DataFrame:
    """Cells (and column names) wrapped whole in quotes, ``"a ""b"" c"``, as ``a "b" c``."""

    def unwrap(cells: pd.Series) -> pd.Series:
        wrapped = (cells.str.len() >= 2) & cells.str.startswith('"') & cells.str.endswith('"')
        if wrapped.any():
            cells = cells.copy()
            cells[wrapped] = cells[wrapped].str[1:-1].str.replace('""', '"', regex=False)
        return cells

    df = df.apply(unwrap)
    df.columns = unwrap(pd.Series(df.columns, dtype=str)).tolist()
    return df


def first_non_utf8_line(path: str | Path) -> int:
    """The 1-based number of the first line of ``path`` that does not decode as UTF-8 (0: none)."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0
