"""Shared fixtures: small synthetic datasets built in memory (no files committed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cranerec.data import make_synthetic

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="session")
def tiny_data():
    """A small synthetic dataset (200 users, 120 items, two modalities)."""
    return make_synthetic(n_users=200, n_items=120, n_topics=6, mean_interactions=12, seed=3)


def shared_dataset(name: str) -> Path:
    """Path of a real dataset in ../shared, or skip the test with a reason."""
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"real dataset {name} not available at {path}")
    return path
