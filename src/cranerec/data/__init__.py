"""Data layer: the in-memory ``Dataset``, loaders for MMRec / pickled-matrix / raw formats,
validation, k-core filtering and splitting, and the synthetic default dataset."""

from cranerec.data.config import DataConfig
from cranerec.data.dataset import SPLITS, Dataset
from cranerec.data.errors import DataError
from cranerec.data.loaders import detect_format, load_dataset
from cranerec.data.matrices import load_matrices, save_matrices
from cranerec.data.mmrec import load_mmrec, save_mmrec
from cranerec.data.raw import load_raw
from cranerec.data.split import PAPER_SPLIT_SEEDS, kcore_filter, split_per_user
from cranerec.data.synthetic import make_synthetic
from cranerec.data.validate import DataWarning

__all__ = [
    "SPLITS", "PAPER_SPLIT_SEEDS", "DataConfig", "DataError", "DataWarning", "Dataset",
    "detect_format", "kcore_filter", "load_dataset", "load_matrices", "load_mmrec", "load_raw",
    "make_synthetic", "save_matrices", "save_mmrec", "split_per_user",
]  # fmt: skip
