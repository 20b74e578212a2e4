"""VBPR (He & McAuley, AAAI 2016) as MMRec runs it: an item ID embedding beside a learned linear
projection of the item's features, scored by inner product and trained with BPR.

Paper symbol -> parameter: d -> ``embedding_dim`` (gamma_u, gamma_i, theta_u all of width d;
E: [F, d]); lambda -> ``reg_weight``.

Forward:
    f_i  = [f_i^(1) ; ... ; f_i^(M)]      every modality, raw, concatenated        [F]
    e_i  = [gamma_i ; E f_i + b]                                                  [2d]
    e_u  = [gamma_u ; theta_u]             one table of width 2d                   [2d]
    y_ui = e_u . e_i = gamma_u . gamma_i + theta_u . (E f_i + b)
Loss per batch of triples (u, i, j):
    mean(-log sigmoid(y_ui - y_uj)) + reg_weight * (|e_u|_F + |e_i|_F + |e_j|_F) / B
with |.|_F the Frobenius norm (not squared) of the batch's [B, 2d] rows and e_i, e_j the whole
item vectors, projection included (MMRec's ``EmbLoss``).

Reference behaviours reproduced (MMRec ``src/models/vbpr.py``):
- user table of width 2d, item vector [ID (d) ; projection (d)] (L31-32, L70-71);
- ID tables Xavier-uniform (L31-32); the projection a ``Linear`` with bias, Xavier-normal
  weight and zero bias (L40, L45: ``apply`` reaches only the Linear, not the two tables);
- raw features, no normalisation, all modalities concatenated (L33-38);
- no dropout: ``forward``'s dropout defaults to 0 and the loss never sets it (L69-75, L89);
- regularisation of u, the positive and the negative item vectors after the projection, by the
  sum of their Frobenius norms / B (L96-97, ``common/loss.py`` EmbLoss), weight 1e-4.

Deviations:
- the paper's bias terms (beta_i, beta'^T f_i) are absent, as in MMRec; the projection's bias b
  adds theta_u . b to every item of a user, so it never changes a ranking (BPR does not see it;
  only the regularisation moves it);
- MMRec concatenates text before image; we take the dataset's modality order (a permutation of
  E's columns: the same model) and any number of modalities;
- BPR is computed as softplus(y_uj - y_ui); MMRec's -log(1e-10 + sigmoid(.)) saturates at 23 with
  zero gradient once y_ui - y_uj < -23.

Shapes: ``forward() -> ([n_users, 2d], [n_items, 2d])``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.models.base import Batch, Model, xavier_embedding
from cranerec.models.registry import register
from cranerec.nn.losses import bpr_loss, frobenius_reg


@dataclass(frozen=True)
class VBPRConfig(Settings):
    """``embedding_dim``: d (the scoring vectors have width 2d); ``reg_weight``: lambda."""

    embedding_dim: int = 64
    reg_weight: float = 1e-4

    def validate(self) -> None:
        if self.embedding_dim < 1 or self.reg_weight < 0:
            raise ConfigError("embedding_dim must be >= 1 and reg_weight >= 0")


#: MMRec's setting for VBPR: its model file's reg_weight and its overall training defaults.
REFERENCE = {
    "model": {"embedding_dim": 64, "reg_weight": 1e-4},
    "train": {"lr": 1e-3, "batch_size": 2048, "epochs": 1000, "patience": 20,
              "negative_pool": "seen"},
}  # fmt: skip


@register
class VBPR(Model):
    """Inner product of [gamma_u ; theta_u] and [gamma_i ; E f_i + b] (see the module docstring)."""

    name = "vbpr"
    Config = VBPRConfig
    min_modalities = 1
    presets = {"reference": REFERENCE}

    def __init__(self, dataset: Dataset, config: VBPRConfig) -> None:
        super().__init__(dataset, config)
        d = config.embedding_dim
        self.user_emb = xavier_embedding(self.n_users, 2 * d)  # [gamma_u ; theta_u]
        self.item_emb = xavier_embedding(self.n_items, d)  # gamma_i
        features = np.concatenate([dataset.features[m] for m in dataset.modalities], axis=1)
        self.register_buffer("features", torch.from_numpy(features), persistent=False)  # [I, F]
        self.project = nn.Linear(features.shape[1], d)  # E, b
        nn.init.xavier_normal_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def item_vectors(self, item_idx: torch.Tensor | None = None) -> torch.Tensor:
        """[gamma_i ; E f_i + b] of the items ``item_idx`` (every item when None): [n, 2d]."""
        if item_idx is None:
            return torch.cat([self.item_emb, self.project(self.features)], dim=1)
        return torch.cat([self.item_emb[item_idx], self.project(self.features[item_idx])], dim=1)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_emb, self.item_vectors()

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        u = self.user_emb[batch.user_idx]  # [B, 2d]
        i = self.item_vectors(batch.pos_idx)  # [B, 2d]
        j = self.item_vectors(batch.neg_idx)
        rank = bpr_loss((u * i).sum(-1), (u * j).sum(-1))
        reg = self.config.reg_weight * frobenius_reg(u, i, j)
        return rank + reg, {"bpr": rank.detach(), "reg": reg.detach()}

    # ---------------------------------------------------------------- serving hooks

    @torch.no_grad()
    def items_from_features(
        self, features: dict[str, torch.Tensor], dataset: Dataset
    ) -> torch.Tensor:
        """Cold-start items (VBPR's own rule): ``[0 ; E f + b]``, the learned projection of the
        item's features (concatenated in the dataset's modality order, as in training) with a
        zero ID part, since the item has no trained gamma_i. Shapes: ``[n_new, 2d]``."""
        f = torch.cat([features[m] for m in dataset.modalities], dim=1)  # [n_new, F]
        visual = self.project(f.to(self.project.weight.dtype))  # [n_new, d]
        return torch.cat([torch.zeros_like(visual), visual], dim=1)
