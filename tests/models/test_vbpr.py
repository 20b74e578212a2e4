"""VBPR: the score is the ID part plus the projected-feature part; MMRec's loss; features only
move their own item's scores."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from cranerec.config import from_dict
from cranerec.models import Batch
from cranerec.models.vbpr import VBPR, VBPRConfig
from cranerec.train.config import resolve_config


def _model(data, **settings):
    torch.manual_seed(0)
    return VBPR(data, from_dict(VBPRConfig, {"embedding_dim": 8, **settings}))


def _scores(model):
    user_emb, item_emb = model.export_embeddings()
    return (user_emb @ item_emb.T).double().numpy()


def test_score_is_id_part_plus_projected_feature_part(tiny_data):
    model = _model(tiny_data)
    d = 8
    f = np.concatenate([tiny_data.features["image"], tiny_data.features["text"]], 1)
    e, b = model.project.weight.detach().double().numpy(), model.project.bias.detach().double()
    user = model.user_emb.detach().double().numpy()
    gamma_u, theta_u = user[:, :d], user[:, d:]
    gamma_i = model.item_emb.detach().double().numpy()
    expected = gamma_u @ gamma_i.T + theta_u @ (f.astype(np.float64) @ e.T + b.numpy()).T
    assert model.user_emb.shape == (tiny_data.n_users, 2 * d)  # user width 2d, item [d ; d]
    np.testing.assert_allclose(_scores(model), expected, rtol=1e-4, atol=1e-5)


def test_changing_an_items_features_changes_only_its_score_column(tiny_data):
    model = _model(tiny_data)
    features = {k: v.copy() for k, v in tiny_data.features.items()}
    features["text"][7] += 1.0
    other = VBPR(replace(tiny_data, features=features), model.config)
    other.load_state_dict(model.state_dict())  # features are data, not weights
    diff = np.abs(_scores(other) - _scores(model)).max(axis=0)
    assert diff[7] > 1e-3
    assert np.all(np.delete(diff, 7) == 0)


def test_loss_is_bpr_plus_mmrec_frobenius_term_on_whole_item_vectors(tiny_data):
    model = _model(tiny_data, reg_weight=0.5)
    batch = Batch(torch.tensor([0, 3, 3]), torch.tensor([1, 2, 5]), torch.tensor([4, 9, 0]))
    loss, parts = model.loss(batch)
    user_emb, item_emb = model.export_embeddings()
    u, i, j = user_emb[batch.user_idx], item_emb[batch.pos_idx], item_emb[batch.neg_idx]
    bpr = -torch.log(torch.sigmoid((u * i).sum(1) - (u * j).sum(1))).mean()
    reg = 0.5 * (u.norm() + i.norm() + j.norm()) / 3
    assert torch.allclose(parts["bpr"], bpr) and torch.allclose(parts["reg"], reg)
    assert torch.allclose(loss, bpr + reg)


def test_refuses_data_without_features(tiny_data):
    with pytest.raises(ValueError, match="needs at least 1 feature modality"):
        _model(replace(tiny_data, features={}))


def test_reference_preset_is_the_default_model_config():
    config = resolve_config({"model": {"name": "vbpr"}, "preset": "reference"})
    assert config.model == VBPRConfig() and config.train.negative_pool == "seen"
