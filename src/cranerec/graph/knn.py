"""k-nearest-neighbour item graphs from feature vectors (LATTICE, FREEDOM, CRANE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cranerec.utils.ranking import topk_items


def knn_graph(
    features: torch.Tensor, k: int, *, exclude_self: bool = True, block_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` cosine neighbours of every row of ``features`` [N, D].

    Returns ``(indices [N, k], values [N, k])``: the neighbour indices and their cosine
    similarities, computed in row blocks so memory stays O(block_size x N). Differentiable in
    ``values`` (gradients flow into ``features`` through the kept similarities). Ties are broken
    by the lower index.
    """
    n = features.shape[0]
    if not 0 < k < n + (0 if exclude_self else 1):
        raise ValueError(f"k={k} must be in [1, {n - 1 if exclude_self else n}] for {n} rows")
    normed = F.normalize(features, dim=1)
    idx_blocks, val_blocks = [], []
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        sim = normed[start:stop] @ normed.T  # [B, N]
        if exclude_self:
            rows = torch.arange(stop - start, device=sim.device)
            sim = sim.index_put((rows, rows + start), sim.new_tensor(float("-inf")))
        with torch.no_grad():
            _, top = topk_items(sim.detach(), k)  # ties by the lower index
        idx_blocks.append(top)
        val_blocks.append(sim.gather(1, top))
    return torch.cat(idx_blocks), torch.cat(val_blocks)
