"""Attention rows sharded over the ranks of a ``torch.distributed`` process group.

The rows of ``tanh(Q K^T) V`` are independent given the keys, so each of W ranks computes a
contiguous slice of ceil(n_q / W) query rows with the exact blocked kernel and the slices are
gathered into the full [n_q, d_v] result on every rank (``gather_rows``). Cost per rank:
O(n_q n d / W) flops and one all-gather of n_q x d_v values.

Gradients. Every rank holds the same parameters and computes its own loss L_r from the gathered
output. The backward of ``gather_rows`` sums the output gradient over the ranks (one
all-reduce) and keeps this rank's rows, so rank r's parameters receive
sum_r' dL_r'/dtheta through rows r. Averaging the parameter gradients over the ranks, which
DistributedDataParallel does, then gives (1/W) sum_r' dL_r'/dtheta: the gradient of the mean of
the ranks' losses, exactly as one process computing all rows would (tested in float64 against
the single-process kernel, tests/nn/test_sharded.py).

Approximate RCA (``n_keys > 0``): the key sample is drawn on rank 0 and broadcast, so every rank
attends over the same keys (torch's generator may differ between ranks).

All ranks must call the function in the same order with tensors of the same shapes (the
collectives pair up by order), as replicated training does.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from cranerec.nn.attention import blocked_tanh_attention


def _rows_of(rank: int, world: int, n: int) -> tuple[int, int, int]:
    """(start, stop, chunk): rank's contiguous row range of n rows split in W chunks."""
    chunk = -(-n // world)  # ceil
    start = min(rank * chunk, n)
    return start, min(start + chunk, n), chunk


class _GatherRows(torch.autograd.Function):
    """Forward: all-gather each rank's [chunk, d] rows into [W chunk, d]. Backward: all-reduce
    (sum) the gradient of the gathered rows and keep this rank's chunk."""

    @staticmethod
    def forward(ctx, local: torch.Tensor, group) -> torch.Tensor:
        world = dist.get_world_size(group)
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local.contiguous(), group=group)
        ctx.group, ctx.rank, ctx.chunk = group, dist.get_rank(group), local.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)  # sum over the ranks' losses
        start = ctx.rank * ctx.chunk
        return grad[start : start + ctx.chunk], None


def gather_rows(local: torch.Tensor, n_rows: int, group=None) -> torch.Tensor:
    """Concatenate every rank's rows (this rank's are ``local``, its ``_rows_of`` slice) into
    the full [n_rows, d] tensor; differentiable (see the module docstring for the gradient)."""
    world = dist.get_world_size(group)
    chunk = -(-n_rows // world)
    if local.shape[0] < chunk:  # the last ranks' slices are short or empty: pad, then trim
        pad = local.new_zeros(chunk - local.shape[0], *local.shape[1:])
        local = torch.cat([local, pad])
    return _GatherRows.apply(local, group)[:n_rows]


class ShardedTanhAttention:
    """``tanh(q k^T) v`` with the query rows split over the ranks of ``group`` (default: the
    default process group); ``cache_mb`` as ``nn.attention.blocked_tanh_attention``; ``n_keys > 0``
    samples that many keys as
    ``nn.attention.sampled_tanh_attention`` does (an unbiased estimate, scaled by n / n_keys),
    the same sample on every rank. Same call signature as the single-process kernels."""

    def __init__(
        self, block_size: int = 128, n_keys: int = 0, group=None, cache_mb: float = 0
    ) -> None:
        if n_keys < 0 or block_size < 1:
            raise ValueError(f"n_keys must be >= 0 and block_size >= 1, got {n_keys}, {block_size}")
        self.block_size, self.n_keys, self.group = block_size, n_keys, group
        self.cache_mb = cache_mb  # of this call's score blocks (nn.attention)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        n, scale = k.shape[0], 1.0
        if 0 < self.n_keys < n:
            keys = torch.randperm(n, device=k.device)[: self.n_keys]  # [S]
            dist.broadcast(keys, src=dist.get_global_rank(self.group, 0) if self.group else 0,
                           group=self.group)  # fmt: skip
            k, v, scale = k[keys], v[keys], n / self.n_keys
        start, stop, _ = _rows_of(dist.get_rank(self.group), dist.get_world_size(self.group),
                                  q.shape[0])  # fmt: skip
        local = blocked_tanh_attention(q[start:stop], k, v, self.block_size, self.cache_mb)
        out = gather_rows(local, q.shape[0], self.group)
        return out * scale if scale != 1.0 else out
