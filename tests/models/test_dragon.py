"""DRAGON: the forward and the loss against dense hand computations (summed branch layers,
attentive concatenation, the user co-occurrence graph from a pair loop, the item kNN graph from
a loop over cosines), cold-start items, the checkerboard, and its settings."""

import dataclasses

import numpy as np
import pytest
import torch
from checkerboard import held_out_recall
from naive_dualgnn import assert_preference_loss, dense_branches, dense_user_graph

from cranerec.config import ConfigError, from_dict
from cranerec.models.dragon import DRAGON, DRAGONConfig
from cranerec.train.config import resolve_config
from cranerec.train.sampler import InteractionSampler

K = 20  # every tiny_data user shares items with >= 33 others: no random padding


def _model(data, **settings):
    torch.manual_seed(0)
    return DRAGON(data, from_dict(DRAGONConfig, {"embedding_dim": 8, "user_knn_k": K, **settings}))


def _dense_item_graph(data, modalities, k, image_weight):
    """S [I, I] = sum_m w_m A^m / k, A^m[i, j] = 1 for i's top-k cosines (itself included)."""
    weights = [1.0] if len(modalities) == 1 else [image_weight, 1.0 - image_weight]
    s = torch.zeros(data.n_items, data.n_items, dtype=torch.float64)
    for m, w in zip(modalities, weights, strict=True):
        x = torch.from_numpy(data.features[m]).double()
        x = x / x.norm(dim=1, keepdim=True)
        sim = x @ x.T
        for i in range(data.n_items):
            order = sorted(range(data.n_items), key=lambda j: (-float(sim[i, j]), j))[:k]
            s[i, order] += w / k
    return s.float()


def _dense_forward(model, data, n_ui_layers, n_mm_layers):
    users, items = dense_branches(model, data, n_ui_layers)
    a = model.weight_u
    if a is None:
        user0 = users[0]
    else:
        user0 = torch.cat([a[:, n : n + 1] * u for n, u in enumerate(users)], dim=1)
    item0 = torch.cat(items, dim=1)
    w = dense_user_graph(data.train, model.config.user_knn_k, model.user_graph.slots)
    s = _dense_item_graph(data, model.modalities, model.config.knn_k, 0.1)
    h = item0
    for _ in range(n_mm_layers):
        h = s @ h
    return user0 + w @ user0, item0 + h


@pytest.mark.parametrize(("n_ui_layers", "n_mm_layers"), [(2, 1), (1, 2)])
def test_forward_equals_the_dense_computation(tiny_data, n_ui_layers, n_mm_layers):
    model = _model(tiny_data, n_ui_layers=n_ui_layers, n_mm_layers=n_mm_layers)
    users, items = model()
    assert users.shape == (tiny_data.n_users, 16)  # two modalities of 8, concatenated
    exp_users, exp_items = _dense_forward(model, tiny_data, n_ui_layers, n_mm_layers)
    torch.testing.assert_close(users, exp_users, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(items, exp_items, rtol=1e-4, atol=1e-5)


def test_one_modality_has_no_fusion_weights_and_no_image_is_needed(tiny_data):
    text_only = dataclasses.replace(tiny_data, features={"text": tiny_data.features["text"]})
    model = _model(text_only)
    assert model.weight_u is None and model.modalities == ["text"]
    users, items = model()
    exp_users, exp_items = _dense_forward(model, text_only, 2, 1)
    torch.testing.assert_close(users, exp_users, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(items, exp_items, rtol=1e-4, atol=1e-5)


def test_loss_is_bpr_in_bits_plus_the_preference_and_fusion_penalties(tiny_data):
    model = _model(tiny_data, reg_weight=0.3)
    sampler = InteractionSampler(tiny_data.train)
    batch = next(sampler.epoch("triples", 32, np.random.default_rng(0), torch.device("cpu")))
    users, items = _dense_forward(model, tiny_data, 2, 1)
    assert_preference_loss(model, batch, users, items, 0.3)


def test_the_epochs_user_graph_is_saved_with_the_weights(tiny_data):
    model = _model(tiny_data, user_knn_k=40)  # some users have < 40 neighbours: padded
    model.pre_epoch(0, np.random.default_rng(3))
    other = _model(tiny_data, user_knn_k=40)
    other.load_state_dict(model.state_dict())
    for a, b in zip(model.export_embeddings(), other.export_embeddings(), strict=True):
        assert torch.equal(a, b)


def test_a_trained_item_passed_in_as_new_gets_what_the_docstring_says(tiny_data):
    model = _model(tiny_data).eval()
    rows = [3, 50, 77]
    feats = {m: torch.from_numpy(tiny_data.features[m][rows]) for m in tiny_data.modalities}
    got = model.items_from_features(feats, tiny_data)
    with torch.no_grad():
        _, item0 = model.concatenated()
        h = model.semantic_items(item0)
        x = torch.cat([model.gcn[m].item_inputs(feats[m]) for m in model.modalities], dim=1)
    k = model.config.knn_k
    expected = x + h[rows]
    for m, w in zip(model.modalities, [0.1, 0.9], strict=True):
        xm = torch.from_numpy(tiny_data.features[m]).double()
        xm = xm / xm.norm(dim=1, keepdim=True)
        for n, i in enumerate(rows):
            sim = (xm[i] @ xm.T).tolist()
            order = sorted(range(tiny_data.n_items), key=lambda j: (-sim[j], j))[:k]
            assert order[0] == i  # the item heads its own list
            expected[n] -= w / k * (item0[order[-1]] - x[n])  # its last neighbour -> the copy
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_a_new_item_changes_no_trained_vector(tiny_data):
    model = _model(tiny_data).eval()
    before = model.export_embeddings()
    feats = {m: torch.randn(4, x.shape[1]) for m, x in tiny_data.features.items()}
    assert model.items_from_features(feats, tiny_data).shape == (4, 16)
    for a, b in zip(before, model.export_embeddings(), strict=True):
        assert torch.equal(a, b)


def test_checkerboard(tmp_path):
    overrides = ["model.user_knn_k=5", "model.knn_k=5", "model.reg_weight=0.001",
                 "train.epochs=10", "train.patience=10"]  # fmt: skip
    assert held_out_recall("dragon", tmp_path, overrides, widths={"image": 8, "text": 6}) >= 0.95


@pytest.mark.parametrize(
    ("key", "value"),
    [("knn_k", 0), ("user_knn_k", 0), ("mm_image_weight", 1.5), ("user_aggr", "max")],
)
def test_bad_settings_are_refused_by_name(key, value):
    with pytest.raises(ConfigError, match=key):
        from_dict(DRAGONConfig, {key: value})


def test_presets_are_the_papers_settings():
    config = resolve_config({"model": {"name": "dragon"}, "preset": "reference"})
    assert config.model == DRAGONConfig()
    assert (config.train.lr, config.train.batch_size, config.train.patience) == (1e-4, 2048, 20)
    assert config.train.negative_pool == "seen"
    clothing = resolve_config({"model": {"name": "dragon"}, "preset": "clothing"})
    assert clothing.model.reg_weight == 0.1
