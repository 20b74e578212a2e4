"""FREEDOM against the reference's behaviour: a frozen, mixed, self-including kNN item graph;
degree-sensitive pruning that keeps floor((1 - dropout) |E|) edges per epoch; the loss as
BPR + reg_weight * the per-modality BPR terms, checked against a dense hand computation."""

from dataclasses import replace

import freedom_oracle as oracle
import numpy as np
import pytest
import torch

from cranerec.config import from_dict
from cranerec.models.base import Batch
from cranerec.models.freedom import FREEDOM, FREEDOMConfig
from cranerec.models.frozen_graph import modality_weights
from cranerec.train.config import resolve_config


def _model(data, **settings):
    torch.manual_seed(0)
    return FREEDOM(data, from_dict(FREEDOMConfig, settings))


def _edges(data):
    coo = data.train.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64)


def _batch():
    return Batch(
        user_idx=torch.tensor([0, 3, 3, 17, 42, 199]),
        pos_idx=torch.tensor([5, 0, 7, 119, 64, 2]),
        neg_idx=torch.tensor([9, 11, 1, 3, 64, 100]),
    )


def test_modality_weight_rule():
    assert modality_weights(1, 0.1) == [1.0]
    assert modality_weights(2, 0.1) == pytest.approx([0.1, 0.9])
    assert modality_weights(3, 0.1) == pytest.approx([0.1, 0.45, 0.45])


@pytest.mark.parametrize("n_modalities", [1, 2, 3])
def test_item_graph_is_the_mixed_self_including_brute_force_knn(tiny_data, n_modalities):
    rng = np.random.default_rng(7)
    feats = dict(tiny_data.features)
    feats["extra"] = rng.normal(size=(tiny_data.n_items, 6)).astype(np.float32)
    data = replace(tiny_data, features=dict(list(feats.items())[:n_modalities]))
    model = _model(data, knn_k=4)
    weights = modality_weights(n_modalities, 0.1)
    expected = oracle.item_graph(list(data.features.values()), 4, weights)
    got = model.adj_item.to_dense().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)  # each S^m is A^m / k
    np.testing.assert_allclose(np.diag(got), 1 / 4, rtol=1e-6)  # self in every modality's list
    np.testing.assert_array_equal(model.adj_item_t.to_dense().numpy(), got.T)


def test_item_graph_stays_frozen_while_the_pruned_graph_is_resampled(tiny_data):
    model = _model(tiny_data).train()
    raw = {m: x.copy() for m, x in tiny_data.features.items()}
    item_graph = model.adj_item.to_dense().clone()
    model.pre_epoch(0, np.random.default_rng(0))
    first = model.graph.adj_train.to_dense().clone()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model.loss(_batch())[0].backward()
    opt.step()  # the features are fine-tuned (as in the reference)...
    feature = model.features[model.modalities[0]].detach().numpy()
    assert not np.array_equal(feature, raw[model.modalities[0]])
    model.pre_epoch(1, np.random.default_rng(1))
    assert torch.equal(model.adj_item.to_dense(), item_graph)  # ...but the graph stays frozen
    assert not torch.equal(model.graph.adj_train.to_dense(), first)  # the pruning is resampled
    for m, x in raw.items():  # fine-tuning never writes into the dataset
        np.testing.assert_array_equal(tiny_data.features[m], x)


@pytest.mark.parametrize("dropout", [0.8, 0.9, 0.5])
def test_pruning_keeps_the_reference_count_and_renormalises(tiny_data, dropout):
    model = _model(tiny_data, dropout=dropout).train()
    users, items = _edges(tiny_data)
    n_keep = int(len(users) * (1.0 - dropout))  # the reference: int(|E| * (1 - dropout))
    keep = model.pruned_edges(np.random.default_rng(3))
    assert keep.sum() == n_keep
    model.pre_epoch(0, np.random.default_rng(3))
    assert model.graph.adj_train.to_dense().count_nonzero() == 2 * n_keep
    expected = oracle.ui_graph(model.n_users, model.n_items, users[keep], items[keep])
    np.testing.assert_allclose(
        model.graph.adj_train.to_dense().numpy(), expected, rtol=1e-6, atol=1e-7
    )


def test_pruning_prefers_edges_between_low_degree_nodes(tiny_data):
    model = _model(tiny_data)
    users, items = _edges(tiny_data)
    d_u, d_i = np.bincount(users), np.bincount(items)
    p = 1 / np.sqrt(d_u[users] * d_i[items])
    kept = np.mean([model.pruned_edges(np.random.default_rng(s)) for s in range(30)], axis=0)
    low, high = p > np.quantile(p, 0.75), p < np.quantile(p, 0.25)
    assert kept[low].mean() > kept[high].mean()


def test_no_dropout_and_inference_use_the_full_graph(tiny_data):
    model = _model(tiny_data, dropout=0.0)
    model.pre_epoch(0, np.random.default_rng(0))
    assert model.graph.adj_train is None  # training propagates over graph.adj
    users, items = _edges(tiny_data)
    full = oracle.ui_graph(model.n_users, model.n_items, users, items)
    np.testing.assert_allclose(model.graph.adj.to_dense().numpy(), full, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("n_ui_layers", "n_mm_layers"), [(2, 1), (1, 2)])
def test_loss_and_scores_equal_a_hand_computation(tiny_data, n_ui_layers, n_mm_layers):
    reg_weight = 0.3  # large, so that the modality terms weigh in the comparison
    model = _model(
        tiny_data, n_ui_layers=n_ui_layers, n_mm_layers=n_mm_layers, reg_weight=reg_weight
    )
    users, items = _edges(tiny_data)
    keep = model.pruned_edges(np.random.default_rng(4))
    model.train()
    model.pre_epoch(0, np.random.default_rng(4))
    batch = _batch()
    total, parts = model.loss(batch)

    s = oracle.item_graph(list(tiny_data.features.values()), 10, [0.1, 0.9])
    adj = oracle.ui_graph(model.n_users, model.n_items, users[keep], items[keep])
    user_out, item_out = oracle.lightgcn(adj, model.user_emb, model.item_emb, n_ui_layers)
    h = oracle._np(model.item_emb)
    for _ in range(n_mm_layers):
        h = s @ h  # the item ID table through the item graph
    item_out = item_out + h
    u = user_out[batch.user_idx]
    rank = oracle.bpr(u, item_out[batch.pos_idx], item_out[batch.neg_idx])
    modal = {}
    for m in model.modalities:
        proj = tiny_data.features[m].astype(np.float64) @ oracle._np(model.project[m].weight).T
        modal[m] = oracle.bpr(u, proj[batch.pos_idx], proj[batch.neg_idx])
    assert set(parts) == {"bpr"} | {f"bpr_{m}" for m in model.modalities}
    assert float(parts["bpr"]) == pytest.approx(rank, rel=1e-5)
    for m, value in modal.items():
        assert float(parts[f"bpr_{m}"]) == pytest.approx(value, rel=1e-5)
    assert float(total.detach()) == pytest.approx(rank + reg_weight * sum(modal.values()), rel=1e-5)

    # inference: the full graph, users without a multimodal part
    full = oracle.ui_graph(model.n_users, model.n_items, users, items)
    user_full, item_full = oracle.lightgcn(full, model.user_emb, model.item_emb, n_ui_layers)
    got_users, got_items = model.export_embeddings()
    np.testing.assert_allclose(got_users.numpy(), user_full, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got_items.numpy(), item_full + h, rtol=1e-4, atol=1e-6)


def test_frozen_features_are_buffers_and_the_model_still_trains(tiny_data):
    model = _model(tiny_data, tune_features=False).train()
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith("features.") for n in names)
    loss, _ = model.loss(_batch())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_reference_preset_is_the_papers_point():
    config = resolve_config({"model": {"name": "freedom"}, "preset": "reference"})
    m = config.model
    assert (m.knn_k, m.mm_image_weight, m.dropout, m.reg_weight) == (10, 0.1, 0.8, 1e-4)
    assert (m.n_mm_layers, m.n_ui_layers, m.embedding_dim, m.tune_features) == (1, 2, 64, True)
    t = config.train
    assert (t.lr, t.batch_size, t.epochs, t.patience, t.negative_pool) == (
        1e-3, 2048, 1000, 20, "seen",
    )  # fmt: skip
    assert from_dict(FREEDOMConfig, {}) == m  # the defaults are the reference point


@pytest.mark.parametrize("bad", [{"dropout": 1.0}, {"dropout": -0.1}, {"mm_image_weight": 1.5}])
def test_invalid_settings_are_refused(bad):
    from cranerec.config import ConfigError

    with pytest.raises(ConfigError):
        from_dict(FREEDOMConfig, bad)


def test_the_image_modality_gets_the_image_weight_whatever_its_file_order(tiny_data):
    """TikTok's modalities load as (audio, image): the reference's 0.1 still goes to image."""
    from dataclasses import replace

    from cranerec.config import from_dict
    from cranerec.models.freedom import FREEDOM, FREEDOMConfig

    feats = tiny_data.features
    renamed = replace(tiny_data, features={"audio": feats["text"], "image": feats["image"]})
    swapped = replace(tiny_data, features={"image": feats["image"], "audio": feats["text"]})
    cfg = from_dict(FREEDOMConfig, {})
    a, b = FREEDOM(renamed, cfg), FREEDOM(swapped, cfg)
    assert a.modalities == b.modalities == ["image", "audio"]
    torch.testing.assert_close(a.adj_item.to_dense(), b.adj_item.to_dense())
