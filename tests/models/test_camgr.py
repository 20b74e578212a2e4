"""CAmgr equation by equation against dense float64 versions written out here (docs/camgr.md
gives the reading of each equation): purification (Eq. 1-6), GAT (Eq. 7-9), the item graphs and
user modality views (Eq. 10-14), the common/distinct cross-attention fusion (Eq. 15-26), the
scores (Eq. 27-28) and the loss (Eq. 29-31); the batch-rows-only loss against the full one."""

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from cranerec.config import ConfigError, from_dict
from cranerec.models.base import Batch
from cranerec.models.camgr import CAmgr, CAmgrConfig
from cranerec.train.config import resolve_config


def _model(data, **settings):
    torch.manual_seed(0)
    return CAmgr(data, from_dict(CAmgrConfig, {"knn_k": 5, **settings})).double()


def _batch():
    return Batch(
        user_idx=torch.tensor([0, 3, 3, 17, 42, 199, 7]),
        pos_idx=torch.tensor([5, 0, 7, 119, 64, 2, 5]),
        neg_idx=torch.tensor([9, 11, 1, 3, 63, 100, 9]),
    )


@pytest.fixture(scope="module")
def cold_data(tiny_data):
    """tiny_data with item 0 and user 1 stripped of their training interactions (Ubar_0 = 0,
    an isolated GAT node on each side, an empty user mean in Eq. 14)."""
    train = tiny_data.train.tolil()
    train[:, 0] = 0
    train[1, :] = 0
    return replace(tiny_data, train=sp.csr_matrix(train))


def _dense_r(data) -> torch.Tensor:
    return torch.from_numpy(data.train.toarray()).double()  # [U, I]


def _feat(data, m) -> torch.Tensor:
    return torch.from_numpy(data.features[m]).double()


def _linear(layer, x):
    return x @ layer.weight.T + (layer.bias if layer.bias is not None else 0.0)


# ---------------------------------------------------------------- naive dense versions


def naive_purified(model, data, m):
    """Eq. 1-6: H''_m = (E_i + Ubar) * sigmoid(W_2 (W_1 x + b_1) + b_2), Ubar the mean user."""
    r = _dense_r(data)
    aligned = _linear(model.align[m], _feat(data, m))  # Eq. 1
    user_sum = r.T @ model.user_emb  # Eq. 2
    count = r.sum(dim=0)  # Eq. 3
    mean_user = torch.where(
        count[:, None] > 0, user_sum / count.clamp(min=1)[:, None], 0.0
    )  # Eq. 4
    return (model.item_emb + mean_user) * torch.sigmoid(_linear(model.gate[m], aligned))


def naive_gat(model, data, self_loops=False):
    """Eq. 7-9 with the dense bipartite adjacency: masked row softmax over every pair."""
    r = _dense_r(data)
    n_users, n_items = r.shape
    adj = torch.zeros(n_users + n_items, n_users + n_items, dtype=torch.float64)
    adj[:n_users, n_users:], adj[n_users:, :n_users] = r, r.T
    if self_loops:
        adj += torch.eye(len(adj), dtype=torch.float64)
    layers = [torch.cat([model.user_emb, model.item_emb])]
    for gat in model.gat:
        wh = layers[-1] @ gat.weight.weight.T  # W^l H^{l-1}
        d = wh.shape[1]
        # omega^T [W h_n ; W h_j] for every pair (n, j)
        e = (wh @ gat.omega[:d])[:, None] + (wh @ gat.omega[d:])[None, :]
        e = F.leaky_relu(e, model.config.gat_negative_slope).masked_fill(adj == 0, float("-inf"))
        alpha = torch.softmax(e, dim=1).nan_to_num(0.0)  # Eq. 8; no neighbours -> 0
        layers.append(torch.relu(alpha @ wh))  # Eq. 7
    return torch.stack(layers).mean(dim=0)  # Eq. 9


def naive_item_graph(x: np.ndarray, k: int, norm: str) -> np.ndarray:
    """Eq. 10-12: cosine, top-k per row over all items (self included, ties by the lower index),
    values kept and clamped at 0, then D^{-1} S' (row) or D^{-1/2} S' D^{-1/2} (sym)."""
    x = x.astype(np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    s = np.zeros_like(sim)
    for f in range(len(x)):
        top = np.argsort(-sim[f], kind="stable")[:k]
        s[f, top] = np.maximum(sim[f, top], 0.0)
    deg = s.sum(axis=1)
    if norm == "row":
        return s / deg[:, None]
    d = deg**-0.5
    return d[:, None] * s * d[None, :]


def naive_views(model, data):
    """Eq. 13-14: one item-graph layer on H''_m, users the mean of their training items."""
    r = _dense_r(data)
    views = {}
    for m in model.modalities:
        s = torch.from_numpy(naive_item_graph(data.features[m], model.config.knn_k, "row"))
        items = s @ naive_purified(model, data, m)  # Eq. 13
        count = r.sum(dim=1, keepdim=True)
        users = torch.where(count > 0, r @ items / count.clamp(min=1), 0.0)  # Eq. 14
        views[m] = torch.cat([users, items])
    return views


def naive_fusion(model, views, h_n):
    """Eq. 15-26 with the dense N x N softmax, the same attention feeding both branches."""
    common, distinct = [], []
    for source in model.sources:
        block = model.fusion[source]
        q = _linear(block.query, views[model.query_modality])  # Eq. 16
        k = _linear(block.key, views[source])  # Eq. 15
        v = _linear(block.value, views[source])  # Eq. 17
        attn = torch.softmax(q @ k.T / q.shape[1] ** 0.5, dim=1) @ v  # Eq. 18 = Eq. 21
        cr = _linear(block.common_out, attn) + q  # Eq. 19
        common.append(block.common_mlp(block.common_norm(cr)) + cr)  # Eq. 20
        dr = _linear(block.distinct_out, v - attn) + q  # Eq. 22
        distinct.append(block.distinct_mlp(block.distinct_norm(dr)) + dr)  # Eq. 23
    g_com = torch.sigmoid(_linear(model.gate_common, h_n))  # Eq. 24
    g_dif = torch.sigmoid(_linear(model.gate_distinct, h_n))  # Eq. 25
    h_com, h_dif = torch.stack(common).mean(0), torch.stack(distinct).mean(0)
    return 0.5 * (h_com * g_com + h_dif * g_dif)  # Eq. 26


def naive_info_nce(anchor, positive, tau):
    a, p = F.normalize(anchor, dim=1), F.normalize(positive, dim=1)
    logits = a @ p.T / tau
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()


# ---------------------------------------------------------------- Eq. 1-6


@pytest.mark.parametrize("n_modalities", [1, 2])
def test_purification_eq1_to_6(cold_data, n_modalities):
    data = replace(cold_data, features=dict(list(cold_data.features.items())[:n_modalities]))
    model = _model(data)
    for m in model.modalities:
        want = naive_purified(model, data, m)
        torch.testing.assert_close(model.purified(m), want)
        # item 0 has no training user: Ubar_0 = 0, so H''_0 = E_0 * gate
        gate = torch.sigmoid(_linear(model.gate[m], _linear(model.align[m], _feat(data, m))))
        torch.testing.assert_close(want[0], model.item_emb[0] * gate[0])


# ---------------------------------------------------------------- Eq. 7-9


@pytest.mark.parametrize(("layers", "self_loops"), [(0, False), (1, False), (2, False), (2, True)])
def test_gat_eq7_to_9_equals_dense_masked_softmax(cold_data, layers, self_loops):
    model = _model(cold_data, gat_layers=layers, gat_self_loops=self_loops)
    want = naive_gat(model, cold_data, self_loops)
    got = model.collaborative()
    torch.testing.assert_close(got, want)
    if layers and not self_loops:  # isolated user 1 keeps E_1 / (L + 1) (layer 0 only)
        torch.testing.assert_close(got[1], model.user_emb[1] / (layers + 1))


def test_gat_uses_the_edge_list_not_a_dense_matrix(tiny_data):
    model = _model(tiny_data)
    assert model.edge_src.shape == (2 * tiny_data.train.nnz,)  # both directions, no self-loops
    assert model.edge_dst.shape == model.edge_src.shape


# ---------------------------------------------------------------- Eq. 10-14


@pytest.mark.parametrize("norm", ["row", "sym"])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_item_graphs_eq10_to_12(tiny_data, norm, k):
    model = _model(tiny_data, knn_k=k, item_graph_norm=norm)
    for m in model.modalities:
        want = naive_item_graph(tiny_data.features[m], k, norm)
        got = model.item_graph(m).to_dense().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        assert (np.count_nonzero(got, axis=1) <= k).all()
        if norm == "row":
            np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)


def test_item_graph_is_built_from_the_raw_features_and_frozen(tiny_data):
    model = _model(tiny_data)
    before = {m: model.item_graph(m).to_dense().clone() for m in model.modalities}
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model.loss(_batch())[0].backward()
    opt.step()
    for m in model.modalities:
        assert torch.equal(model.item_graph(m).to_dense(), before[m])
        assert not model.item_graph(m).requires_grad


def test_modality_views_eq13_to_14(cold_data):
    model = _model(cold_data)
    want = naive_views(model, cold_data)
    got = model.modality_views()
    assert list(got) == model.modalities
    for m in model.modalities:
        torch.testing.assert_close(got[m], want[m])
        assert torch.count_nonzero(got[m][1]) == 0  # user 1 has no training item


# ---------------------------------------------------------------- Eq. 15-26


@pytest.mark.parametrize("kernel", ["sdpa", "blocked"])
@pytest.mark.parametrize("n_modalities", [1, 2, 3])
def test_fusion_eq15_to_26_equals_dense_attention(tiny_data, kernel, n_modalities):
    rng = np.random.default_rng(5)
    feats = dict(tiny_data.features)
    feats["audio"] = rng.normal(size=(tiny_data.n_items, 6)).astype(np.float32)
    data = replace(tiny_data, features=dict(list(feats.items())[:n_modalities]))
    model = _model(data, attention_kernel=kernel, attention_block_size=7)
    views, h_n = model.modality_views(), model.collaborative()
    want = naive_fusion(model, views, h_n)
    torch.testing.assert_close(model.fuse(views, h_n), want)
    rows = torch.tensor([3, 0, 250, 199, 319])  # any subset of users and items, any order
    torch.testing.assert_close(model.fuse(views, h_n, rows), want[rows])


@pytest.mark.parametrize(
    ("names", "query", "sources"),
    [
        (["image", "text"], "text", ["image"]),  # the paper: text queries, image keys/values
        (["text", "image"], "text", ["image"]),
        (["image", "text", "audio"], "text", ["image", "audio"]),
        (["audio", "image"], "image", ["audio"]),  # no text: the last modality queries
        (["image"], "image", ["image"]),  # one modality: self-attention
    ],
)
def test_query_and_source_modalities(tiny_data, names, query, sources):
    x = next(iter(tiny_data.features.values()))
    data = replace(tiny_data, features={n: x for n in names})
    model = _model(data)
    assert (model.query_modality, model.sources) == (query, sources)
    assert sorted(model.fusion) == sorted(sources)


# ---------------------------------------------------------------- Eq. 27-28


def test_forward_eq27_sums_the_id_and_modality_representations(cold_data):
    model = _model(cold_data)
    h_n = naive_gat(model, cold_data)
    h = h_n + naive_fusion(model, naive_views(model, cold_data), h_n)
    users, items = model.export_embeddings()
    torch.testing.assert_close(users, h[: cold_data.n_users])
    torch.testing.assert_close(items, h[cold_data.n_users :])


def test_attention_kernels_give_the_same_model(tiny_data):
    a = _model(tiny_data, attention_kernel="sdpa").export_embeddings()
    b = _model(tiny_data, attention_kernel="blocked", attention_block_size=16).export_embeddings()
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)


# ---------------------------------------------------------------- Eq. 29-31


@pytest.mark.parametrize("reg_scope", ["batch", "all"])
def test_loss_eq29_to_31_equals_a_hand_computation(tiny_data, reg_scope):
    model = _model(tiny_data, reg_scope=reg_scope, cl_weight=0.3, reg_weight=0.01)
    batch = _batch()
    total, parts = model.loss(batch)

    h_n = naive_gat(model, tiny_data)
    h_m = naive_fusion(model, naive_views(model, tiny_data), h_n)
    h = h_n + h_m
    n_users = tiny_data.n_users
    u, p, q = batch.user_idx, n_users + batch.pos_idx, n_users + batch.neg_idx
    bpr = F.softplus((h[u] * h[q]).sum(1) - (h[u] * h[p]).sum(1)).mean()
    users, items = torch.unique(u), n_users + torch.unique(batch.pos_idx)
    tau = model.config.temperature
    cl = naive_info_nce(h_m[users], h_n[users], tau) + naive_info_nce(h_m[items], h_n[items], tau)
    if reg_scope == "batch":
        rows = [model.user_emb[u], model.item_emb[batch.pos_idx], model.item_emb[batch.neg_idx]]
        reg = 0.5 * sum(r.pow(2).sum() for r in rows) / len(u)
    else:
        reg = sum(prm.pow(2).sum() for prm in model.parameters())
    assert set(parts) == {"bpr", "cl", "reg"}
    torch.testing.assert_close(parts["bpr"], bpr.detach())
    torch.testing.assert_close(parts["cl"], cl.detach())
    torch.testing.assert_close(parts["reg"], reg.detach())
    torch.testing.assert_close(total, bpr + 0.3 * cl + 0.01 * reg)


def test_batch_rows_loss_equals_the_full_computation_with_its_gradients(tiny_data):
    """The loss computes Eq. 15-26 only for the batch's rows: same value, same gradients as
    computing every entity's H_m first (the paper's order)."""
    model = _model(tiny_data, cl_weight=0.5)
    batch = _batch()
    total, _ = model.loss(batch)
    grads = torch.autograd.grad(total, list(model.parameters()))

    h_n = model.collaborative()
    h_m = model.fuse(model.modality_views(), h_n)  # all N rows
    h = h_n + h_m
    n_users = tiny_data.n_users
    u, p, q = batch.user_idx, n_users + batch.pos_idx, n_users + batch.neg_idx
    bpr = F.softplus((h[u] * h[q]).sum(1) - (h[u] * h[p]).sum(1)).mean()
    users, items = torch.unique(u), n_users + torch.unique(batch.pos_idx)
    cl = naive_info_nce(h_m[users], h_n[users], 0.2) + naive_info_nce(h_m[items], h_n[items], 0.2)
    rows = [model.user_emb[u], model.item_emb[batch.pos_idx], model.item_emb[batch.neg_idx]]
    reg = 0.5 * sum(r.pow(2).sum() for r in rows) / len(u)
    full = bpr + 0.5 * cl + model.config.reg_weight * reg
    torch.testing.assert_close(total, full)
    for (name, _), a, b in zip(
        model.named_parameters(), grads, torch.autograd.grad(full, list(model.parameters())),
        strict=True,
    ):  # fmt: skip
        torch.testing.assert_close(a, b, msg=name)


# ---------------------------------------------------------------- settings


def test_paper_preset_and_defaults():
    config = resolve_config({"model": {"name": "camgr"}, "preset": "paper"})
    m, t = config.model, config.train
    assert (m.embedding_dim, m.knn_k, m.cl_weight, m.temperature) == (64, 15, 0.01, 0.2)
    assert (t.batch_size, t.epochs, t.patience, t.stop_metric) == (2048, 1000, 20, "recall@20")
    assert from_dict(CAmgrConfig, {}) == m  # the defaults are the paper's point
    baby = resolve_config({"model": {"name": "camgr"}, "preset": "baby"}).model
    assert baby.knn_k == 20  # Sec. 5.3.1: k = 20 on Baby, 15 elsewhere
    for name in ("sports", "clothing"):
        assert resolve_config({"model": {"name": "camgr"}, "preset": name}).model.knn_k == 15


@pytest.mark.parametrize(
    "bad",
    [
        {"knn_k": 0}, {"embedding_dim": 0}, {"gat_layers": -1}, {"temperature": 0.0},
        {"cl_weight": -1.0}, {"reg_weight": -1.0}, {"mlp_ratio": 0}, {"attention_block_size": 0},
        {"reg_scope": "final"}, {"attention_kernel": "flash"}, {"item_graph_norm": "none"},
        {"gat_activation": "gelu"},
    ],
)  # fmt: skip
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        from_dict(CAmgrConfig, bad).validate()


def test_data_problems_are_refused(tiny_data):
    with pytest.raises(ValueError, match="knn_k"):
        _model(tiny_data, knn_k=tiny_data.n_items + 1)
    with pytest.raises(ValueError, match="feature modalit"):
        _model(replace(tiny_data, features={}))
