"""Fixtures: small datasets on disk, built fresh in tmp_path for each test."""

from __future__ import annotations

from pathlib import Path

import pytest

from .builders import toy_features, toy_rows, write_feat, write_inter, write_matrices


@pytest.fixture
def mmrec_dir(tmp_path: Path) -> Path:
    """An MMRec directory: toy.inter + image_feat.npy (8-d) + text_feat.npy (5-d)."""
    d = tmp_path / "toy"
    write_inter(d, toy_rows())
    write_feat(d, "image", toy_features(width=8, seed=1))
    write_feat(d, "text", toy_features(width=5, seed=2))
    return d


@pytest.fixture
def matrices_dir(tmp_path: Path) -> Path:
    """A pickled-matrix directory: trnMat/valMat/tstMat.pkl + audio_feat.npy (3-d)."""
    d = write_matrices(tmp_path / "mats")
    write_feat(d, "audio", toy_features(width=3, seed=3))
    return d
