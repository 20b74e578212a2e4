"""LGMRec against the reference's behaviour: local (LightGCN + modality graph) and global
(hypergraph) embeddings and the loss (BPR + the summed cross-modal hypergraph contrast + the
Frobenius regulariser) checked against a dense, looped computation; Gumbel-softmax hyperedges in
training only; cold-start items as isolated nodes; the checkerboard; settings refused."""

from dataclasses import replace
from itertools import combinations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from checkerboard import held_out_recall

from cranerec.config import ConfigError, from_dict
from cranerec.models.base import Batch
from cranerec.models.lgmrec import LGMRec, LGMRecConfig
from cranerec.train.config import resolve_config


def _model(data, **settings):
    torch.manual_seed(0)
    return LGMRec(data, from_dict(LGMRecConfig, {"embedding_dim": 8, **settings}))


def _batch():  # user 3 and item 7 repeated, as a drawn batch may have them
    return Batch(
        user_idx=torch.tensor([0, 3, 3, 17, 42, 199]),
        pos_idx=torch.tensor([5, 7, 7, 119, 64, 2]),
        neg_idx=torch.tensor([9, 11, 1, 3, 64, 100]),
    )


def _with_extra(data):
    extra = np.random.default_rng(7).normal(size=(data.n_items, 6)).astype(np.float32)
    return replace(data, features={**data.features, "extra": extra})


def _unit_rows(x):
    norm = x.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, x / norm.clamp(min=1e-300), 0.0)


def _naive(model, data):
    """The reference's forward in float64 on dense matrices, noise-free assignments and no
    dropout (evaluation): (all [U + I, d], {m: (Gamma_u, Gamma_i)})."""
    cfg = model.config
    r = torch.from_numpy(data.train.toarray()).double()
    n_u, n_i = r.shape
    a = torch.zeros(n_u + n_i, n_u + n_i, dtype=torch.float64)
    a[:n_u, n_u:], a[n_u:, :n_u] = r, r.T
    deg = a.sum(1)
    dis = torch.where(deg > 0, deg.clamp(min=1e-300) ** -0.5, 0.0)
    a_hat = dis[:, None] * a * dis[None, :]
    layers = [torch.cat([model.user_emb, model.item_emb]).double()]
    for _ in range(cfg.n_ui_layers):
        layers.append(a_hat @ layers[-1])
    cge = sum(layers) / len(layers)
    local, global_, hyper = cge.clone(), 0.0, {}
    user_deg = r.sum(1, keepdim=True)
    for m in model.modalities:
        x = torch.from_numpy(data.features[m]).double()
        f_i = x @ model.project[m].double()
        f_u = torch.where(user_deg > 0, (r @ f_i) / user_deg.clamp(min=1), 0.0)
        h = torch.cat([f_u, f_i])
        for _ in range(cfg.n_mm_layers):
            h = a_hat @ h
        local = local + _unit_rows(h)
        logits = x @ model.hyper[m].double()
        h_i = torch.softmax(logits / cfg.temperature, dim=1)
        h_u = torch.softmax((r @ logits) / cfg.temperature, dim=1)
        g = cge[n_u:]
        for _ in range(cfg.n_hyper_layers):
            lam = h_i.T @ g
            g = h_i @ lam
        hyper[m] = (h_u @ lam, g)
        global_ = global_ + torch.cat([h_u @ lam, g])
    return local + cfg.alpha * _unit_rows(global_), hyper


def _ssl_triple_loop(anchor, positive, table, tau):
    """The reference's ssl_triple_loss row by row: sum_b -log(exp(c_bb / tau) / sum_j ...)."""
    total = 0.0
    for a, p in zip(anchor, positive, strict=True):
        pos = torch.exp(F.cosine_similarity(a, p, dim=0) / tau)
        ttl = sum(torch.exp(F.cosine_similarity(a, t, dim=0) / tau) for t in table)
        total = total - torch.log(pos / ttl)
    return total


@pytest.mark.parametrize(
    "settings",
    [{}, {"n_ui_layers": 0, "n_mm_layers": 1}, {"n_hyper_layers": 2, "n_hyperedges": 5}],
)
def test_scores_are_the_dense_local_plus_global_embeddings(tiny_data, settings):
    model = _model(tiny_data, alpha=0.7, **settings)
    expected, _ = _naive(model, tiny_data)
    user_emb, item_emb = model.export_embeddings()
    got = torch.cat([user_emb, item_emb]).double()
    torch.testing.assert_close(got, expected.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("extra", [False, True])
def test_loss_is_bpr_plus_the_summed_hypergraph_contrast_and_the_norms(tiny_data, extra):
    """Noise-free assignments and keep_rate 1, so that the naive computation sees the same
    hyperedges; two modalities contrast once (image anchors, text candidates), three thrice."""
    data = _with_extra(tiny_data) if extra else tiny_data
    model = _model(data, keep_rate=1.0, cl_weight=0.01, reg_weight=0.1)
    model.assign = lambda logits: torch.softmax(logits / model.config.temperature, dim=1)
    batch = _batch()
    loss, parts = model.loss(batch)

    out, hyper = _naive(model, data)
    users, items = out[: data.n_users], out[data.n_users :]
    u, i, j = users[batch.user_idx], items[batch.pos_idx], items[batch.neg_idx]
    bpr = -F.logsigmoid((u * i).sum(1) - (u * j).sum(1)).mean()
    pairs = list(combinations(model.modalities, 2))
    assert len(pairs) == (3 if extra else 1) and pairs[0] == ("image", "text")
    hcl = 0.0
    for a, b in pairs:
        (a_u, a_i), (b_u, b_i) = hyper[a], hyper[b]
        hcl = hcl + _ssl_triple_loop(a_u[batch.user_idx], b_u[batch.user_idx], b_u, 0.2)
        hcl = hcl + _ssl_triple_loop(a_i[batch.pos_idx], b_i[batch.pos_idx], b_i, 0.2)
    reg = (u.norm() + i.norm() + j.norm()) / len(u)
    expected = bpr + 0.01 * hcl + 0.1 * reg

    torch.testing.assert_close(loss.double(), expected.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(parts["hcl"].double(), 0.01 * hcl.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sum(parts.values()), loss.detach())


def test_hyperedges_are_gumbel_softmax_samples_in_training_only(tiny_data):
    model = _model(tiny_data)
    logits = torch.randn(5, 4)
    torch.manual_seed(3)
    sample = model.assign(logits)
    torch.manual_seed(3)
    torch.testing.assert_close(sample, F.gumbel_softmax(logits, 0.2, hard=False, dim=1))
    model.eval()
    torch.testing.assert_close(model.assign(logits), torch.softmax(logits / 0.2, dim=1))
    a, b = model.export_embeddings(), model.export_embeddings()
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # no noise


def test_every_parameter_trains_with_three_modalities_and_with_one(tiny_data):
    text_only = replace(tiny_data, features={"text": tiny_data.features["text"]})
    for data in (_with_extra(tiny_data), text_only):
        model = _model(data)
        loss, parts = model.loss(_batch())
        loss.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert float(parts["hcl"]) == 0.0  # one modality: no pair to contrast


@pytest.mark.parametrize("n_mm_layers", [0, 2])
def test_a_new_item_is_an_isolated_item_without_an_id_row(tiny_data, n_mm_layers):
    """With one hypergraph round, an item whose training column is empty and whose ID row is 0
    gets, from ``forward``, exactly the vector ``items_from_features`` gives its features."""
    train = tiny_data.train.tolil()
    train[:, 10] = 0
    data = replace(tiny_data, train=train.tocsr())
    data.train.eliminate_zeros()
    model = _model(data, n_mm_layers=n_mm_layers)
    with torch.no_grad():
        model.item_emb[10] = 0.0
    model.eval()
    _, item_emb = model.export_embeddings()
    new = {m: torch.from_numpy(data.features[m][[10, 10]]) for m in data.modalities}
    got = model.items_from_features(new, data)
    torch.testing.assert_close(got, item_emb[[10, 10]], rtol=1e-5, atol=1e-6)


def test_no_content_path_without_the_global_part_and_the_modality_features(tiny_data):
    model = _model(tiny_data, alpha=0.0).eval()
    new = {m: torch.from_numpy(tiny_data.features[m][:2]) for m in tiny_data.modalities}
    with pytest.raises(NotImplementedError, match="no content path"):
        model.items_from_features(new, tiny_data)


def test_checkerboard(tmp_path):
    overrides = ["train.lr=0.01"]
    assert held_out_recall("lgmrec", tmp_path, overrides, widths={"image": 8, "text": 6}) >= 0.95


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"keep_rate": 0.0}, "keep_rate"),
        ({"n_hyper_layers": 0}, "n_hyper_layers"),
        ({"alpha": -0.1}, "alpha"),
        ({"temperature": 0.0}, "temperature"),
        ({"cl_weight": -1.0}, "cl_weight"),
    ],
)
def test_bad_settings_are_refused(settings, named):
    with pytest.raises(ConfigError, match=named):
        from_dict(LGMRecConfig, settings)


def test_presets_are_the_yaml_blocks():
    config = resolve_config({"model": {"name": "lgmrec"}, "preset": "reference"})
    assert config.model == LGMRecConfig()
    assert (config.train.lr, config.train.batch_size, config.train.weight_decay) == (1e-3, 2048, 0)
    sports = resolve_config({"model": {"name": "lgmrec"}, "preset": "sports"}).model
    assert (sports.n_hyper_layers, sports.n_hyperedges, sports.keep_rate, sports.alpha) == (
        1, 4, 0.4, 0.6,
    )  # fmt: skip
