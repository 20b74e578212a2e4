"""LightGCN propagation equals the dense formula; Pop ranks by training counts."""

import numpy as np
import torch

from cranerec.models.lightgcn import LightGCN, LightGCNConfig
from cranerec.models.pop import Pop, PopConfig


def test_lightgcn_forward_matches_dense_formula(tiny_data):
    torch.manual_seed(0)
    model = LightGCN(tiny_data, LightGCNConfig(embedding_dim=8, n_layers=3))
    r = tiny_data.train.toarray().astype(np.float64)
    n_u, n_i = r.shape
    a = np.zeros((n_u + n_i, n_u + n_i))
    a[:n_u, n_u:], a[n_u:, :n_u] = r, r.T
    deg = a.sum(1)
    d = np.where(deg > 0, deg**-0.5, 0.0)
    a_hat = d[:, None] * a * d[None, :]
    e0 = torch.cat([model.user_emb, model.item_emb]).detach().double().numpy()
    layers = [e0]
    for _ in range(3):
        layers.append(a_hat @ layers[-1])
    expected = np.mean(layers, axis=0)
    user_emb, item_emb = model.export_embeddings()
    np.testing.assert_allclose(user_emb.numpy(), expected[:n_u], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(item_emb.numpy(), expected[n_u:], rtol=1e-4, atol=1e-6)


def test_pop_scores_are_training_counts(tiny_data):
    user_emb, item_emb = Pop(tiny_data, PopConfig()).export_embeddings()
    scores = (user_emb @ item_emb.T).numpy()
    counts = np.asarray(tiny_data.train.sum(axis=0)).ravel()
    assert np.array_equal(scores[0], counts) and np.array_equal(scores[-1], counts)
