"""Models, registered by name (``cranerec models`` lists them). Every module of this package is
a model file, found by discovery (``registry.py``): adding a model is writing one file."""

from cranerec.models.base import Batch, Model
from cranerec.models.registry import MODELS, discover, get_model_class, register

discover()

__all__ = ["MODELS", "Batch", "Model", "discover", "get_model_class", "register"]
