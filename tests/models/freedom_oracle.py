"""Dense float64 numpy versions of FREEDOM's graphs and forward pass, written from the reference's
description (not from our graph code), for ``test_freedom.py`` and ``test_crane_official.py``."""

from __future__ import annotations

import numpy as np
import torch


def item_graph(features: list[np.ndarray], k: int, weights: list[float]) -> np.ndarray:
    """sum_m w_m D^{-1/2} A_m D^{-1/2}: A_m the top-k cosine graph, the item itself competing
    (ties by the lower index), D the row sums of A_m."""
    n = len(features[0])
    out = np.zeros((n, n))
    for x, w in zip(features, weights, strict=True):
        x = np.asarray(x, dtype=np.float64)
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = xn @ xn.T
        a = np.zeros((n, n))
        for i in range(n):
            a[i, np.argsort(-sim[i], kind="stable")[:k]] = 1.0
        d = a.sum(axis=1) ** -0.5
        out += w * d[:, None] * a * d[None, :]
    return out


def ui_graph(n_users: int, n_items: int, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The symmetric-normalised bipartite adjacency of the given edges (users first)."""
    a = np.zeros((n_users + n_items, n_users + n_items))
    a[users, n_users + items] = 1.0
    a[n_users + items, users] = 1.0
    deg = a.sum(axis=1)
    d = np.where(deg > 0, deg, 1.0) ** -0.5 * (deg > 0)
    return d[:, None] * a * d[None, :]


def lightgcn(adj: np.ndarray, user_emb, item_emb, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of layers 0..n_layers of E <- adj E."""
    e = np.concatenate([_np(user_emb), _np(item_emb)])
    layers = [e]
    for _ in range(n_layers):
        layers.append(adj @ layers[-1])
    out = np.mean(layers, axis=0)
    n_users = _np(user_emb).shape[0]
    return out[:n_users], out[n_users:]


def bpr(u: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    """mean -log sigmoid(u.pos - u.neg)."""
    diff = (u * pos).sum(1) - (u * neg).sum(1)
    return float(np.mean(np.log1p(np.exp(-diff))))


def _np(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.asarray(t, dtype=np.float64)
