"""The dataset-loading preamble the benchmark scripts share (they run as ``python benchmarks/X.py``,
so this file is importable as ``_data``)."""

from __future__ import annotations

import warnings
from pathlib import Path

from cranerec.data import Dataset, load_dataset


def load_or_skip(path: str) -> Dataset | None:
    """The dataset at ``path`` (``synthetic`` for the built-in data), loaded without its
    validation warnings; None after printing ``skipped: ...`` when ``path`` does not exist, so a
    benchmark over ``../shared`` exits cleanly where the shared data are absent."""
    if not exists_or_skip(path):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(path=path)


def exists_or_skip(path: str) -> bool:
    """Whether the dataset at ``path`` exists (``synthetic`` always does); prints ``skipped: ...``
    when it does not."""
    if path != "synthetic" and not Path(path).exists():
        print(f"skipped: dataset not found at {path}")
        return False
    return True
