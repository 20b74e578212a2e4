"""Reading tables (CSV, TSV or Parquet) as strings, with errors that name the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from cranerec.data.errors import DataError

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
    if not path.is_file():
        raise DataError(f"missing file: {path} (the {what})")
    if path.suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: the {what} must be .csv, .tsv or .parquet")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path).astype(str)
        else:
            sep = "," if path.suffix == ".csv" else "\t"
            df = pd.read_csv(
                path, sep=sep, dtype=str, keep_default_na=False, quoting=0, encoding="utf-8-sig"
            )
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


def first_non_utf8_line(path: str | Path) -> int:
    """The 1-based number of the first line of ``path`` that does not decode as UTF-8 (0: none)."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0
