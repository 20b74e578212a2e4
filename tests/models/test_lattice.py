"""LATTICE against the reference's behaviour: initial graphs N(A(x^m)) from the raw features,
a learned graph N(sum_m w_m A(P^m)) from the projected features, mixed as
(1 - lambda) L + lambda sum_m w_m O^m with softmax modality weights; the learned graph rebuilt
with gradient only on an epoch's first step; the loss (BPR + L2 on the final vectors) checked
against a dense numpy computation."""

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cranerec.config import from_dict
from cranerec.models.base import Batch
from cranerec.models.lattice import LATTICE, LATTICEConfig
from cranerec.train.config import resolve_config


def _model(data, **settings):
    torch.manual_seed(0)
    return LATTICE(data, from_dict(LATTICEConfig, settings))


def _with_modalities(data, n):
    """``data`` with its first ``n`` of (image, text, extra) modalities."""
    feats = dict(data.features)
    feats["extra"] = np.random.default_rng(7).normal(size=(data.n_items, 6)).astype(np.float32)
    return replace(data, features=dict(list(feats.items())[:n]))


def _batch():
    return Batch(
        user_idx=torch.tensor([0, 3, 3, 17, 42, 199]),
        pos_idx=torch.tensor([5, 0, 7, 119, 64, 2]),
        neg_idx=torch.tensor([9, 11, 1, 3, 64, 100]),
    )


def knn_sim(x: np.ndarray, k: int) -> np.ndarray:
    """Dense A(x): each row keeps its top-k cosine similarities (self competing, ties by the
    lower index), zeros elsewhere (the reference's build_sim + build_knn_neighbourhood)."""
    x = np.asarray(x, dtype=np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    out = np.zeros_like(sim)
    for i, row in enumerate(sim):
        top = np.argsort(-row, kind="stable")[:k]
        out[i, top] = row[top]
    return out


def laplacian(s: np.ndarray) -> np.ndarray:
    """N(S) = D^{-1/2} S D^{-1/2}, D the row sums (the reference's
    compute_normalized_laplacian)."""
    d = s.sum(axis=1) ** -0.5
    return d[:, None] * s * d[None, :]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _projected(model, m):
    return _np(model.feature(m)) @ _np(model.project[m].weight).T + _np(model.project[m].bias)


def _softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


@pytest.mark.parametrize("n_modalities", [1, 2, 3])
def test_initial_graphs_are_the_normalised_brute_force_similarity_knn(tiny_data, n_modalities):
    data = _with_modalities(tiny_data, n_modalities)
    model = _model(data, knn_k=4)
    for m in model.modalities:
        expected = laplacian(knn_sim(data.features[m], 4))
        got = model.initial_graph(m).to_dense().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
        assert (np.count_nonzero(got, axis=1) == 4).all()  # k similarity-weighted entries


def test_image_modality_comes_first(tiny_data):
    data = replace(tiny_data, features=dict(reversed(list(tiny_data.features.items()))))
    assert list(data.features) == ["text", "image"]
    assert _model(data).modalities == ["image", "text"]
    assert _model(data, image_modality="none").modalities == ["text", "image"]


@pytest.mark.parametrize("n_modalities", [2, 3])
def test_learned_graph_is_built_from_the_projected_features(tiny_data, n_modalities):
    model = _model(_with_modalities(tiny_data, n_modalities), knn_k=5)
    with torch.no_grad():
        model.modal_weight.copy_(torch.linspace(-0.5, 1.0, n_modalities))
    w = _softmax(_np(model.modal_weight))
    np.testing.assert_allclose(_np(model.modality_weights()), w, rtol=1e-6)
    mixed = sum(
        wm * knn_sim(_projected(model, m), 5) for wm, m in zip(w, model.modalities, strict=True)
    )
    got = model.learned_graph(model.modality_weights()).to_dense()
    np.testing.assert_allclose(_np(got), laplacian(mixed), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("lam", [0.9, 0.3])
def test_item_graph_keeps_lambda_of_the_initial_graphs(tiny_data, lam):
    model = _model(_with_modalities(tiny_data, 3), knn_k=5, lambda_coeff=lam)
    with torch.no_grad():
        model.modal_weight.copy_(torch.tensor([0.2, -0.4, 1.0]))
    w = _softmax(_np(model.modal_weight))
    learned = laplacian(
        sum(
            wm * knn_sim(_projected(model, m), 5) for wm, m in zip(w, model.modalities, strict=True)
        )
    )
    initial = sum(
        wm * laplacian(knn_sim(model.feature(m).detach().numpy(), 5))
        for wm, m in zip(w, model.modalities, strict=True)
    )
    expected = (1 - lam) * learned + lam * initial  # lambda_coeff = 0.9: 0.9 of the initial
    np.testing.assert_allclose(_np(model.item_graph().to_dense()), expected, atol=1e-6)


def test_one_modality_has_no_weight_and_mixes_its_two_graphs(tiny_data):
    model = _model(_with_modalities(tiny_data, 1), knn_k=4)
    assert model.modal_weight is None
    assert "modal_weight" not in dict(model.named_parameters())
    (m,) = model.modalities
    expected = 0.1 * laplacian(knn_sim(_projected(model, m), 4)) + 0.9 * laplacian(
        knn_sim(tiny_data.features[m], 4)
    )
    np.testing.assert_allclose(_np(model.item_graph().to_dense()), expected, atol=1e-6)


def _graph_params(model):
    return {
        n: p
        for n, p in model.named_parameters()
        if n.startswith(("project.", "features.", "modal_weight"))
    }


def test_learned_graph_gets_gradient_only_on_the_first_step_of_an_epoch(tiny_data):
    model = _model(tiny_data, knn_k=5).train()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    raw = {m: x.copy() for m, x in tiny_data.features.items()}
    initial = {m: model.initial_graph(m).to_dense().clone() for m in model.modalities}
    graphs = []
    for epoch in range(2):
        model.pre_epoch(epoch, np.random.default_rng(epoch))
        for step in range(2):
            opt.zero_grad(set_to_none=True)
            model.loss(_batch())[0].backward()
            for name, p in _graph_params(model).items():
                if step == 0:  # the graph is rebuilt: gradient into projections, features, w
                    assert p.grad is not None and p.grad.abs().sum() > 0, (epoch, name)
                else:  # the stored graph is reused detached
                    assert p.grad is None, (epoch, name)
            assert model.item_emb.grad.abs().sum() > 0 and model.user_emb.grad.abs().sum() > 0
            graphs.append(model._adj_item.to_dense().clone())
            opt.step()
    # the second step reused the first step's graph although the projections had moved ...
    assert torch.equal(graphs[0], graphs[1])
    stale = model.item_graph().to_dense()
    # ... and the next epoch rebuilt it from the moved parameters
    assert not torch.allclose(graphs[1], graphs[2])
    torch.testing.assert_close(graphs[2], graphs[3])
    assert not torch.allclose(stale, graphs[3])  # parameters moved again after the rebuild
    # evaluation builds the graph afresh from the current parameters
    model.eval()
    with torch.no_grad():
        fresh = model.item_graph()
        user_out, item_out = model.collaborative()
        h = torch.sparse.mm(fresh, model.item_emb)
        expected = item_out + torch.nn.functional.normalize(h, dim=1)
    torch.testing.assert_close(model.export_embeddings()[1], expected)
    # the initial graphs stay those of the loaded features; the dataset is never written
    for m in model.modalities:
        assert not np.array_equal(model.feature(m).detach().numpy(), raw[m])  # fine-tuned
        assert torch.equal(model.initial_graph(m).to_dense(), initial[m])
        np.testing.assert_array_equal(tiny_data.features[m], raw[m])


def test_frozen_features_get_no_parameter(tiny_data):
    model = _model(tiny_data, tune_features=False)
    assert not any(n.startswith("features.") for n, _ in model.named_parameters())
    model.loss(_batch())[0].backward()
    assert all(p.grad.abs().sum() > 0 for p in _graph_params(model).values())


def test_loss_matches_a_dense_hand_computation(tiny_data):
    model = _model(tiny_data, knn_k=5, reg_weight=0.3).train()
    with torch.no_grad():
        model.modal_weight.copy_(torch.tensor([0.7, -0.2]))
    batch = _batch()
    total, parts = model.loss(batch)

    n_u, n_i = tiny_data.n_users, tiny_data.n_items
    r = sp.csr_matrix(tiny_data.train, dtype=np.float64).toarray()
    a = np.block([[np.zeros((n_u, n_u)), r], [r.T, np.zeros((n_i, n_i))]]) + np.eye(n_u + n_i)
    a_hat = a / a.sum(axis=1, keepdims=True)  # D^{-1} (A + I)
    e0 = np.vstack([_np(model.user_emb), _np(model.item_emb)])
    e = (e0 + a_hat @ e0 + a_hat @ a_hat @ e0) / 3  # layer mean, n_ui_layers = 2
    w = _softmax(_np(model.modal_weight))
    learned = laplacian(
        sum(
            wm * knn_sim(_projected(model, m), 5) for wm, m in zip(w, model.modalities, strict=True)
        )
    )
    initial = sum(
        wm * laplacian(knn_sim(tiny_data.features[m], 5))
        for wm, m in zip(w, model.modalities, strict=True)
    )
    h = (0.1 * learned + 0.9 * initial) @ _np(model.item_emb)  # n_mm_layers = 1
    user = e[:n_u]
    item = e[n_u:] + h / np.linalg.norm(h, axis=1, keepdims=True)
    u, p, q = (x.numpy() for x in (batch.user_idx, batch.pos_idx, batch.neg_idx))
    diff = (user[u] * item[p]).sum(1) - (user[u] * item[q]).sum(1)
    bpr = np.mean(np.log1p(np.exp(-diff)))  # -log sigmoid
    reg = 0.5 * ((user[u] ** 2).sum() + (item[p] ** 2).sum() + (item[q] ** 2).sum()) / len(u)
    np.testing.assert_allclose(parts["bpr"].item(), bpr, rtol=1e-5)
    np.testing.assert_allclose(parts["reg"].item(), reg, rtol=1e-5)
    np.testing.assert_allclose(total.item(), bpr + 0.3 * reg, rtol=1e-5)
    # the forward's vectors score the same way
    user_out, item_out = model()
    np.testing.assert_allclose(_np(item_out), item, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_np(user_out), user, rtol=1e-4, atol=1e-5)


def test_presets_are_the_reference_point_with_its_lr_schedule():
    ref = resolve_config({"model": {"name": "lattice"}, "preset": "reference"})
    ten = resolve_config({"model": {"name": "lattice"}, "preset": "reference_10ep"})
    for config in (ref, ten):
        m = config.model
        assert (m.knn_k, m.lambda_coeff, m.n_mm_layers, m.n_ui_layers) == (10, 0.9, 1, 2)
        assert (m.embedding_dim, m.projection_dim, m.reg_weight) == (64, 64, 1e-4)
        t = config.train
        assert (t.lr, t.lr_decay, t.lr_decay_every) == (5e-4, 0.96, 50)  # 0.96 ** (e / 50)
        assert (t.batch_size, t.negative_pool, t.stop_metric) == (2048, "seen", "recall@20")
    assert (ref.train.epochs, ref.train.patience) == (1000, 20)
    assert ten.train.epochs == 10 and ten.train.patience >= ten.train.epochs


def test_settings_are_validated():
    from cranerec.config import ConfigError

    for bad in ({"lambda_coeff": 1.5}, {"knn_k": 0}, {"n_mm_layers": -1}, {"reg_weight": -1}):
        with pytest.raises(ConfigError):
            from_dict(LATTICEConfig, bad)


def test_refuses_data_without_features(tiny_data):
    with pytest.raises(ValueError, match="at least 1 feature"):
        _model(replace(tiny_data, features={}))
