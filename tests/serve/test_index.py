"""Vector search: the exact index gives the project's own top-k (ties included); approximate
indexes keep seen-item filtering correct, even for a user who has seen most of the catalogue."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cranerec.serve import VectorIndex, recall_at_k
from cranerec.utils.ranking import topk_items


def _reference(queries, items, k, exclude=None):
    """utils/ranking.topk_items on torch scores, excluded items masked with -inf."""
    scores = torch.from_numpy(queries) @ torch.from_numpy(items).T
    if exclude is not None:
        for r, ex in enumerate(exclude):
            scores[r, torch.as_tensor(ex, dtype=torch.long)] = float("-inf")
    return topk_items(scores, k)


@pytest.mark.parametrize("k", [1, 5, 17, 40])
def test_exact_index_equals_the_projects_top_k_including_ties(k):
    # small integer vectors: every product is exact in float32 and ties abound
    rng = np.random.default_rng(0)
    items = rng.integers(-2, 3, size=(40, 6)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(30, 6)).astype(np.float32)
    exclude = [rng.choice(40, size=rng.integers(0, 30), replace=False) for _ in range(30)]
    index = VectorIndex(items)
    for ex in (None, exclude):
        scores, idx = index.search(queries, k, ex)
        ref_scores, ref_idx = _reference(queries, items, k, ex)
        for r in range(len(queries)):
            n = int(np.isfinite(ref_scores[r].numpy()).sum())  # items left after exclusion
            assert idx[r, :n].tolist() == ref_idx[r, :n].tolist()
            np.testing.assert_array_equal(scores[r, :n], ref_scores[r, :n].numpy())
            assert (idx[r, n:] == -1).all()  # fewer than k left: padded


def test_exact_index_on_float_vectors_matches_up_to_rounding():
    rng = np.random.default_rng(1)
    items = rng.normal(size=(500, 16)).astype(np.float32)
    queries = rng.normal(size=(64, 16)).astype(np.float32)
    scores, idx = VectorIndex(items).search(queries, 20)
    ref_scores, ref_idx = _reference(queries, items, 20)
    assert (idx == ref_idx.numpy()).mean() > 0.99  # a near-tie may swap in the last bit
    np.testing.assert_allclose(scores, ref_scores.numpy(), rtol=1e-5, atol=1e-5)


def test_a_query_gets_the_same_answer_whatever_shares_its_batch():
    rng = np.random.default_rng(2)
    items = rng.normal(size=(300, 24)).astype(np.float32)
    queries = rng.normal(size=(3000, 24)).astype(np.float32)  # past faiss's BLAS threshold
    index = VectorIndex(items)
    scores, idx = index.search(queries, 10)
    for r in (0, 1234, 2999):
        s1, i1 = index.search(queries[r : r + 1], 10)
        np.testing.assert_array_equal(s1[0], scores[r])
        np.testing.assert_array_equal(i1[0], idx[r])


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_filters_seen_items_for_a_heavy_user(kind):
    rng = np.random.default_rng(3)
    n = 2000
    items = rng.normal(size=(n, 16)).astype(np.float32)
    queries = rng.normal(size=(4, 16)).astype(np.float32)
    keep_few = np.sort(rng.choice(n, size=7, replace=False))
    keep_some = np.sort(rng.choice(n, size=60, replace=False))
    exclude = [
        np.setdiff1d(np.arange(n), keep_few),  # has seen all but 7 items
        np.setdiff1d(np.arange(n), keep_some),  # all but 60
        rng.choice(n, size=300, replace=False),
        np.empty(0, np.int64),
    ]
    index = VectorIndex(items, kind)
    scores, idx = index.search(queries, 20, exclude)
    for r in range(4):
        got = idx[r][idx[r] >= 0]
        assert not set(got.tolist()) & set(exclude[r].tolist())
        assert len(got) == min(20, n - len(exclude[r]))
        assert (np.diff(scores[r][: len(got)]) <= 0).all()
    assert sorted(idx[0][:7].tolist()) == keep_few.tolist()  # all that is left, best first


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_is_measured_against_exact(kind):
    rng = np.random.default_rng(4)
    items = rng.normal(size=(3000, 16)).astype(np.float32)
    queries = rng.normal(size=(200, 16)).astype(np.float32)
    assert recall_at_k(VectorIndex(items), queries, 10) == 1.0
    recall = recall_at_k(VectorIndex(items, kind, nprobe=16), queries, 10)
    assert 0.8 <= recall <= 1.0


def test_candidates_are_searched_exactly_and_items_can_be_added():
    rng = np.random.default_rng(5)
    items = rng.normal(size=(200, 8)).astype(np.float32)
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    index = VectorIndex(items, "hnsw")
    allowed = np.arange(0, 200, 3)
    _, idx = index.search(queries, 10, candidates=allowed)
    _, ref = _reference(queries, items[allowed], 10)
    assert idx.tolist() == allowed[ref.numpy()].tolist()
    index.add(10 * queries[:1])  # a new item aligned with the first query
    _, idx = index.search(queries[:1], 1)
    assert idx[0, 0] == 200
    with pytest.raises(ValueError, match="not one of"):
        VectorIndex(items, "annoy")
