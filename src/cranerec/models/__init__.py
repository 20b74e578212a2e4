"""Models, registered by name (``cranerec models`` lists them)."""

from cranerec.models import bpr, crane, lightgcn, pop  # noqa: F401  (registration side effect)
from cranerec.models.base import MODELS, Batch, Recommender, get_model_class, register

__all__ = ["MODELS", "Batch", "Recommender", "get_model_class", "register"]
