"""Exact attention with a ``tanh`` score function, computed in row blocks.

``Y = tanh(Q K^T) V`` for Q [n_q, d], K [n, d], V [n, d_v] never materialises the n_q x n score
matrix: forward and backward walk over row blocks of Q, so the extra memory is
O(block_size x n). The backward pass recomputes each block's scores instead of keeping them
(a custom autograd function), which is what makes CRANE's Recursive Cross-Modal Attention
(C^m = tanh(X^m P^m^T), Eq. 10-11) affordable: its score matrix is (M+N) x (M+N).

Cost: forward 4 n_q n d flops; backward 10 n_q n d (recompute Q K^T, dV, dC, dQ, dK).
"""

from __future__ import annotations

import torch


def _block_rows(n: int, block_size: int) -> range:
    return range(0, n, block_size)


class _BlockedTanhAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int):
        out = q.new_empty(q.shape[0], v.shape[1])
        for start in _block_rows(q.shape[0], block_size):
            stop = min(start + block_size, q.shape[0])
            scores = (q[start:stop] @ k.T).tanh_()  # [b, n]
            torch.mm(scores, v, out=out[start:stop])  # [b, d_v]
        ctx.save_for_backward(q, k, v)
        ctx.block_size = block_size
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        q, k, v = ctx.saved_tensors
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        grad_q = torch.zeros_like(q) if need_q else None
        grad_k = torch.zeros_like(k) if need_k else None
        grad_v = torch.zeros_like(v) if need_v else None
        for start in _block_rows(q.shape[0], ctx.block_size):
            stop = min(start + ctx.block_size, q.shape[0])
            q_b, g_b = q[start:stop], grad_out[start:stop]
            scores = (q_b @ k.T).tanh_()  # [b, n], recomputed
            if need_v:
                grad_v.addmm_(scores.T, g_b)  # dV += C_b^T dY_b
            if need_q or need_k:
                tanh_grad = scores.square_().neg_().add_(1.0)  # in place: 1 - C_b^2
                grad_s = (g_b @ v.T).mul_(tanh_grad)  # [b, n]: dC * tanh'
                if need_q:
                    grad_q[start:stop] = grad_s @ k
                if need_k:
                    grad_k.addmm_(grad_s.T, q_b)
        return grad_q, grad_k, grad_v, None


def blocked_tanh_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int = 128
) -> torch.Tensor:
    """``tanh(q @ k.T) @ v`` computed exactly in row blocks of ``q``.

    Shapes: q [n_q, d], k [n, d], v [n, d_v] -> [n_q, d_v]. Differentiable in q, k and v; peak
    extra memory O(block_size x n) in both passes.
    """
    if q.shape[1] != k.shape[1] or k.shape[0] != v.shape[0]:
        raise ValueError(
            f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return _BlockedTanhAttention.apply(q, k, v, block_size)
