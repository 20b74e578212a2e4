"""Fusing projected modality features into one item representation (CRANE Sec. 3.3 and 4.6):
recursive cross-modal attention, or the simpler rules the paper compares it with. One small
module per rule, chosen once by name (``make_fusion``).

Shapes: ``fusion(xs: K x [N, w], users: K x [U, w] or None) -> [N, w']``, where ``xs`` are the
item rows of the modalities in ``fusion.modalities`` and ``users`` their user profiles (read
only when ``fusion.reads_users``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cranerec.nn.rca import RecursiveCrossModalAttention

#: The fusion rules besides a modality's name (which keeps that modality alone).
FUSIONS = ("rca", "concat", "sum", "average")


class Fusion(nn.Module):
    """Base: the modalities a rule reads, in order."""

    reads_users = False

    def __init__(self, modalities: Sequence[str]) -> None:
        super().__init__()
        self.modalities = list(modalities)

    def forward(
        self, xs: list[torch.Tensor], users: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        raise NotImplementedError


class ConcatFusion(Fusion):
    """[x^1 ; ... ; x^K] (CRANE-C, the w/o-attention ablation; one modality: that modality)."""

    def forward(self, xs, users=None):
        return torch.cat(xs, dim=1)


class SumFusion(Fusion):
    """x^1 + ... + x^K (CRANE-S)."""

    def forward(self, xs, users=None):
        return torch.stack(xs).sum(dim=0)


class AverageFusion(Fusion):
    """Per-modality L2-normalised rows concatenated: their cosine similarity is the mean of the
    per-modality cosine similarities (CRANE-A)."""

    def forward(self, xs, users=None):
        return torch.cat([F.normalize(x, dim=1) for x in xs], dim=1)


class RCAFusion(Fusion):
    """X_att (Eq. 13): RCA over users and items (each modality's entities are the users'
    profiles stacked over the item rows), returned for the item rows only."""

    reads_users = True

    def __init__(self, modalities: Sequence[str], rca: RecursiveCrossModalAttention) -> None:
        super().__init__(modalities)
        self.rca = rca

    def forward(self, xs, users=None):
        if users is None:
            raise ValueError("RCA fusion needs the users' profiles")
        entities = [torch.cat([u, x]) for u, x in zip(users, xs, strict=True)]  # [U + N, w]
        n_users = users[0].shape[0]
        rows = torch.arange(n_users, n_users + xs[0].shape[0], device=xs[0].device)
        return torch.cat(self.rca(entities, out_rows=rows), dim=1)  # [N, K w]


def make_fusion(
    rule: str, modalities: Sequence[str], rca: RecursiveCrossModalAttention | None = None
) -> Fusion:
    """The fusion named ``rule`` over ``modalities`` (``rca`` needs the RCA module); a modality
    name keeps that modality alone. Raises ValueError naming the choices."""
    if rule in modalities:
        return ConcatFusion([rule])
    if rule == "rca":
        if rca is None:
            raise ValueError("fusion 'rca' needs an RCA module")
        return RCAFusion(modalities, rca)
    rules = {"concat": ConcatFusion, "sum": SumFusion, "average": AverageFusion}
    if rule not in rules:
        raise ValueError(
            f"fusion {rule!r} is neither one of {list(FUSIONS)} nor a modality "
            f"({', '.join(modalities)})"
        )
    return rules[rule](modalities)
