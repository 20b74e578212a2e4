"""BM3: the loss equals a hand computation (dropout 0), its targets carry no gradient, it needs
no negatives, and scores go through the predictor."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cranerec.config import from_dict
from cranerec.models import Batch
from cranerec.models.bm3 import BM3, BM3Config
from cranerec.train.config import resolve_config
from cranerec.train.sampler import InteractionSampler


def _model(data, **settings):
    torch.manual_seed(0)
    return BM3(data, from_dict(BM3Config, {"embedding_dim": 8, **settings}))


def _positives(data):
    sampler = InteractionSampler(data.train)
    return next(sampler.epoch("positives", 32, np.random.default_rng(0), torch.device("cpu")))


def _dense_h(model, data, n_layers):
    """LightGCN mean over layers 0..L on the dense D^-1/2 A D^-1/2, item ID added again."""
    r = data.train.toarray().astype(np.float64)
    n_u, n_i = r.shape
    a = np.zeros((n_u + n_i, n_u + n_i))
    a[:n_u, n_u:], a[n_u:, :n_u] = r, r.T
    deg = a.sum(1)
    d = np.where(deg > 0, deg**-0.5, 0.0)
    a_hat = torch.from_numpy(d[:, None] * a * d[None, :]).float()
    layers = [torch.cat([model.user_emb, model.item_emb])]
    for _ in range(n_layers):
        layers.append(a_hat @ layers[-1])
    out = torch.stack(layers).mean(0)
    return out[:n_u], out[n_u:] + model.item_emb


def _hand_loss(model, data, batch, n_layers, cl_weight, reg_weight):
    """The reference's loss with dropout 0: targets are the detached online representations."""
    pred = model.predictor
    h_u, h_i = _dense_h(model, data, n_layers)
    u, i = h_u[batch.user_idx], h_i[batch.pos_idx]

    def dist(a, b):
        return 1 - F.cosine_similarity(a, b.detach(), dim=-1).mean()

    loss = dist(pred(u), i) + dist(pred(i), u)
    for m in ("image", "text"):
        z = model.project[m](model.features[m][batch.pos_idx])
        loss = loss + cl_weight * (dist(pred(z), i) + dist(pred(z), z))
    reg = (h_u.norm() + h_i.norm()) / data.n_items  # MMRec's EmbLoss on the full tables
    return loss + reg_weight * reg


@pytest.mark.parametrize("n_layers", [1, 2])
def test_loss_and_its_gradients_equal_the_hand_computation_with_stopped_targets(
    tiny_data, n_layers
):
    batch = _positives(tiny_data)
    assert batch.neg_idx is None  # BM3 trains on (user, positive) pairs only
    model = _model(tiny_data, n_layers=n_layers, dropout=0.0, reg_weight=0.3)
    loss, parts = model.loss(batch)
    loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    expected = _hand_loss(model, tiny_data, batch, n_layers, cl_weight=2.0, reg_weight=0.3)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(sum(parts.values()), loss.detach())
    for name, p in model.named_parameters():  # a target carrying gradient would change these
        torch.testing.assert_close(got[name], p.grad, msg=name)


def test_negatives_in_a_batch_are_ignored(tiny_data):
    model = _model(tiny_data, dropout=0.0)
    batch = _positives(tiny_data)
    with_negatives = Batch(batch.user_idx, batch.pos_idx, torch.zeros_like(batch.pos_idx))
    assert model.batch_kind == "positives"
    torch.testing.assert_close(model.loss(batch)[0], model.loss(with_negatives)[0])


def test_dropout_makes_a_random_target_view(tiny_data):
    model = _model(tiny_data, dropout=0.5)
    batch = _positives(tiny_data)
    torch.manual_seed(1)
    a = model.loss(batch)[0]
    torch.manual_seed(1)
    b = model.loss(batch)[0]
    c = model.loss(batch)[0]
    torch.testing.assert_close(a, b)  # randomness from torch's seeded generator only
    assert not torch.allclose(a, c)


def test_scores_are_inner_products_after_the_predictor(tiny_data):
    model = _model(tiny_data)
    h_u, h_i = _dense_h(model, tiny_data, 1)
    user_emb, item_emb = model.export_embeddings()
    expected = model.predictor(h_u) @ model.predictor(h_i).T
    torch.testing.assert_close(user_emb @ item_emb.T, expected.detach(), rtol=1e-4, atol=1e-5)


def test_feature_tables_are_trained_as_in_the_reference_unless_told(tiny_data):
    assert {n for n, _ in _model(tiny_data).named_parameters()} >= {
        "features.image",
        "features.text",
    }
    fixed = _model(tiny_data, tune_features=False)
    assert not any(n.startswith("features") for n, _ in fixed.named_parameters())
    assert torch.isfinite(fixed.loss(_positives(tiny_data))[0])


def test_presets_are_the_authors_best_settings():
    config = resolve_config({"model": {"name": "bm3"}, "preset": "reference"})
    assert config.model == BM3Config()
    elec = resolve_config({"model": {"name": "bm3"}, "preset": "elec"}).model
    assert (elec.n_layers, elec.dropout, elec.reg_weight) == (2, 0.3, 0.1)
