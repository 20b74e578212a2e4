"""DualGNN: the forward and the loss against dense hand computations (layers summed, the
reference's aliased user fusion, the co-occurrence graph from a pair loop), cold-start items,
the checkerboard, and its settings."""

import dataclasses

import numpy as np
import pytest
import torch
from checkerboard import held_out_recall
from naive_dualgnn import assert_preference_loss, dense_branches, dense_user_graph

from cranerec.config import ConfigError, from_dict
from cranerec.models.dualgnn import DualGNN, DualGNNConfig
from cranerec.train.config import resolve_config
from cranerec.train.sampler import InteractionSampler

K = 20  # every tiny_data user shares items with >= 33 others: no random padding


def _model(data, **settings):
    torch.manual_seed(0)
    return DualGNN(
        data, from_dict(DualGNNConfig, {"embedding_dim": 8, "user_knn_k": K, **settings})
    )


def _dense_forward(model, data, n_layers, fusion):
    """users, items of the module docstring, with dense matrices."""
    users, items = dense_branches(model, data, n_layers)
    a = model.weight_u
    if a is None:
        u = users[0]
    elif fusion == "aliased":  # the image slot holds the sum of every modality
        u = a[:, :1] * sum(users) + sum(a[:, n : n + 1] * users[n] for n in range(1, len(users)))
    else:
        u = sum(a[:, n : n + 1] * users[n] for n in range(len(users)))
    w = dense_user_graph(data.train, model.config.user_knn_k, model.user_graph.slots)
    return u + w @ u, sum(items)


@pytest.mark.parametrize(("fusion", "n_layers"), [("aliased", 2), ("weighted", 1)])
def test_forward_equals_the_dense_computation(tiny_data, fusion, n_layers):
    model = _model(tiny_data, user_fusion=fusion, n_layers=n_layers)
    users, items = model()
    exp_users, exp_items = _dense_forward(model, tiny_data, n_layers, fusion)
    torch.testing.assert_close(users, exp_users, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(items, exp_items, rtol=1e-4, atol=1e-5)


def test_one_modality_has_no_fusion_weights_and_no_image_is_needed(tiny_data):
    text_only = dataclasses.replace(tiny_data, features={"text": tiny_data.features["text"]})
    model = _model(text_only)
    assert model.weight_u is None and model.modalities == ["text"]
    users, items = model()
    exp_users, exp_items = _dense_forward(model, text_only, 2, "aliased")
    torch.testing.assert_close(users, exp_users, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(items, exp_items, rtol=1e-4, atol=1e-5)


def test_loss_is_bpr_in_bits_plus_the_preference_and_fusion_penalties(tiny_data):
    model = _model(tiny_data, reg_weight=0.3)
    sampler = InteractionSampler(tiny_data.train)
    batch = next(sampler.epoch("triples", 32, np.random.default_rng(0), torch.device("cpu")))
    users, items = _dense_forward(model, tiny_data, 2, "aliased")
    assert_preference_loss(model, batch, users, items, 0.3)


def test_the_epochs_user_graph_is_saved_with_the_weights(tiny_data):
    model = _model(tiny_data, user_knn_k=40)  # some users have < 40 neighbours: padded
    model.pre_epoch(0, np.random.default_rng(3))
    other = _model(tiny_data, user_knn_k=40)  # its own draw (seed 0)
    assert not torch.equal(other.user_graph.slots, model.user_graph.slots)
    other.load_state_dict(model.state_dict())
    for a, b in zip(model.export_embeddings(), other.export_embeddings(), strict=True):
        assert torch.equal(a, b)


def test_a_new_item_is_an_item_without_interactions(tiny_data):
    """items_from_features is what the model computes for a trained item whose interactions
    are removed (no graph terms): sum_m rownorm(MLP_m(x^m))."""
    model = _model(tiny_data).eval()
    rows = [3, 50]
    train = tiny_data.train.tolil()
    train[:, rows] = 0
    isolated = dataclasses.replace(tiny_data, train=train.tocsr())
    twin = DualGNN(isolated, model.config).eval()
    twin.load_state_dict(model.state_dict())
    feats = {m: torch.from_numpy(tiny_data.features[m][rows]) for m in tiny_data.modalities}
    new = model.items_from_features(feats, tiny_data)
    torch.testing.assert_close(new, twin.export_embeddings()[1][rows])


def test_checkerboard(tmp_path):
    overrides = ["model.user_knn_k=5", "model.reg_weight=0.001", "train.epochs=10",
                 "train.patience=10"]  # fmt: skip
    assert held_out_recall("dualgnn", tmp_path, overrides, widths={"image": 8, "text": 6}) >= 0.95


@pytest.mark.parametrize(
    ("key", "value"),
    [("user_knn_k", 0), ("user_fusion", "sum"), ("user_aggr", "max"), ("reg_weight", -1.0)],
)
def test_bad_settings_are_refused_by_name(key, value):
    with pytest.raises(ConfigError, match=key):
        from_dict(DualGNNConfig, {key: value})


def test_reference_preset():
    config = resolve_config({"model": {"name": "dualgnn"}, "preset": "reference"})
    assert config.model == DualGNNConfig()
    assert (config.train.lr, config.train.batch_size, config.train.patience) == (1e-4, 2048, 20)
    assert config.train.negative_pool == "seen"
