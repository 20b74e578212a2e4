"""Models, registered by name (``cranerec models`` lists them)."""

from cranerec.models import (  # noqa: F401  (registration side effect)
    bm3,
    bpr,
    camgr,
    crane,
    crane_official,
    freedom,
    lattice,
    lightgcn,
    mmgcn,
    pop,
    vbpr,
)
from cranerec.models.base import MODELS, Batch, Recommender, get_model_class, register

__all__ = ["MODELS", "Batch", "Recommender", "get_model_class", "register"]
