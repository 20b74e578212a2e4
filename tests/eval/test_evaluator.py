"""The full-ranking evaluator against a slow per-user reference, and its protocol guarantees."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cranerec.data.dataset import Dataset
from cranerec.eval import METRICS, EvalConfig, Evaluator, topk_items

NONE, TRAIN, VALID, TEST = 0, 1, 2, 3


def make_dataset(states: np.ndarray, user_ids=None) -> Dataset:
    """A dataset from a [n_users, n_items] matrix of NONE/TRAIN/VALID/TEST (disjoint splits)."""
    n_users, n_items = states.shape

    def split(code):
        return sp.csr_matrix((states == code).astype(np.float32))

    if user_ids is None:
        user_ids = np.array([f"user{u}" for u in range(n_users)])
    item_ids = np.array([f"item{i}" for i in range(n_items)])
    return Dataset("t", split(TRAIN), split(VALID), split(TEST), user_ids, item_ids)


def score_embeddings(scores: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings whose product is exactly ``scores`` (identity item embeddings)."""
    n_items = scores.shape[1]
    return torch.tensor(scores, dtype=torch.float32), torch.eye(n_items)


def reference(
    states: np.ndarray, scores: np.ndarray, split: str, ks: list[int], mask_valid: bool
) -> tuple[list[int], dict[str, list[float]]]:
    """Slow per-user evaluation written from the protocol's definition."""
    rel_code = TEST if split == "test" else VALID
    masked_codes = {TRAIN} | ({VALID} if (mask_valid and split == "test") else set())
    users, out = [], {f"{m}@{k}": [] for k in ks for m in METRICS}
    for u in range(states.shape[0]):
        row = states[u]
        relevant = {i for i in range(len(row)) if row[i] == rel_code}
        if not relevant or not (row == TRAIN).any():
            continue
        users.append(u)
        candidates = [i for i in range(len(row)) if row[i] not in masked_codes]
        ranked = sorted(candidates, key=lambda i: (-float(scores[u, i]), i))
        for k in ks:
            hits = [1 if i in relevant else 0 for i in ranked[:k]]
            n_hits = sum(hits)
            dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
            idcg = sum(1 / math.log2(j + 2) for j in range(min(len(relevant), k)))
            ap = sum(h * sum(hits[: j + 1]) / (j + 1) for j, h in enumerate(hits))
            out[f"recall@{k}"].append(n_hits / len(relevant))
            out[f"precision@{k}"].append(n_hits / k)
            out[f"hit@{k}"].append(float(n_hits > 0))
            out[f"ndcg@{k}"].append(dcg / idcg)
            out[f"map@{k}"].append(ap / min(len(relevant), k))
    return users, out


def assert_matches_reference(result, users, expected) -> None:
    np.testing.assert_array_equal(result.users, users)
    assert set(result.per_user) == set(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(result.per_user[name], values, rtol=1e-12, atol=1e-12)
        mean = float(np.mean(values)) if values else 0.0
        assert result.metrics[name] == pytest.approx(mean, rel=1e-12, abs=1e-12)


@st.composite
def cases(draw):
    n_users = draw(st.integers(1, 7))
    n_items = draw(st.integers(1, 7))
    cells = n_users * n_items
    states = draw(
        st.lists(
            st.sampled_from([NONE, NONE, TRAIN, TRAIN, VALID, TEST, TEST]),
            min_size=cells,
            max_size=cells,
        )
    )
    scores = draw(st.lists(st.integers(0, 3), min_size=cells, max_size=cells))
    return (
        np.array(states).reshape(n_users, n_items),
        np.array(scores, dtype=np.float64).reshape(n_users, n_items),
        draw(st.sampled_from(["valid", "test"])),
        draw(st.sampled_from(["mmrec", "strict"])),
        draw(st.sampled_from([0, 1, 3])),
    )


KS = [1, 3, 10]


@settings(max_examples=50, deadline=None)
@given(cases())
def test_matches_per_user_reference(case):
    states, scores, split, protocol, batch = case
    ds = make_dataset(states)
    cfg = EvalConfig(ks=KS, protocol=protocol, user_batch_size=batch)
    result = Evaluator(ds, cfg).evaluate(*score_embeddings(scores), split)
    users, expected = reference(states, scores, split, KS, mask_valid=protocol == "strict")
    assert_matches_reference(result, users, expected)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda rows: st.integers(1, 9).flatmap(
            lambda cols: st.tuples(
                st.lists(st.integers(-2, 2), min_size=rows * cols, max_size=rows * cols),
                st.just((rows, cols)),
                st.integers(1, cols),
            )
        )
    )
)
def test_topk_items_orders_by_score_then_lower_index(case):
    flat, shape, k = case
    scores = np.array(flat, dtype=np.float32).reshape(shape)
    scores[scores == -2] = -np.inf  # masked entries behave like any other (lowest) value
    vals, idx = topk_items(torch.from_numpy(scores), k)
    for r in range(shape[0]):
        expected = sorted(range(shape[1]), key=lambda i: (-scores[r, i], i))[:k]
        assert idx[r].tolist() == expected
        assert vals[r].tolist() == scores[r, expected].tolist()


# explicit cases the property test may or may not reach


def test_users_without_training_or_without_split_interactions_are_not_evaluated():
    states = np.array(
        [
            [TRAIN, TEST, NONE, NONE],  # evaluated
            [NONE, TEST, TEST, NONE],  # no training interaction
            [TRAIN, TRAIN, NONE, NONE],  # no test interaction
            [TEST, NONE, TRAIN, TEST],  # evaluated
        ]
    )
    scores = np.arange(16, dtype=np.float64).reshape(4, 4) % 3
    ds = make_dataset(states)
    ev = Evaluator(ds, EvalConfig(ks=KS))
    np.testing.assert_array_equal(ev.users("test"), [0, 3])
    result = ev.evaluate(*score_embeddings(scores), "test")
    users, expected = reference(states, scores, "test", KS, mask_valid=False)
    assert users == [0, 3]
    assert_matches_reference(result, users, expected)


def test_cold_item_in_test_is_ranked_and_counted():
    # item 3 has no training interaction anywhere and is user 0's test item
    states = np.array([[TRAIN, NONE, NONE, TEST], [TRAIN, TRAIN, TEST, NONE]])
    scores = np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 1.0, 3.0]])
    result = Evaluator(make_dataset(states), EvalConfig(ks=[1])).evaluate(
        *score_embeddings(scores), "test"
    )
    np.testing.assert_array_equal(result.per_user["recall@1"], [1.0, 0.0])


def test_k_larger_than_candidates_and_single_positive():
    states = np.array([[TRAIN, NONE, TEST, NONE, TRAIN], [NONE, TRAIN, NONE, NONE, TEST]])
    scores = np.array([[1.0, 2.0, 1.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    result = Evaluator(make_dataset(states), EvalConfig(ks=[10])).evaluate(
        *score_embeddings(scores), "test"
    )
    users, expected = reference(states, scores, "test", [10], mask_valid=False)
    assert_matches_reference(result, users, expected)
    np.testing.assert_allclose(result.per_user["precision@10"], [0.1, 0.1])
    np.testing.assert_allclose(result.per_user["recall@10"], [1.0, 1.0])
    # user 0: ranking 1, 2, 3 -> hit at rank 2; user 1: ranking 0, 2, 3, 4 -> hit at rank 4
    np.testing.assert_allclose(result.per_user["ndcg@10"], [1 / math.log2(3), 1 / math.log2(5)])
    np.testing.assert_allclose(result.per_user["map@10"], [1 / 2, 1 / 4])


# protocol


def _protocol_case():
    # item 0 trained, item 1 validation, item 2 test; the validation item scores highest
    states = np.array([[TRAIN, VALID, TEST, NONE]])
    scores = np.array([[0.0, 3.0, 2.0, 1.0]])
    return make_dataset(states), score_embeddings(scores)


def test_default_protocol_does_not_mask_validation_items_at_test():
    ds, emb = _protocol_case()
    result = Evaluator(ds, EvalConfig(ks=[1, 2])).evaluate(*emb, "test")
    assert result.metrics["recall@1"] == 0.0  # the validation item takes rank 1
    assert result.metrics["recall@2"] == 1.0
    assert result.metrics["ndcg@2"] == pytest.approx(1 / math.log2(3))


@pytest.mark.parametrize(
    "cfg",
    [
        EvalConfig(ks=[1, 2], mask_valid_at_test=True),
        EvalConfig(ks=[1, 2], protocol="strict"),
    ],
    ids=["mask_valid_at_test", "strict"],
)
def test_masking_validation_items_at_test_changes_the_ranking(cfg):
    ds, emb = _protocol_case()
    result = Evaluator(ds, cfg).evaluate(*emb, "test")
    assert result.metrics["recall@1"] == 1.0
    assert result.metrics["ndcg@2"] == 1.0


def test_strict_protocol_leaves_validation_split_unchanged():
    states = np.array([[TRAIN, VALID, TEST, NONE], [TRAIN, TEST, VALID, NONE]])
    scores = np.array([[0.0, 1.0, 3.0, 2.0], [0.0, 3.0, 1.0, 2.0]])
    emb = score_embeddings(scores)
    ds = make_dataset(states)
    a = Evaluator(ds, EvalConfig(ks=[1, 3])).evaluate(*emb, "valid")
    b = Evaluator(ds, EvalConfig(ks=[1, 3], protocol="strict")).evaluate(*emb, "valid")
    assert a.metrics == b.metrics
    assert a.metrics["recall@1"] == 0.0  # test items are not masked on the validation split


# ties


def test_ties_go_to_the_lower_item_index():
    scores = torch.zeros(2, 8)
    scores[0, [0, 3]] = float("-inf")  # masked
    _, idx = topk_items(scores, 4)
    assert idx.tolist() == [[1, 2, 4, 5], [0, 1, 2, 3]]
    _, idx = topk_items(torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0, 0.0]]), 2)
    assert idx.tolist() == [[1, 2]]  # the tie crosses the cut
    _, idx = topk_items(torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0, 0.0]]), 4)
    assert idx.tolist() == [[1, 2, 4, 3]]


@pytest.mark.parametrize(
    ("test_item", "recall_at_1", "recall_at_3"), [(1, 1.0, 1.0), (3, 0.0, 1.0), (5, 0.0, 0.0)]
)
def test_equal_scores_rank_unmasked_items_by_index(test_item, recall_at_1, recall_at_3):
    states = np.full((1, 6), NONE)
    states[0, 0] = TRAIN
    states[0, test_item] = TEST
    ds = make_dataset(states)
    result = Evaluator(ds, EvalConfig(ks=[1, 3])).evaluate(
        torch.ones(1, 4), torch.ones(6, 4), "test"
    )
    assert result.metrics["recall@1"] == recall_at_1
    assert result.metrics["recall@3"] == recall_at_3


# batching


def test_results_do_not_depend_on_user_batch_size():
    rng = np.random.default_rng(0)
    states = rng.choice([NONE, TRAIN, VALID, TEST], p=[0.55, 0.25, 0.1, 0.1], size=(40, 30))
    user_emb = torch.from_numpy(rng.integers(0, 3, size=(40, 4)).astype(np.float32))
    item_emb = torch.from_numpy(rng.integers(0, 3, size=(30, 4)).astype(np.float32))
    ds = make_dataset(states)
    results = [
        Evaluator(ds, EvalConfig(ks=KS, user_batch_size=bs)).evaluate(user_emb, item_emb, "test")
        for bs in (1, 3, 7, 0)
    ]
    assert len(results[0].users) > 10
    for other in results[1:]:
        np.testing.assert_array_equal(other.users, results[0].users)
        assert other.metrics == results[0].metrics
        for name, values in results[0].per_user.items():
            np.testing.assert_array_equal(other.per_user[name], values)
    users, expected = reference(
        states, (user_emb @ item_emb.T).numpy(), "test", KS, mask_valid=False
    )
    assert_matches_reference(results[0], users, expected)


def test_float64_embeddings_give_the_float32_results():
    rng = np.random.default_rng(3)
    states = rng.choice([NONE, TRAIN, VALID, TEST], p=[0.5, 0.3, 0.1, 0.1], size=(15, 12))
    user_emb = torch.from_numpy(rng.integers(0, 3, size=(15, 4)).astype(np.float32))
    item_emb = torch.from_numpy(rng.integers(0, 3, size=(12, 4)).astype(np.float32))
    ev = Evaluator(make_dataset(states), EvalConfig(ks=KS))
    single = ev.evaluate(user_emb, item_emb, "test")
    double = ev.evaluate(user_emb.double(), item_emb.double(), "test")
    assert double.metrics == single.metrics


# errors


@pytest.mark.parametrize("batch", [1, 0])
def test_nan_scores_raise_naming_the_raw_user_ids(batch):
    states = np.array([[TRAIN, TEST, NONE]] * 4)
    ds = make_dataset(states, user_ids=np.array(["alice", "bob", "carol", "dave"]))
    user_emb = torch.ones(4, 2)
    user_emb[1, 0] = float("nan")
    user_emb[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN") as info:
        Evaluator(ds, EvalConfig(ks=[1], user_batch_size=batch)).evaluate(
            user_emb, torch.ones(3, 2), "test"
        )
    msg = str(info.value)
    assert "bob" in msg
    assert "alice" not in msg and "carol" not in msg
    if batch == 0:  # both NaN users are in the one batch
        assert "dave" in msg


def test_wrong_embedding_shapes_raise():
    ds = make_dataset(np.array([[TRAIN, TEST, NONE]]))
    with pytest.raises(ValueError, match="embeddings have"):
        Evaluator(ds).evaluate(torch.ones(1, 2), torch.ones(4, 2), "test")
    with pytest.raises(ValueError, match="split"):
        Evaluator(ds).evaluate(torch.ones(1, 2), torch.ones(3, 2), "train")


# per-user values


def _per_user_case():
    rng = np.random.default_rng(1)
    states = rng.choice([NONE, TRAIN, TEST], p=[0.5, 0.3, 0.2], size=(12, 9))
    states[4] = NONE  # a user that is not evaluated sits between evaluated ones
    states[4, 0] = TEST
    user_ids = np.array([f"raw-{100 + u}" for u in range(12)])
    ds = make_dataset(states, user_ids=user_ids)
    emb = (
        torch.from_numpy(rng.normal(size=(12, 3))).float(),
        torch.from_numpy(rng.normal(size=(9, 3))).float(),
    )
    return states, ds, emb, user_ids


def test_per_user_values_line_up_with_users_and_average_to_metrics():
    states, ds, emb, _ = _per_user_case()
    result = Evaluator(ds, EvalConfig(ks=[2, 5], user_batch_size=5)).evaluate(*emb, "test")
    assert 4 not in result.users
    users, expected = reference(states, (emb[0] @ emb[1].T).numpy(), "test", [2, 5], False)
    assert_matches_reference(result, users, expected)
    for name, values in result.per_user.items():
        assert values.shape == result.users.shape
        assert result.metrics[name] == pytest.approx(values.mean(), rel=1e-12)


def test_save_per_user_writes_raw_user_ids(tmp_path):
    _, ds, emb, user_ids = _per_user_case()
    result = Evaluator(ds, EvalConfig(ks=[2])).evaluate(*emb, "test")
    path = tmp_path / "out" / "per_user.npz"
    result.save_per_user(str(path), ds.user_ids)
    with np.load(path) as data:
        np.testing.assert_array_equal(data["user_idx"], result.users)
        assert data["user_id"].tolist() == [user_ids[u] for u in result.users]
        np.testing.assert_array_equal(data["recall_at_2"], result.per_user["recall@2"])
        np.testing.assert_array_equal(data["ndcg_at_2"], result.per_user["ndcg@2"])
