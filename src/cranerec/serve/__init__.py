"""Serving a trained run: recommendations from Python (``Recommender``), vector search
(``VectorIndex``) and the HTTP service (``cranerec.serve.app``, needs the ``serve`` extra)."""

from cranerec.serve.index import INDEX_KINDS, VectorIndex, recall_at_k
from cranerec.serve.recommender import (
    COLD_CALIBRATIONS,
    ColdOptions,
    ItemExistsError,
    RankedItems,
    Recommender,
    RequestError,
    ServeError,
    UnknownIdError,
)

__all__ = [
    "COLD_CALIBRATIONS",
    "INDEX_KINDS",
    "ColdOptions",
    "ItemExistsError",
    "RankedItems",
    "Recommender",
    "RequestError",
    "ServeError",
    "UnknownIdError",
    "VectorIndex",
    "recall_at_k",
]
