"""Most-popular: every user gets the items with the most training interactions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cranerec.config import Settings
from cranerec.data.dataset import Dataset
from cranerec.models.base import Model
from cranerec.models.registry import register


@dataclass(frozen=True)
class PopConfig(Settings):
    """No settings: popularity is counted on the training split."""


@register
class Pop(Model):
    """Most popular: score(u, i) = training interactions of item i, the same for every user.

    Exported as ``user_emb`` = ones [n_users, 1], ``item_emb`` = counts [n_items, 1]. Not trained.
    """

    name = "pop"
    Config = PopConfig
    batch_kind = "none"

    def __init__(self, dataset: Dataset, config: PopConfig) -> None:
        super().__init__(dataset, config)
        counts = np.asarray(dataset.train.sum(axis=0), dtype=np.float32).reshape(-1, 1)
        self.register_buffer("item_count", torch.from_numpy(counts))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        ones = torch.ones(self.n_users, 1, device=self.item_count.device)
        return ones, self.item_count
