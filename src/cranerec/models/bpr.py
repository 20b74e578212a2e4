"""BPR-MF: matrix factorisation trained with the BPR loss (Rendle et al., 2009)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cranerec.config import Settings
from cranerec.data.dataset import Dataset
from cranerec.models.base import Batch, Model, xavier_embedding
from cranerec.models.registry import register
from cranerec.nn.losses import bpr_loss, l2_batch


@dataclass(frozen=True)
class BPRConfig(Settings):
    """``embedding_dim``: d; ``reg_weight``: lambda of the L2 term on the batch's embeddings."""

    embedding_dim: int = 64
    reg_weight: float = 1e-4


@register
class BPR(Model):
    """Matrix factorisation trained with BPR: y_ui = e_u . e_i.

    Loss per batch of triples (u, i, j):
        mean(-log sigmoid(y_ui - y_uj)) + reg_weight * 0.5 * (|e_u|^2 + |e_i|^2 + |e_j|^2) / B

    Shapes: ``forward() -> ([n_users, d], [n_items, d])``.
    """

    name = "bpr"
    Config = BPRConfig

    def __init__(self, dataset: Dataset, config: BPRConfig) -> None:
        super().__init__(dataset, config)
        self.user_emb = xavier_embedding(self.n_users, config.embedding_dim)
        self.item_emb = xavier_embedding(self.n_items, config.embedding_dim)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_emb, self.item_emb

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        u = self.user_emb[batch.user_idx]  # [B, d]
        i = self.item_emb[batch.pos_idx]
        j = self.item_emb[batch.neg_idx]
        rank = bpr_loss((u * i).sum(-1), (u * j).sum(-1))
        reg = self.config.reg_weight * l2_batch(u, i, j)
        return rank + reg, {"bpr": rank.detach(), "reg": reg.detach()}
