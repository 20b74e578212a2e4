"""MMGCN: each modality's layers equal a dense numpy computation; the reference's frozen IDs and
preferences; its loss."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cranerec.config import from_dict
from cranerec.data.dataset import Dataset
from cranerec.models import Batch
from cranerec.models.mmgcn import MMGCN, MMGCNConfig
from cranerec.train.config import resolve_config


@pytest.fixture
def toy():
    """3 users, 4 items; item 3 has no training interaction (its mean aggregation is 0)."""
    rng = np.random.default_rng(0)
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 0]], np.float32))
    empty = sp.csr_matrix((3, 4), dtype=np.float32)
    features = {"image": rng.normal(size=(4, 6)), "text": rng.normal(size=(4, 3))}
    return Dataset("toy", train, empty, empty, np.arange(3), np.arange(4), features)


def _model(data, **settings):
    torch.manual_seed(0)
    config = {"embedding_dim": 5, "latent_dim": 4, **settings}
    return MMGCN(data, from_dict(MMGCNConfig, config))


def _np(t):
    return t.detach().double().numpy()


def _leaky(x):
    return np.where(x > 0, x, 0.01 * x)


def _dense_modality(gcn, r, features, id_emb):
    """The reference's layers written densely: mean over neighbours, ID injection, concat."""
    n_u, n_i = r.shape
    a = np.zeros((n_u + n_i, n_u + n_i))
    a[:n_u, n_u:], a[n_u:, :n_u] = r, r.T
    deg = a.sum(1, keepdims=True)
    a_mean = np.divide(a, deg, out=np.zeros_like(a), where=deg > 0)
    items = features if gcn.mlp is None else features @ _np(gcn.mlp.weight).T + _np(gcn.mlp.bias)
    x = np.concatenate([_np(gcn.preference), items])
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    for w1, w2, w3 in zip(gcn.aggregate, gcn.inject, gcn.combine, strict=True):
        h = _leaky(a_mean @ x @ _np(w1))
        x_hat = _leaky(x @ _np(w2.weight).T + _np(w2.bias)) + id_emb
        x = _leaky(np.concatenate([h, x_hat], 1) @ _np(w3.weight).T + _np(w3.bias))
    return x


@pytest.mark.parametrize("n_layers", [1, 3])
@pytest.mark.parametrize("fusion", ["mean", "sum"])
def test_forward_equals_dense_per_modality_layers_fused(toy, n_layers, fusion):
    model = _model(toy, n_layers=n_layers, fusion=fusion)
    r = toy.train.toarray().astype(np.float64)
    id_emb = _np(model.id_emb)
    reps = [
        _dense_modality(model.gcn[m], r, toy.features[m].astype(np.float64), id_emb)
        for m in ("image", "text")
    ]
    expected = sum(reps) / (2 if fusion == "mean" else 1)
    user_emb, item_emb = model.export_embeddings()
    np.testing.assert_allclose(user_emb.numpy(), expected[:3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(item_emb.numpy(), expected[3:], rtol=1e-5, atol=1e-6)


def test_image_goes_through_the_mlp_and_text_stays_raw(toy):
    model = _model(toy)
    assert model.gcn["image"].preference.shape == (3, 4)  # latent_dim
    assert model.gcn["text"].mlp is None and model.gcn["text"].preference.shape == (3, 3)


def test_ids_and_preferences_frozen_as_in_the_reference_but_saved(toy):
    frozen = _model(toy)
    names = dict(frozen.named_parameters())
    assert "id_emb" not in names and not any("preference" in n for n in names)
    assert "id_emb" in frozen.state_dict() and "gcn.text.preference" in frozen.state_dict()
    learned = _model(toy, freeze_embeddings=False)
    loss, _ = learned.loss(Batch(torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([3, 3])))
    loss.backward()
    assert learned.id_emb.grad.abs().sum() > 0
    assert learned.gcn["image"].preference.grad.abs().sum() > 0


def test_loss_is_bpr_plus_the_reference_mean_square_term(toy):
    model = _model(toy, reg_weight=0.5)
    batch = Batch(torch.tensor([0, 1, 1]), torch.tensor([0, 2, 1]), torch.tensor([3, 0, 3]))
    loss, parts = model.loss(batch)
    user_emb, item_emb = model.export_embeddings()
    u, i, j = user_emb[batch.user_idx], item_emb[batch.pos_idx], item_emb[batch.neg_idx]
    bpr = -torch.log(torch.sigmoid((u * i).sum(1) - (u * j).sum(1))).mean()
    # MMRec: users repeated twice, items interleaved (pos, neg), mean over the [2B, d] entries.
    users2 = batch.user_idx.repeat_interleave(2)
    items2 = 3 + torch.stack([batch.pos_idx, batch.neg_idx], 1).reshape(-1)
    reg = (model.id_emb[users2] ** 2 + model.id_emb[items2] ** 2).mean()
    reg = reg + sum((model.gcn[m].preference ** 2).mean() for m in ("image", "text"))
    assert torch.allclose(parts["bpr"], bpr) and torch.allclose(parts["reg"], 0.5 * reg)
    assert torch.allclose(loss, bpr + 0.5 * reg)


def test_reference_preset_is_the_default_model_config():
    config = resolve_config({"model": {"name": "mmgcn"}, "preset": "reference"})
    assert config.model == MMGCNConfig() and config.model.n_layers == 3


def test_gradient_through_the_mean_aggregation_uses_its_transpose(toy):
    """The row-normalised graph is not symmetric: the custom backward must use D^-1 A's
    transpose (compared with torch's own sparse backward)."""
    batch = Batch(torch.tensor([0, 1, 2]), torch.tensor([0, 2, 0]), torch.tensor([3, 1, 2]))
    grads = []
    for own_backward in (False, True):
        model = _model(toy)
        if own_backward:
            model.adj_mean_t = None  # sparse_mm falls back to torch.sparse.mm's backward
        model.loss(batch)[0].backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])
