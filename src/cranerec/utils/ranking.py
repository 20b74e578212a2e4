"""Top-k with a deterministic order (score descending, then index ascending), shared by the
evaluator and the kNN graph builder."""

from __future__ import annotations

import torch


def topk_items(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` columns of each row ordered by (score desc, index asc). Returns (values, idx).

    Fast path: ``torch.topk`` of k+1 and a reorder of the k winners; rows whose (k+1)-th value
    equals the k-th (a tie crosses the cut) fall back to a stable full sort, which is exact.
    """
    n = scores.shape[1]
    vals, idx = torch.topk(scores, min(k + 1, n), dim=1)  # [B, k+1]
    if k < n:
        boundary = vals[:, k] == vals[:, k - 1]  # [B]
        vals, idx = vals[:, :k], idx[:, :k]
    else:
        boundary = torch.zeros(scores.shape[0], dtype=torch.bool, device=scores.device)
    order = torch.argsort(idx, dim=1)
    idx, vals = idx.gather(1, order), vals.gather(1, order)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    idx, vals = idx.gather(1, order), vals.gather(1, order)
    if boundary.any():
        # A tie crosses the cut: the items scoring above the k-th value are already in the list
        # (in order); fill the rest with the lowest-index items that tie with the k-th value.
        rows = torch.nonzero(boundary).squeeze(1)
        sub = scores[rows]  # [R, N]
        kth = vals[rows, k - 1 : k]  # [R, 1]
        n_above = (vals[rows] > kth).sum(dim=1, keepdim=True)  # [R, 1]
        n = sub.shape[1]
        # Lowest-index ties first: a key that is larger for lower indices, zero for non-ties.
        order_key = torch.arange(n, 0, -1, device=sub.device, dtype=sub.dtype)  # [N]
        key = torch.where(
            sub == kth, order_key, torch.zeros((), dtype=sub.dtype, device=sub.device)
        )
        first_ties = torch.topk(key, k, dim=1).indices  # [R, k], ascending index among ties
        slot = torch.arange(k, device=sub.device)[None, :]  # [1, k]
        new_idx = idx[rows].clone()
        fill = slot >= n_above  # positions after the items scoring above the k-th value
        src = (slot - n_above).clamp(min=0)
        new_idx[fill] = first_ties.gather(1, src)[fill]
        idx[rows] = new_idx
        vals[rows] = sub.gather(1, new_idx)
    return vals, idx
