"""LightGCN (He et al., SIGIR 2020): linear propagation over the normalised user-item graph."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.graph import UserItemGraph
from cranerec.models.base import Batch, Model, xavier_embedding
from cranerec.models.registry import register
from cranerec.nn.losses import bpr_loss, l2_batch


@dataclass(frozen=True)
class LightGCNConfig(Settings):
    """``n_layers``: K propagation layers; ``reg_weight``: L2 on the batch's layer-0 embeddings."""

    embedding_dim: int = 64
    n_layers: int = 2
    reg_weight: float = 1e-4

    def validate(self) -> None:
        if self.n_layers < 0 or self.embedding_dim < 1:
            raise ConfigError("n_layers must be >= 0 and embedding_dim >= 1")


@register
class LightGCN(Model):
    """Linear propagation over the normalised user-item graph; scores are inner products.

    E^(k+1) = D^{-1/2} A D^{-1/2} E^(k) on the training graph; final E = mean_k E^(k),
    k = 0..K; y_ui = e_u . e_i.

    Loss: BPR + reg_weight * 0.5 * (|e_u^(0)|^2 + |e_i^(0)|^2 + |e_j^(0)|^2) / B.

    Shapes: ``forward() -> ([n_users, d], [n_items, d])``; the adjacency is
    [n_users + n_items, n_users + n_items], users first.
    """

    name = "lightgcn"
    Config = LightGCNConfig

    def __init__(self, dataset: Dataset, config: LightGCNConfig) -> None:
        super().__init__(dataset, config)
        self.user_emb = xavier_embedding(self.n_users, config.embedding_dim)
        self.item_emb = xavier_embedding(self.n_items, config.embedding_dim)
        self.graph = UserItemGraph(dataset.train)  # D^{-1/2} A D^{-1/2}

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graph.propagate(self.user_emb, self.item_emb, self.config.n_layers)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        user_out, item_out = self.forward()
        u, i, j = user_out[batch.user_idx], item_out[batch.pos_idx], item_out[batch.neg_idx]
        rank = bpr_loss((u * i).sum(-1), (u * j).sum(-1))
        reg = self.config.reg_weight * l2_batch(
            self.user_emb[batch.user_idx],
            self.item_emb[batch.pos_idx],
            self.item_emb[batch.neg_idx],
        )
        return rank + reg, {"bpr": rank.detach(), "reg": reg.detach()}
