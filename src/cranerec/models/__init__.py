"""Models, registered by name (``cranerec models`` lists them)."""

from cranerec.models import bm3, bpr, crane, crane_official, freedom, lightgcn, mmgcn, pop, vbpr  # noqa: F401  (registration side effect)
from cranerec.models.base import MODELS, Batch, Recommender, get_model_class, register

__all__ = ["MODELS", "Batch", "Recommender", "get_model_class", "register"]
