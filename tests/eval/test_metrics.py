"""Metric values against hand-computed numbers on a tiny case with known ranked lists."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cranerec.data.dataset import Dataset
from cranerec.eval import EvalConfig, Evaluator, metrics_from_hits


def _lg(j: int) -> float:
    """The NDCG discount of (1-based) rank j."""
    return 1.0 / math.log2(j + 1)


def _tiny():
    """Three users, six items; item embeddings are the identity so scores = user rows.

    user 0: train {5}, test {0, 2}; scores rank 0,1,2,3,4  -> hits 1,0,1,0,0
    user 1: train {0}, test {3, 4, 5}; scores rank 1,2,3,4,5 -> hits 0,0,1,1,1
    user 2: train {1}, test {4}; all scores equal -> rank 0,2,3,4,5 -> hits 0,0,0,1,0
    """
    n_users, n_items = 3, 6
    train = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 1, 2], [5, 0, 1])), shape=(n_users, n_items))
    test = sp.csr_matrix(
        ([1.0] * 6, ([0, 0, 1, 1, 1, 2], [0, 2, 3, 4, 5, 4])), shape=(n_users, n_items)
    )
    valid = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    ds = Dataset(
        "tiny", train, valid, test, np.array(["u0", "u1", "u2"]), np.arange(n_items).astype(str)
    )
    user_emb = torch.tensor(
        [[5, 4, 3, 2, 1, 9], [0, 5, 4, 3, 2, 1], [0, 0, 0, 0, 0, 0]], dtype=torch.float32
    )
    return ds, user_emb, torch.eye(n_items)


def _expected() -> dict[str, list[float]]:
    idcg1 = 1.0
    idcg2 = 1.0 + _lg(2)
    idcg3 = 1.0 + _lg(2) + _lg(3)
    return {
        # user 0: |R| = 2, hits at ranks 1 and 3
        # user 1: |R| = 3, hits at ranks 3, 4, 5
        # user 2: |R| = 1, hit at rank 4
        "recall@1": [1 / 2, 0.0, 0.0],
        "recall@3": [1.0, 1 / 3, 0.0],
        "recall@5": [1.0, 1.0, 1.0],
        "precision@1": [1.0, 0.0, 0.0],
        "precision@3": [2 / 3, 1 / 3, 0.0],
        "precision@5": [2 / 5, 3 / 5, 1 / 5],
        "hit@1": [1.0, 0.0, 0.0],
        "hit@3": [1.0, 1.0, 0.0],
        "hit@5": [1.0, 1.0, 1.0],
        "ndcg@1": [1.0 / idcg1, 0.0, 0.0],
        "ndcg@3": [(1.0 + _lg(3)) / idcg2, _lg(3) / idcg3, 0.0],
        "ndcg@5": [(1.0 + _lg(3)) / idcg2, (_lg(3) + _lg(4) + _lg(5)) / idcg3, _lg(4) / idcg1],
        # MAP@K = sum_{j<=K} hit_j * Precision@j / min(|R|, K)
        "map@1": [1.0 / 1, 0.0, 0.0],
        "map@3": [(1.0 + 2 / 3) / 2, (1 / 3) / 3, 0.0],
        "map@5": [(1.0 + 2 / 3) / 2, (1 / 3 + 2 / 4 + 3 / 5) / 3, (1 / 4) / 1],
    }


def test_metric_values_match_hand_computed_numbers():
    ds, user_emb, item_emb = _tiny()
    result = Evaluator(ds, EvalConfig(ks=[1, 3, 5])).evaluate(user_emb, item_emb, "test")
    expected = _expected()
    np.testing.assert_array_equal(result.users, [0, 1, 2])
    assert set(result.per_user) == set(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(result.per_user[name], values, rtol=1e-12, err_msg=name)
        assert result.metrics[name] == pytest.approx(np.mean(values), rel=1e-12), name


def test_k_beyond_the_item_count_divides_precision_by_k():
    """With 6 items and K = 10 the list holds every candidate: recall, hit, NDCG and MAP equal
    their values on the full list, precision still divides by K."""
    ds, user_emb, item_emb = _tiny()
    result = Evaluator(ds, EvalConfig(ks=[5, 10])).evaluate(user_emb, item_emb, "test")
    for m in ("recall", "hit", "ndcg", "map"):
        np.testing.assert_allclose(result.per_user[f"{m}@10"], result.per_user[f"{m}@5"])
    np.testing.assert_allclose(result.per_user["precision@10"], [2 / 10, 3 / 10, 1 / 10])


def test_metrics_from_hits_idcg_uses_min_of_relevant_and_k():
    # one user, 5 relevant items, hits at ranks 1 and 2 of a 3-long list
    hits = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    out = metrics_from_hits(hits, torch.tensor([5]), [2, 3], ["ndcg", "map", "recall"])
    assert out["ndcg@2"].item() == pytest.approx(1.0)  # IDCG over min(5, 2) = 2 hits
    assert out["ndcg@3"].item() == pytest.approx((1 + _lg(2)) / (1 + _lg(2) + _lg(3)))
    assert out["map@2"].item() == pytest.approx((1 + 1) / 2)
    assert out["map@3"].item() == pytest.approx((1 + 1) / 3)
    assert out["recall@3"].item() == pytest.approx(2 / 5)


def test_metrics_from_hits_rejects_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric"):
        metrics_from_hits(torch.ones(1, 2, dtype=torch.float64), torch.tensor([1]), [1], ["auc"])
