"""GRCN against the reference's behaviour, recomputed with per-node loops and dense matrices: the
content views (dot-product attention over the user-item graph), the refined edge weights
(confidence-scaled max over modalities, pruned by ReLU), the ID view over the refined graph, the
concatenated representation, the loss and its regularisation, and cold-start items."""

import dataclasses
from dataclasses import replace

import numpy as np
import pytest
import torch
from checkerboard import held_out_recall

from cranerec.config import ConfigError, from_dict
from cranerec.models.base import Batch
from cranerec.models.grcn import GRCN, GRCNConfig
from cranerec.train.config import resolve_config


def _model(data, **settings):
    torch.manual_seed(0)
    return GRCN(data, from_dict(GRCNConfig, settings))


def _with_modalities(data, names):
    feats = dict(data.features)
    feats["extra"] = np.random.default_rng(7).normal(size=(data.n_items, 6)).astype(np.float32)
    return replace(data, features={m: feats[m] for m in names})


def _batch():
    return Batch(
        user_idx=torch.tensor([0, 3, 3, 17, 42, 199]),
        pos_idx=torch.tensor([5, 0, 7, 119, 64, 5]),
        neg_idx=torch.tensor([9, 11, 1, 3, 64, 100]),
    )


def _np(t):
    return t.detach().double().numpy()


def _rownorm(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def dense_representation(model, data):
    """r = [g ; c^1 ; ...] computed node by node from the interaction matrix."""
    n_u, n_i = data.n_users, data.n_items
    r = data.train.toarray() > 0
    nbrs = [np.flatnonzero(r[u]) + n_u for u in range(n_u)]  # node ids of u's items
    nbrs += [np.flatnonzero(r[:, i]) for i in range(n_i)]  # users of item i
    views, alphas = [], []  # alphas[m][(src, dst)]
    for m in model.modalities:
        lin = model.project[m]
        pre = _np(model.features[m]) @ _np(lin.weight).T + _np(lin.bias)
        f = _rownorm(np.where(pre > 0, pre, 0.01 * pre))
        p = _rownorm(_np(model.preference[m]))
        for _ in range(model.config.n_routing):  # users gather from their items
            new = p.copy()
            for u in range(n_u):
                items = nbrs[u] - n_u
                if len(items):
                    s = f[items] @ p[u]
                    a = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
                    new[u] = p[u] + a @ f[items]
            p = _rownorm(new)
        z = np.vstack([p, f])
        c = z.copy()
        alpha = {}
        for n in range(n_u + n_i):
            if len(nbrs[n]):
                s = z[nbrs[n]] @ z[n]
                a = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
                c[n] += a @ z[nbrs[n]]
                alpha.update({(int(j), n): a_j for j, a_j in zip(nbrs[n], a, strict=True)})
        views.append(c)
        alphas.append(alpha)
    conf = _np(model.confidence)
    w = np.zeros((n_u + n_i, n_u + n_i))  # w[dst, src]
    for (src, dst), _ in alphas[0].items():
        w[dst, src] = max(0.0, max(a[(src, dst)] * conf[src, k] for k, a in enumerate(alphas)))
    h = _rownorm(_np(model.id_emb))
    g = h.copy()
    for _ in range(model.config.n_id_layers):
        h = w @ h
        g += h
    return np.hstack([g, *views])


@pytest.mark.parametrize(
    ("names", "settings"),
    [
        (["image", "text"], {}),
        (["text", "image", "extra"], {"n_routing": 2, "n_id_layers": 3}),
        (["text"], {}),
    ],
)
def test_forward_and_loss_match_a_per_node_hand_computation(tiny_data, names, settings):
    data = _with_modalities(tiny_data, names)
    model = _model(data, embedding_dim=8, latent_dim=6, reg_weight=0.3, **settings)
    assert model.modalities[0] == ("image" if "image" in names else names[0])
    rep = dense_representation(model, data)
    n_u = data.n_users
    user_out, item_out = model()
    assert user_out.shape == (n_u, 8 + 6 * len(names))
    np.testing.assert_allclose(_np(user_out), rep[:n_u], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(_np(item_out), rep[n_u:], rtol=1e-4, atol=1e-6)

    batch = _batch()
    total, parts = model.loss(batch)
    u, p, q = (x.numpy() for x in (batch.user_idx, batch.pos_idx, batch.neg_idx))
    diff = (rep[u] * rep[n_u + p]).sum(1) - (rep[u] * rep[n_u + q]).sum(1)
    bpr = np.mean(-np.log(1 / (1 + np.exp(-diff))))
    # the reference's form: users repeated for positive and negative, items interleaved
    user_t, item_t = np.repeat(u, 2), np.stack([n_u + p, n_u + q], axis=1).reshape(-1)
    e = _np(model.id_emb)
    reg = (e[user_t] ** 2 + e[item_t] ** 2).mean()
    for m in model.modalities:
        pref = _np(model.preference[m])
        reg += (pref[user_t] ** 2).mean() + ((pref**2).mean() if m == "image" else 0.0)
    np.testing.assert_allclose(parts["bpr"].item(), bpr, rtol=1e-5)
    np.testing.assert_allclose(parts["reg"].item(), reg, rtol=1e-5)
    np.testing.assert_allclose(total.item(), bpr + 0.3 * reg, rtol=1e-5)


def test_pruned_edges_carry_nothing_and_confidence_scales_the_rest(tiny_data):
    model = _model(tiny_data)
    with torch.no_grad():
        model.confidence.copy_(torch.tensor([[-1.0, -2.0]]).expand_as(model.confidence))
        pruned = model.forward()
        model.confidence.zero_()
        zero = model.forward()
    for a, b in zip(pruned, zero, strict=True):  # every weight <= 0: the ID view is h^(0)
        torch.testing.assert_close(a, b)
    ids = torch.nn.functional.normalize(model.id_emb.detach(), dim=1)
    torch.testing.assert_close(zero[1][:, :64], ids[tiny_data.n_users :])


def test_features_are_fixed_and_the_tables_are_parameters(tiny_data):
    model = _model(tiny_data)
    assert not any(n.startswith("features.") for n, _ in model.named_parameters())
    names = {n for n, _ in model.named_parameters()}
    assert names >= {"id_emb", "confidence", "preference.image", "project.text.weight"}


def test_cold_start_items_are_what_an_isolated_trained_item_with_a_zero_id_gets(tiny_data):
    model = _model(tiny_data, embedding_dim=8, latent_dim=6).eval()
    rows = [0, 5, 9, 33, 77]
    before = [t.clone() for t in model.export_embeddings()]
    feats = {m: torch.from_numpy(x[rows]) for m, x in tiny_data.features.items()}
    got = model.items_from_features(feats, tiny_data)
    train = tiny_data.train.tolil()
    train[:, rows] = 0
    isolated = dataclasses.replace(tiny_data, train=train.tocsr())
    twin = GRCN(isolated, model.config).eval()
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        twin.id_emb[[isolated.n_users + r for r in rows]] = 0
    torch.testing.assert_close(got, twin.export_embeddings()[1][rows])
    assert (got[:, :8] == 0).all() and (got[:, 8:].abs().sum(dim=1) > 0).all()
    for b, a in zip(before, model.export_embeddings(), strict=True):
        assert torch.equal(a, b)


def test_learns_the_checkerboard(tmp_path):
    overrides = ["model.latent_dim=8", "train.lr=0.01", "train.threads=1"]
    assert held_out_recall("grcn", tmp_path, overrides, widths={"image": 8, "text": 6}) >= 0.95


def test_reference_preset_is_the_chosen_grid_point():
    config = resolve_config({"model": {"name": "grcn"}, "preset": "reference"})
    m, t = config.model, config.train
    assert (m.embedding_dim, m.latent_dim, m.n_routing, m.n_id_layers) == (64, 64, 0, 2)
    assert m.reg_weight == 0.1
    assert (t.lr, t.lr_decay, t.batch_size, t.epochs, t.patience) == (1e-4, 1.0, 2048, 1000, 20)
    assert (t.negative_pool, t.stop_metric) == ("seen", "recall@20")


@pytest.mark.parametrize(
    ("bad", "name"),
    [
        ({"n_routing": -1}, "n_routing"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"reg_weight": -0.1}, "reg_weight"),
        ({"n_id_layers": -1}, "n_id_layers"),
    ],
)
def test_bad_settings_are_refused_by_name(bad, name):
    with pytest.raises(ConfigError, match=name):
        from_dict(GRCNConfig, bad)


def test_refuses_data_without_features(tiny_data):
    with pytest.raises(ValueError, match="at least 1 feature"):
        _model(replace(tiny_data, features={}))
