"""MGCN against the reference's behaviour, each equation recomputed with dense numpy matrices and
per-row loops: the frozen kNN item graphs N(A(x^m)), the purifier, the item-item views and their
user side through the normalised user-item block, the behaviour-aware fuser, the loss (BPR, L2
on the final vectors, two InfoNCE terms) and cold-start items joining the item graphs."""

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from checkerboard import held_out_recall

from cranerec.config import ConfigError, from_dict
from cranerec.models.base import Batch
from cranerec.models.mgcn import MGCN, MGCNConfig
from cranerec.train.config import resolve_config


def _model(data, **settings):
    torch.manual_seed(0)
    return MGCN(data, from_dict(MGCNConfig, settings))


def _with_modalities(data, n):
    """``data`` with its first ``n`` of (image, text, extra) modalities."""
    feats = dict(data.features)
    feats["extra"] = np.random.default_rng(7).normal(size=(data.n_items, 6)).astype(np.float32)
    return replace(data, features=dict(list(feats.items())[:n]))


def _batch():
    return Batch(
        user_idx=torch.tensor([0, 3, 3, 17, 42, 199]),
        pos_idx=torch.tensor([5, 0, 7, 119, 64, 5]),
        neg_idx=torch.tensor([9, 11, 1, 3, 64, 100]),
    )


def _np(t):
    return t.detach().double().numpy()


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _linear(layer, x):
    out = x @ _np(layer.weight).T
    return out if layer.bias is None else out + _np(layer.bias)


def knn_sim(x, k):
    """Dense A(x): each row keeps its top-k cosines (self competing, ties by the lower index)."""
    x = np.asarray(x, dtype=np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    out = np.zeros_like(sim)
    for i, row in enumerate(sim):
        top = np.argsort(-row, kind="stable")[:k]
        out[i, top] = row[top]
    return out


def laplacian(s):
    """N(S) = D^{-1/2} S D^{-1/2}, D the row sums."""
    d = s.sum(axis=1) ** -0.5
    return d[:, None] * s * d[None, :]


def dense_fuse(model, views, content):
    """The fuser row by row: alpha over modalities, common, gated specifics, / (K + 1)."""
    k_mod = len(views)
    if k_mod == 1:
        return views[0] / 2
    lin1, _, lin2 = model.query
    out = np.zeros_like(content)
    for r in range(content.shape[0]):
        scores = np.array(
            [(_np(lin2.weight) @ np.tanh(_linear(lin1, views[m][r]))).item() for m in range(k_mod)]
        )
        alpha = np.exp(scores - scores.max())
        alpha /= alpha.sum()
        common = sum(alpha[m] * views[m][r] for m in range(k_mod))
        total = common.copy()
        for m, name in enumerate(model.modalities):
            gate = _sigmoid(_linear(model.prefer[name][0], content[r]))
            total += gate * (views[m][r] - common)
        out[r] = total / (k_mod + 1)
    return out


def dense_purified(model, m):
    """h^m_0 = I * sigmoid(W^g (W x + b) + b^g)."""
    projected = _linear(model.project[m], _np(model.features[m]))
    return _np(model.item_emb) * _sigmoid(_linear(model.purify[m][0], projected))


def dense_forward(model, data, k):
    """(content, side) [U + I, d] from dense matrices."""
    n_u, n_i = data.n_users, data.n_items
    r = sp.csr_matrix(data.train, dtype=np.float64).toarray()
    a = np.block([[np.zeros((n_u, n_u)), r], [r.T, np.zeros((n_i, n_i))]])
    deg = a.sum(axis=1)
    d = np.where(deg > 0, deg, np.inf) ** -0.5
    a_hat = d[:, None] * a * d[None, :]
    e0 = np.vstack([_np(model.user_emb), _np(model.item_emb)])
    layers = [e0]
    for _ in range(model.config.n_ui_layers):
        layers.append(a_hat @ layers[-1])
    content = np.mean(layers, axis=0)
    views = []
    for m in model.modalities:
        h = dense_purified(model, m)
        s = laplacian(knn_sim(data.features[m], k))  # from the features as loaded
        for _ in range(model.config.n_mm_layers):
            h = s @ h
        views.append(np.vstack([a_hat[:n_u, n_u:] @ h, h]))
    return content, dense_fuse(model, views, content)


def info_nce_loop(a, c, tau):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
    terms = []
    for b in range(len(a)):
        logits = np.array([a[b] @ c[j] for j in range(len(c))]) / tau
        terms.append(-(logits[b] - np.log(np.exp(logits).sum())))
    return float(np.mean(terms))


@pytest.mark.parametrize("n_modalities", [1, 2, 3])
def test_item_graphs_are_the_normalised_similarity_knn_of_the_loaded_features(
    tiny_data, n_modalities
):
    data = _with_modalities(tiny_data, n_modalities)
    model = _model(data, knn_k=4)
    for m in model.modalities:
        adj, adj_t = model.item_graph(m)
        expected = laplacian(knn_sim(data.features[m], 4))
        np.testing.assert_allclose(adj.to_dense().numpy(), expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(adj_t.to_dense().numpy(), expected.T, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n_modalities", [1, 2, 3])
def test_forward_and_loss_match_a_dense_hand_computation(tiny_data, n_modalities):
    data = _with_modalities(tiny_data, n_modalities)
    model = _model(data, knn_k=5, reg_weight=0.3, cl_weight=0.7, cl_temperature=0.4)
    with torch.no_grad():  # non-trivial gates: random biases everywhere
        for p in model.parameters():
            if p.ndim == 1:
                p.normal_()
    content, side = dense_forward(model, data, 5)
    n_u = data.n_users
    out = content + side
    user_out, item_out = model()
    np.testing.assert_allclose(_np(user_out), out[:n_u], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(_np(item_out), out[n_u:], rtol=1e-4, atol=1e-6)

    batch = _batch()
    total, parts = model.loss(batch)
    u, p, q = (x.numpy() for x in (batch.user_idx, batch.pos_idx, batch.neg_idx))
    user, item = out[:n_u], out[n_u:]
    diff = (user[u] * item[p]).sum(1) - (user[u] * item[q]).sum(1)
    bpr = np.mean(np.log1p(np.exp(-diff)))
    reg = 0.5 * ((user[u] ** 2).sum() + (item[p] ** 2).sum() + (item[q] ** 2).sum()) / len(u)
    cl = info_nce_loop(side[n_u + p], content[n_u + p], 0.4) + info_nce_loop(
        side[u], content[u], 0.4
    )  # duplicates (user 3, item 5) kept, as in the reference
    np.testing.assert_allclose(parts["bpr"].item(), bpr, rtol=1e-5)
    np.testing.assert_allclose(parts["reg"].item(), reg, rtol=1e-5)
    np.testing.assert_allclose(parts["cl"].item(), cl, rtol=1e-5)
    np.testing.assert_allclose(total.item(), bpr + 0.3 * reg + 0.7 * cl, rtol=1e-5)


def test_one_modality_has_no_fuser_parameters(tiny_data):
    model = _model(_with_modalities(tiny_data, 1))
    names = dict(model.named_parameters())
    assert not any(n.startswith(("query.", "prefer.")) for n in names)
    model.loss(_batch())[0].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in names.values())


def test_modality_order_does_not_matter(tiny_data):
    a = _model(tiny_data)
    b = _model(replace(tiny_data, features=dict(reversed(list(tiny_data.features.items())))))
    assert a.modalities == ["image", "text"] and b.modalities == ["text", "image"]
    b.load_state_dict(a.state_dict())
    for x, y in zip(a.export_embeddings(), b.export_embeddings(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_features_are_fine_tuned_but_the_item_graphs_stay_frozen(tiny_data):
    raw = {m: x.copy() for m, x in tiny_data.features.items()}
    model = _model(tiny_data, knn_k=5)
    graphs = {m: model.item_graph(m)[0].to_dense().clone() for m in model.modalities}
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(2):
        opt.zero_grad()
        model.loss(_batch())[0].backward()
        opt.step()
    for m in model.modalities:
        assert not np.array_equal(model.features[m].detach().numpy(), raw[m])
        assert torch.equal(model.item_graph(m)[0].to_dense(), graphs[m])
        np.testing.assert_array_equal(tiny_data.features[m], raw[m])
    frozen = _model(tiny_data, tune_features=False)
    assert not any(n.startswith("features.") for n, _ in frozen.named_parameters())


def test_cold_start_items_join_the_item_graphs_as_rows_of_their_own(tiny_data):
    model = _model(tiny_data, knn_k=5).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.normal_()
    rng = np.random.default_rng(1)
    rows = [0, 5, 9, 77]
    new = {
        m: (x[rows] + 0.05 * rng.standard_normal((len(rows), x.shape[1]))).astype(np.float32)
        for m, x in tiny_data.features.items()
    }
    before = [t.clone() for t in model.export_embeddings()]
    got = model.items_from_features({m: torch.from_numpy(x) for m, x in new.items()}, tiny_data)
    views = []
    for m in model.modalities:
        trained = np.asarray(tiny_data.features[m], dtype=np.float64)
        a = knn_sim(trained, 5)
        deg = a.sum(axis=1)
        h0 = dense_purified(model, m)
        h = np.zeros((len(rows), h0.shape[1]))
        for r, x in enumerate(np.asarray(new[m], dtype=np.float64)):
            both = np.vstack([trained, x])  # the trained items, then the new item itself
            both /= np.linalg.norm(both, axis=1, keepdims=True)
            sims = both @ both[-1]
            top = np.argsort(-sims, kind="stable")[:5]  # ties: trained items first
            deg_new = sims[top].sum()
            for j in top:
                if j < len(trained):  # the new item's own h_0 is 0 (no ID row)
                    h[r] += sims[j] / np.sqrt(deg_new * deg[j]) * h0[j]
        views.append(h)
    expected = dense_fuse(model, views, np.zeros_like(views[0]))
    np.testing.assert_allclose(_np(got), expected, rtol=1e-4, atol=1e-6)
    for b, a in zip(before, model.export_embeddings(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(NotImplementedError, match="n_mm_layers=0"):
        _model(tiny_data, n_mm_layers=0).items_from_features(
            {m: torch.from_numpy(x) for m, x in new.items()}, tiny_data
        )


def test_learns_the_checkerboard(tmp_path):
    overrides = ["model.knn_k=5", "train.lr=0.01", "train.threads=1"]
    assert held_out_recall("mgcn", tmp_path, overrides, widths={"image": 8, "text": 6}) >= 0.95


def test_reference_preset_is_mgcn_yaml_with_its_lr_schedule():
    config = resolve_config({"model": {"name": "mgcn"}, "preset": "reference"})
    m, t = config.model, config.train
    assert (m.embedding_dim, m.knn_k, m.n_ui_layers, m.n_mm_layers) == (64, 10, 2, 1)
    assert (m.reg_weight, m.cl_weight, m.cl_temperature, m.tune_features) == (1e-4, 0.01, 0.2, True)
    assert (t.lr, t.lr_decay, t.lr_decay_every, t.batch_size) == (1e-3, 0.96, 50, 2048)
    assert (t.epochs, t.patience, t.negative_pool, t.stop_metric) == (1000, 20, "seen", "recall@20")


@pytest.mark.parametrize(
    ("bad", "name"),
    [
        ({"cl_temperature": 0.0}, "cl_temperature"),
        ({"knn_k": 0}, "knn_k"),
        ({"cl_weight": -1.0}, "cl_weight"),
        ({"n_mm_layers": -1}, "n_mm_layers"),
    ],
)
def test_bad_settings_are_refused_by_name(bad, name):
    with pytest.raises(ConfigError, match=name):
        from_dict(MGCNConfig, bad)


def test_refuses_data_without_features_and_a_knn_k_beyond_the_items(tiny_data):
    with pytest.raises(ValueError, match="at least 1 feature"):
        _model(replace(tiny_data, features={}))
    with pytest.raises(ValueError, match="knn_k=500"):
        _model(tiny_data, knn_k=500)
