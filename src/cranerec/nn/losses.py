"""Every loss the models use: BPR, the L2 forms, InfoNCE and its variants (one place, one
definition each)."""

from __future__ import annotations

from typing import Literal

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


def centred_info_nce(
    anchor: torch.Tensor, positive: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``info_nce`` of the batch-centred views (each view less its batch mean): the direction
    every row shares is left out of the contrast, so the negatives do not push it away (on
    TikTok they pushed the user vectors apart until no common direction was left, and with it
    the popularity signal a dot-product model carries there)."""
    return info_nce(
        anchor - anchor.mean(dim=0, keepdim=True),
        positive - positive.mean(dim=0, keepdim=True),
        temperature,
    )


def cosine_alignment(
    anchor: torch.Tensor, positive: torch.Tensor, temperature: float | None = None
) -> torch.Tensor:
    """Alignment without negatives: mean over the batch of 1 - cos(a_b, p_b) (``temperature``
    is accepted and unused, so that it takes the place of ``info_nce``)."""
    return (1.0 - F.cosine_similarity(anchor, positive, dim=1)).mean()


#: Contrastive terms between two views of the same rows (CRANE's ``cl_loss``).
VIEW_CONTRASTS = {"infonce": info_nce, "align": cosine_alignment, "centred": centred_info_nce}


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Mean BPR loss: -log sigmoid(s_pos - s_neg), computed stably with softplus."""
    return F.softplus(neg_scores - pos_scores).mean()


def l2_batch(*embeddings: torch.Tensor) -> torch.Tensor:
    """L2 on a batch's embeddings: 0.5 * sum of squared entries / batch size (the LightGCN
    paper's form), so the weight keeps its meaning across batch sizes."""
    return 0.5 * sum(e.pow(2).sum() for e in embeddings) / embeddings[0].shape[0]


def frobenius_reg(*embeddings: torch.Tensor) -> torch.Tensor:
    """MMRec's ``EmbLoss``: the sum of the tensors' Frobenius norms (not squared) divided by the
    number of rows of the LAST tensor (the batch size when all are batch rows)."""
    return sum(torch.linalg.matrix_norm(e) for e in embeddings) / embeddings[-1].shape[0]


def inner_product_nce(
    anchor: torch.Tensor, positive: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Mean InfoNCE on raw inner products (no normalisation; SLMRec's FAC task): row b of
    ``anchor`` [B, d] should match row b of ``positive`` [B, d] against every row of it:

        mean_b -log( exp(a_b . p_b / tau) / sum_b' exp(a_b . p_b' / tau) )
    """
    logits = anchor @ positive.T / temperature  # [B, B]
    return F.cross_entropy(logits, torch.arange(len(anchor), device=anchor.device))


def info_nce_table(
    anchor: torch.Tensor,
    table: torch.Tensor,
    idx: torch.Tensor,
    temperature: float,
    reduction: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """InfoNCE of a batch against a whole table (LGMRec's hypergraph contrast): row b of
    ``anchor`` [B, d] should match row ``idx[b]`` of ``table`` [N, d] against all N rows
    (cosine similarity / temperature):

        -log( exp(s(a_b, t_idx_b)/tau) / sum_j exp(s(a_b, t_j)/tau) ),  mean or sum over b.
    """
    a = F.normalize(anchor, dim=1) / temperature  # scaled before the product: [B, d], not [B, N]
    t = F.normalize(table, dim=1)
    return F.cross_entropy(a @ t.T, idx, reduction=reduction)  # [B, N] logits
