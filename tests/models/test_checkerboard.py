"""Every model ranks a checkerboard's held-out item first (see tests/models/checkerboard.py)."""

import pytest
from checkerboard import held_out_recall

WIDTHS = {"image": 8, "text": 6}


@pytest.mark.parametrize("model", ["bpr", "lightgcn"])
def test_held_out_item_ranks_first(model, tmp_path):
    assert held_out_recall(model, tmp_path) >= 0.95


@pytest.mark.parametrize(
    ("model", "overrides"),
    [
        ("vbpr", []),
        ("freedom", ["train.lr=0.01", "model.knn_k=5"]),
        ("lattice", ["train.lr=0.01", "model.knn_k=5", "model.projection_dim=16"]),
        ("bm3", ["train.lr=0.01"]),
        ("crane", ["model.knn_k=5", "model.rca_width=16", "model.rca_rounds=1"]),
    ],
)
def test_content_models_rank_the_held_out_item_first(model, overrides, tmp_path):
    assert held_out_recall(model, tmp_path, overrides, widths=WIDTHS) >= 0.95
