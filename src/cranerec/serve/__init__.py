"""Serving a trained run: recommendations from Python (``Recommender``), vector search
(``VectorIndex``) and the HTTP service (``cranerec.serve.app``, needs the ``serve`` extra)."""

from cranerec.serve.cold_start import DEFAULT_COLD_MIN_Z, ColdOptions
from cranerec.serve.errors import ItemExistsError, RequestError, ServeError, UnknownIdError
from cranerec.serve.index import INDEX_KINDS, VectorIndex, recall_at_k
from cranerec.serve.query import RankedItems
from cranerec.serve.recommender import Recommender

__all__ = [
    "DEFAULT_COLD_MIN_Z",
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
