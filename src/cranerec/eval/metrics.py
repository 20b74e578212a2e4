"""Top-K ranking metrics computed from a hit matrix, all from one top-K list (as in RecBole).

For a user with relevant set R (|R| >= 1) and ranked list L (L_j the item at rank j, 1-based),
with hit_j = 1 if L_j in R else 0 and H@K = sum_{j<=K} hit_j:

- Recall@K    = H@K / |R|
- Precision@K = H@K / K
- HitRate@K   = 1 if H@K > 0 else 0
- NDCG@K      = sum_{j<=K} hit_j / log2(j + 1)  /  sum_{j<=min(|R|, K)} 1 / log2(j + 1)
  (binary gains; the ideal DCG puts min(|R|, K) hits first)
- MAP@K       = sum_{j<=K} hit_j * Precision@j  /  min(|R|, K)     (RecBole's MAP)

Each is averaged over evaluated users.
"""

from __future__ import annotations

import torch

METRICS = ("recall", "ndcg", "precision", "map", "hit")


def metrics_from_hits(
    hits: torch.Tensor, n_relevant: torch.Tensor, ks: list[int], metrics: list[str]
) -> dict[str, torch.Tensor]:
    """Per-user metric values.

    Args:
        hits: [B, L] 0/1 (float64), hit_j for the top-L list of each user (L >= 1).
        n_relevant: [B] number of relevant items per user (>= 1).
        ks: cut-offs; a K larger than L reads the value at L (the list cannot be longer).
        metrics: names from ``METRICS``.

    Returns:
        ``"<metric>@<K>"`` -> [B] float64 tensor.
    """
    B, L = hits.shape
    device = hits.device
    ranks = torch.arange(1, L + 1, device=device, dtype=torch.float64)  # [L]
    discount = 1.0 / torch.log2(ranks + 1.0)  # [L]
    cum_hits = hits.cumsum(dim=1)  # [B, L]
    dcg = (hits * discount).cumsum(dim=1)  # [B, L]
    ideal = discount.cumsum(dim=0)  # [L]: IDCG with n hits at the top
    ap_sum = (hits * cum_hits / ranks).cumsum(dim=1)  # [B, L]
    n_rel = n_relevant.to(torch.float64)
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        col = min(k, L) - 1
        h = cum_hits[:, col]
        for m in metrics:
            if m == "recall":
                v = h / n_rel
            elif m == "precision":
                v = h / k
            elif m == "hit":
                v = (h > 0).to(torch.float64)
            elif m == "ndcg":
                n_ideal = torch.clamp(n_relevant, max=min(k, L)).long() - 1  # [B]
                v = dcg[:, col] / ideal[n_ideal]
            elif m == "map":
                v = ap_sum[:, col] / torch.clamp(n_rel, max=float(k))
            else:
                raise ValueError(f"unknown metric {m!r}; choose from {list(METRICS)}")
            out[f"{m}@{k}"] = v
    return out
