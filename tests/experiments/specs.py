"""Small specs on tiny synthetic data (2 epochs, one thread) for the experiment tests."""

from __future__ import annotations

import copy

TINY_DATA = {
    "path": "synthetic",
    "synthetic_users": 120,
    "synthetic_items": 80,
    "synthetic_interactions": 10,
}
TINY_BASE = {
    "train": {"epochs": 2, "patience": 2, "batch_size": 256, "threads": 1, "progress": False}
}


def tiny_spec(**changes) -> dict:
    """A spec dict: bpr and lightgcn on tiny synthetic data, seeds 1 and 2, one setting."""
    spec = {
        "name": "tiny",
        "base": copy.deepcopy(TINY_BASE),
        "datasets": {"synthetic": dict(TINY_DATA)},
        "models": ["bpr", "lightgcn"],
        "seeds": [1, 2],
        "reference": {"model": "lightgcn"},
    }
    spec.update(changes)
    return spec
