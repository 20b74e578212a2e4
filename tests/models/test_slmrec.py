"""SLMRec against the reference's behaviour: the fused LightGCN branches and the loss (in-batch
InfoNCE + the FAC chain) checked against a dense, looped computation; the FAC levels for any set
of modalities; cold-start items as isolated nodes; the checkerboard; settings refused."""

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from checkerboard import held_out_recall

from cranerec.config import ConfigError, from_dict
from cranerec.models.base import Batch
from cranerec.models.slmrec import SLMRec, SLMRecConfig, fac_levels
from cranerec.train.config import resolve_config


def _model(data, **settings):
    torch.manual_seed(0)
    return SLMRec(data, from_dict(SLMRecConfig, {"embedding_dim": 8, **settings}))


def _batch():  # user 3 and item 7 repeated: the reference keeps duplicates as drawn
    return Batch(
        user_idx=torch.tensor([0, 3, 3, 17, 42, 199]), pos_idx=torch.tensor([5, 7, 7, 119, 64, 2])
    )


def _dense_ahat(train: sp.spmatrix) -> torch.Tensor:
    """D^{-1/2} A D^{-1/2} of the bipartite graph, dense float64 (the reference's ``pre``)."""
    r = train.toarray().astype(np.float64)
    n_u, n_i = r.shape
    a = np.zeros((n_u + n_i, n_u + n_i))
    a[:n_u, n_u:], a[n_u:, :n_u] = r, r.T
    deg = a.sum(1)
    d = np.where(deg > 0, deg**-0.5, 0.0)
    return torch.from_numpy(d[:, None] * a * d[None, :])


def _naive_branches(model, data):
    """Each branch propagated on its own (the reference's compute_graph per branch), float64:
    ([u^0, u^v, u^t], [i^0, i^v, i^t]) as lists of [n, d]."""
    a_hat, n_u = _dense_ahat(data.train), data.n_users
    user = model.user_emb.double()
    tables = [model.item_emb.double()]
    for m in model.modalities:
        x = torch.from_numpy(data.features[m]).double()
        x = x / x.norm(dim=1, keepdim=True)
        w, b = model.project[m].weight.double(), model.project[m].bias.double()
        tables.append(x @ w.T + b)
    users, items = [], []
    for table in tables:
        layers = [torch.cat([user, table])]
        for _ in range(model.config.n_layers):
            layers.append(a_hat @ layers[-1])
        out = sum(layers) / len(layers)
        users.append(out[:n_u])
        items.append(out[n_u:])
    return users, items


def _linear(layer, x):
    return x @ layer.weight.double().T + layer.bias.double()


def _nce_loop(a, b, tau, cosine):
    """mean_r -log(exp(s(a_r, b_r)/tau) / sum_c exp(s(a_r, b_c)/tau)), one row at a time."""
    total = 0.0
    for r in range(len(a)):
        scores = []
        for c in range(len(b)):
            s = F.cosine_similarity(a[r], b[c], dim=0) if cosine else a[r] @ b[c]
            scores.append(s / tau)
        total = total - (scores[r] - torch.logsumexp(torch.stack(scores), 0))
    return total / len(a)


@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_scores_are_the_fused_branches_of_the_dense_computation(tiny_data, n_layers):
    model = _model(tiny_data, n_layers=n_layers)
    assert model.modalities == ["image", "text"]  # the reference's [i, v, t] order
    users, items = _naive_branches(model, tiny_data)
    expected_u = _linear(model.fuse_user, torch.cat(users, dim=1))
    expected_i = _linear(model.fuse_item, torch.cat(items, dim=1))
    user_emb, item_emb = model.export_embeddings()
    torch.testing.assert_close(user_emb.double(), expected_u.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(item_emb.double(), expected_i.detach(), rtol=1e-5, atol=1e-6)


def test_loss_is_infonce_plus_the_fac_chain_computed_by_hand(tiny_data):
    """Image + text: c1 = g_i_iv(i^0) against g_v_iv(i^v); c2 = g_iv_iva(c1) has no loss;
    c3 = g_iva_ivat(c2) (d/2 wide) against g_t_ivat(i^t); raw inner products / ssl_temp."""
    model = _model(tiny_data, n_layers=2, ssl_weight=0.3, temperature=0.2, ssl_temperature=0.5)
    assert model.levels == ["image", None, "text"]
    assert [layer.out_features for layer in model.fac_chain] == [8, 8, 4]
    batch = _batch()
    loss, parts = model.loss(batch)

    users, items = _naive_branches(model, tiny_data)
    u = _linear(model.fuse_user, torch.cat(users, dim=1))[batch.user_idx]
    i = _linear(model.fuse_item, torch.cat(items, dim=1))[batch.pos_idx]
    main = _nce_loop(u, i, 0.2, cosine=True)
    i0, iv, it = (t[batch.pos_idx] for t in items)
    c1 = _linear(model.fac_chain[0], i0)
    v_loss = _nce_loop(c1, _linear(model.fac_head["image"], iv), 0.5, cosine=False)
    c3 = _linear(model.fac_chain[2], _linear(model.fac_chain[1], c1))
    t_loss = _nce_loop(c3, _linear(model.fac_head["text"], it), 0.5, cosine=False)
    expected = main + 0.3 * (v_loss + t_loss)

    torch.testing.assert_close(loss.double(), expected.detach(), rtol=1e-5, atol=1e-6)
    t_part = parts["fac_text"].double()
    torch.testing.assert_close(t_part, 0.3 * t_loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sum(parts.values()), loss.detach())


def test_negatives_in_a_batch_are_ignored(tiny_data):
    model = _model(tiny_data)
    batch = _batch()
    with_negatives = Batch(batch.user_idx, batch.pos_idx, torch.zeros_like(batch.pos_idx))
    assert model.batch_kind == "positives"
    torch.testing.assert_close(model.loss(batch)[0], model.loss(with_negatives)[0])


@pytest.mark.parametrize(
    ("modalities", "levels"),
    [
        (["image", "text"], ["image", None, "text"]),  # MMRec on Amazon
        (["audio", "image", "text"], ["image", "audio", "text"]),  # the paper on TikTok
        (["text"], ["text"]),
        (["text", "image"], ["image", None, "text"]),
        (["image", "audio"], ["image", "audio"]),
        (["text", "extra"], ["text", "extra"]),
        (["extra", "image"], ["image", "extra"]),
    ],
)
def test_fac_levels_follow_the_order_with_steps_for_missing_names(modalities, levels):
    assert fac_levels(["image", "audio", "text"], modalities) == levels


def test_any_modalities_train_every_parameter(tiny_data):
    rng = np.random.default_rng(1)
    feats = {"text": tiny_data.features["text"], "extra": rng.normal(size=(tiny_data.n_items, 5))}
    data = replace(tiny_data, features={m: x.astype(np.float32) for m, x in feats.items()})
    model = _model(data)
    assert model.levels == ["text", "extra"] and set(model.fac_head) == {"text", "extra"}
    model.loss(_batch())[0].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_a_new_item_is_an_isolated_item_without_an_id_row(tiny_data):
    """An item whose training column is empty and whose ID row is 0 gets, from ``forward``,
    exactly the vector ``items_from_features`` gives its features."""
    train = tiny_data.train.tolil()
    train[:, 10] = 0
    data = replace(tiny_data, train=train.tocsr())
    data.train.eliminate_zeros()
    model = _model(data, n_layers=2)
    with torch.no_grad():
        model.item_emb[10] = 0.0
    _, item_emb = model.export_embeddings()
    new = {m: torch.from_numpy(data.features[m][[10, 10]]) for m in data.modalities}
    got = model.items_from_features(new, data)
    torch.testing.assert_close(got, item_emb[[10, 10]], rtol=1e-5, atol=1e-6)


def test_checkerboard(tmp_path):
    overrides = ["train.lr=0.01", "model.n_layers=1", "model.ssl_weight=0.1"]
    assert held_out_recall("slmrec", tmp_path, overrides, widths={"image": 8, "text": 6}) >= 0.95


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"fac_order": ["image", "text", "image"]}, "fac_order"),
        ({"ssl_temperature": 0.0}, "ssl_temperature"),
        ({"embedding_dim": 1}, "embedding_dim"),
        ({"ssl_weight": -0.1}, "ssl_weight"),
    ],
)
def test_bad_settings_are_refused(settings, named):
    with pytest.raises(ConfigError, match=named):
        from_dict(SLMRecConfig, settings)


def test_reference_preset_is_the_yaml_point():
    config = resolve_config({"model": {"name": "slmrec"}, "preset": "reference"})
    assert config.model == SLMRecConfig()
    assert (config.train.lr, config.train.weight_decay, config.train.batch_size) == (
        1e-4,
        1e-4,
        2048,
    )
