"""Losses shared by models."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean InfoNCE over a batch: row b of ``anchor`` [B, d] should match row b of ``positive``
    against every other row (cosine similarity / temperature):

        mean_b -log( exp(s(a_b, p_b)/tau) / sum_b' exp(s(a_b, p_b')/tau) )

    Rows must be distinct entities (pass unique ids: a duplicate is its own false negative).
    """
    a = F.normalize(anchor, dim=1)
    p = F.normalize(positive, dim=1)
    logits = a @ p.T / temperature  # [B, B]
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))
