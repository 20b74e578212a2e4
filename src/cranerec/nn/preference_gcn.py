"""One modality's branch of DualGNN and DRAGON (both references call it ``GCN``): the users'
preference vectors for the modality and the items' projected features, each row l2-normalised,
through the symmetric-normalised user-item graph, the layers SUMMED (not averaged):

    f_i    = W_2 LeakyReLU(W_1 x_i + b_1) + b_2       x_i the item's raw features [w],
                                                      W_1 [w -> 4d], W_2 [4d -> d] (MLP, MLP_1)
    e^(0)  = rownorm([P ; f])                         P [U, d] the preference table
    out    = sum_{l = 0..L} Ahat^l e^(0),  Ahat = D^{-1/2} A D^{-1/2}
             (``UserItemGraph`` "sym"; the references' ``Base_gcn`` with ``aggr='add'``: the
             message 1/sqrt(d_u d_i) x_j summed over the edges of both directions, no
             self-loops, the same conv applied L = 2 times)

Initialisation as in the references: P Xavier-normal (gain 1), the two linear maps PyTorch's
default; LeakyReLU slope 0.01. Also here: the per-user modality weights both models fuse
users with (``user_modality_weights``) and the loss both train with (``preference_loss``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from cranerec.graph.user_item import UserItemGraph
from cranerec.nn.losses import bpr_loss


class PreferenceGCN(nn.Module):
    """One modality: ``forward(graph, features, n_layers) -> (users [U, d], items [I, d])``."""

    def __init__(self, n_users: int, in_width: int, dim: int, hidden_factor: int = 4) -> None:
        super().__init__()
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, dim)))  # P
        hidden = hidden_factor * dim
        self.mlp = nn.Sequential(
            nn.Linear(in_width, hidden), nn.LeakyReLU(), nn.Linear(hidden, dim)
        )

    def item_inputs(self, features: torch.Tensor) -> torch.Tensor:
        """rownorm(f) of items with raw features [n, w]: their e^(0) rows [n, d] (also the
        whole representation of an item without edges)."""
        return F.normalize(self.mlp(features), dim=1)

    def forward(
        self, graph: UserItemGraph, features: torch.Tensor, n_layers: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """sum_{l=0..L} Ahat^l e^(0), split into users and items."""
        users, items = graph.propagate(
            F.normalize(self.preference, dim=1), self.item_inputs(features), n_layers
        )  # the layer mean
        return (n_layers + 1) * users, (n_layers + 1) * items

    def preference_l2(self, users: torch.Tensor) -> torch.Tensor:
        """mean(P[users]^2) over the [B, d] entries (the references' preference penalty)."""
        return self.preference[users].pow(2).mean()


def preference_branches(
    n_users: int, widths: dict[str, int], modalities: list[str], dim: int
) -> nn.ModuleDict:
    """One ``PreferenceGCN`` per modality, created in ``modalities`` order (``widths``: each
    modality's feature width)."""
    return nn.ModuleDict({m: PreferenceGCN(n_users, widths[m], dim) for m in modalities})


def user_modality_weights(n_users: int, n_modalities: int) -> nn.Parameter:
    """The references' per-user modality weights ``weight_u`` [U, K]: a Xavier-normal draw
    (fan-in K, fan-out U), softmax over the modalities once at initialisation, then trained
    freely (no softmax or constraint afterwards)."""
    w = nn.init.xavier_normal_(torch.empty(n_users, n_modalities, 1))
    return nn.Parameter(torch.softmax(w, dim=1).squeeze(-1))


def preference_loss(
    user_out: torch.Tensor,
    item_out: torch.Tensor,
    triples: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    branches: Iterable[PreferenceGCN],
    weight_u: torch.Tensor | None,
    reg_weight: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss DualGNN and DRAGON share, on (users, positives, negatives) index triples:
    BPR in bits (-log2 sigmoid, as both references code it) + ``reg_weight`` x (every branch's
    preference L2 of the batch's users + mean(weight_u^2) when there are several modalities)."""
    users, pos, neg = triples
    u = user_out[users]
    pos_scores, neg_scores = (u * item_out[pos]).sum(-1), (u * item_out[neg]).sum(-1)
    rank = bpr_loss(pos_scores, neg_scores) / math.log(2.0)
    reg = sum(branch.preference_l2(users) for branch in branches)
    if weight_u is not None:
        reg = reg + weight_u.pow(2).mean()
    reg = reg_weight * reg
    return rank + reg, {"bpr": rank.detach(), "reg": reg.detach()}
