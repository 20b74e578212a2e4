"""User profiles from the features of their items (CRANE Eq. 5 and Sec. 4.8): a user's row
aggregates the feature rows of the items they interacted with in training. One small module per
rule, chosen once by name (``PROFILES``), so a model never branches on the rule per call.

Shapes: ``profiles(x_items [n_items, w], modality) -> [n_users, w]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cranerec.graph import edge_softmax, to_torch_sparse

ProfileRule = Literal["sum", "mean", "max", "attention"]


class UserProfiles(nn.Module):
    """Base: the training interactions R [n_users, n_items] (binary) as a sparse matrix, as the
    users' degrees, and as an edge list (users, items). ``linear``: the rule is a linear map of
    the item rows (so it commutes with a linear projection)."""

    linear: ClassVar[bool] = False

    def __init__(self, train: sp.spmatrix, modalities: Sequence[str], width: int) -> None:
        super().__init__()
        train = sp.csr_matrix(train)
        coo = train.tocoo()
        self.n_users = train.shape[0]
        self.register_buffer("interactions", to_torch_sparse(train), persistent=False)
        degree = np.maximum(np.diff(train.indptr), 1).astype(np.float32)
        self.register_buffer("user_deg", torch.from_numpy(degree)[:, None], persistent=False)
        self.register_buffer(
            "edge_users", torch.from_numpy(coo.row.astype(np.int64)), persistent=False
        )
        self.register_buffer(
            "edge_items", torch.from_numpy(coo.col.astype(np.int64)), persistent=False
        )

    def forward(self, x_items: torch.Tensor, modality: str) -> torch.Tensor:
        raise NotImplementedError


class SumProfile(UserProfiles):
    """x_u = sum of the user's items' rows (Eq. 5)."""

    linear = True

    def forward(self, x_items: torch.Tensor, modality: str) -> torch.Tensor:
        return torch.sparse.mm(self.interactions, x_items)


class MeanProfile(UserProfiles):
    """x_u = mean of the user's items' rows (a user without items: 0)."""

    linear = True

    def forward(self, x_items: torch.Tensor, modality: str) -> torch.Tensor:
        return torch.sparse.mm(self.interactions, x_items) / self.user_deg


class MaxProfile(UserProfiles):
    """x_u = element-wise maximum over the user's items' rows (a user without items: 0)."""

    def forward(self, x_items: torch.Tensor, modality: str) -> torch.Tensor:
        w = x_items.shape[1]
        out = x_items.new_zeros(self.n_users, w)
        index = self.edge_users[:, None].expand(-1, w)  # [E, w]
        return out.scatter_reduce(0, index, x_items[self.edge_items], "amax", include_self=False)


class AttentionProfile(UserProfiles):
    """x_u = sum_i alpha_ui x_i, alpha_ui = softmax over the user's items of q_m . x_i, with a
    learned query q_m per modality (zero at start: the mean). Sec. 4.8, our definition."""

    def __init__(self, train: sp.spmatrix, modalities: Sequence[str], width: int) -> None:
        super().__init__(train, modalities, width)
        self.query = nn.ParameterDict({m: nn.Parameter(torch.zeros(width)) for m in modalities})

    def forward(self, x_items: torch.Tensor, modality: str) -> torch.Tensor:
        logits = x_items[self.edge_items] @ self.query[modality]  # [E]
        alpha = edge_softmax(logits, self.edge_users, self.n_users)  # [E]
        return x_items.new_zeros(self.n_users, x_items.shape[1]).index_add(
            0, self.edge_users, alpha[:, None] * x_items[self.edge_items]
        )


PROFILES: dict[str, type[UserProfiles]] = {
    "sum": SumProfile, "mean": MeanProfile, "max": MaxProfile, "attention": AttentionProfile,
}  # fmt: skip
