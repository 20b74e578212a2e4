"""Exact attention (``tanh`` or softmax scores) computed in row blocks.

``Y = tanh(Q K^T) V`` for Q [n_q, d], K [n, d], V [n, d_v] never materialises the n_q x n score
matrix: forward and backward walk over row blocks of Q, so the extra memory is
O(block_size x n). The backward pass recomputes each block's scores instead of keeping them
(a custom autograd function), which is what makes CRANE's Recursive Cross-Modal Attention
(C^m = tanh(X^m P^m^T), Eq. 10-11) affordable: its score matrix is (M+N) x (M+N).

Cost: forward 4 n_q n d flops; backward 10 n_q n d (recompute Q K^T, dV, dC, dQ, dK). With a
cache budget (``cache_mb``) the forward keeps as many leading score blocks as fit and the
backward reuses them instead of recomputing: 8 n_q n d for those rows and no tanh, about a
quarter less time when everything fits (``benchmarks/rca_speed.py --cache-mb``); the numbers are
the same either way.

``blocked_softmax_attention(q, k, v)`` = softmax(s Q K^T) V (row softmax, s = 1/sqrt(d) by
default) in the same scheme: the forward keeps each row's log-sum-exp, the backward recomputes
each block's probabilities from it (CAmgr's cross-attention over all users and items, Eq. 18).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


def _block_rows(n: int, block_size: int) -> range:
    return range(0, n, block_size)


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    """``tanh`` in place, as ``2 sigmoid(2x) - 1``: the same function (absolute error < 2e-7 in
    float32), about 6x faster than ``torch.tanh_`` on the x86 CPUs we measured (torch's CPU
    tanh is not vectorised there; ``benchmarks/rca_speed.py`` prints both). On the score blocks of
    RCA, tanh was a quarter of CRANE's training time."""
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


class _BlockedTanhAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int,
                cache_mb: float):  # fmt: skip
        out = q.new_empty(q.shape[0], v.shape[1])
        # score blocks kept for the backward (only when one will run), within the budget
        room = int(cache_mb * 2**20) if any(ctx.needs_input_grad[:3]) else 0
        cached = []
        for start in _block_rows(q.shape[0], block_size):
            stop = min(start + block_size, q.shape[0])
            scores = _tanh_(q[start:stop] @ k.T)  # [b, n]
            torch.mm(scores, v, out=out[start:stop])  # [b, d_v]
            if room >= scores.numel() * scores.element_size():  # leading blocks only
                room -= scores.numel() * scores.element_size()
                cached.append(scores)
            else:
                room = 0
        ctx.save_for_backward(q, k, v)
        ctx.block_size, ctx.cached = block_size, cached
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        q, k, v = ctx.saved_tensors
        cached, ctx.cached = ctx.cached, []  # used up below (squared in place)
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        grad_q = torch.zeros_like(q) if need_q else None
        grad_k = torch.zeros_like(k) if need_k else None
        grad_v = torch.zeros_like(v) if need_v else None
        for i, start in enumerate(_block_rows(q.shape[0], ctx.block_size)):
            stop = min(start + ctx.block_size, q.shape[0])
            q_b, g_b = q[start:stop], grad_out[start:stop]
            scores = cached[i] if i < len(cached) else _tanh_(q_b @ k.T)  # [b, n]
            if i < len(cached):
                cached[i] = None  # freed as soon as used
            if need_v:
                grad_v.addmm_(scores.T, g_b)  # dV += C_b^T dY_b
            if need_q or need_k:
                grad_s = g_b @ v.T  # [b, n]: dC
                grad_s.addcmul_(grad_s, scores.square_(), value=-1.0)  # dC * (1 - C_b^2)
                if need_q:
                    grad_q[start:stop] = grad_s @ k
                if need_k:
                    grad_k.addmm_(grad_s.T, q_b)
        return grad_q, grad_k, grad_v, None, None


def blocked_tanh_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int = 128, cache_mb: float = 0
) -> torch.Tensor:
    """``tanh(q @ k.T) @ v`` computed exactly in row blocks of ``q``.

    Shapes: q [n_q, d], k [n, d], v [n, d_v] -> [n_q, d_v]. Differentiable once in q, k and v;
    peak extra memory O(block_size x n) in both passes, plus up to ``cache_mb`` MiB of score
    blocks kept from the forward for the backward (when a backward will run).
    """
    if q.shape[1] != k.shape[1] or k.shape[0] != v.shape[0]:
        raise ValueError(
            f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if block_size < 1 or cache_mb < 0:
        raise ValueError(f"block_size must be >= 1 and cache_mb >= 0, got {block_size}, {cache_mb}")
    return _BlockedTanhAttention.apply(q, k, v, block_size, cache_mb)


def sampled_tanh_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    n_keys: int,
    block_size: int = 128,
    cache_mb: float = 0,
) -> torch.Tensor:
    """An unbiased estimate of ``tanh(q @ k.T) @ v`` from ``n_keys`` keys drawn uniformly
    without replacement (torch's generator), scaled by n / n_keys:

        Y_hat = (n / S) sum_{j in S} tanh(q k_j^T) v_j,   E[Y_hat] = sum_j tanh(q k_j^T) v_j

    The sum runs over every key, so a uniform sample estimates it without bias; with
    ``n_keys >= n`` this is the exact kernel. Cost O(n_q S d) instead of O(n_q n d). Standard
    error of an entry: n sqrt((n - S) / (S (n - 1))) sigma, sigma the spread over the keys of
    tanh(q k_j^T) v_j for that entry: relative to the entry, sqrt((n - S) / (S (n - 1))) times
    the coefficient of variation of the terms. One sample per call (per modality and round in
    RCA); differentiable like the exact kernel (the gradient of the estimate); ``cache_mb`` as
    there.
    Shapes: q [n_q, d], k [n, d], v [n, d_v] -> [n_q, d_v]."""
    n = k.shape[0]
    if n_keys < 1:
        raise ValueError(f"n_keys must be >= 1, got {n_keys}")
    if n_keys >= n:
        return blocked_tanh_attention(q, k, v, block_size, cache_mb)
    keys = torch.randperm(n, device=k.device)[:n_keys]  # [S]
    return blocked_tanh_attention(q, k[keys], v[keys], block_size, cache_mb) * (n / n_keys)


class _BlockedSoftmaxAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, block_size: int
    ):
        n_q = q.shape[0]
        out = q.new_empty(n_q, v.shape[1])
        lse = q.new_empty(n_q)  # log-sum-exp of each row's scores, kept for the backward
        for start in _block_rows(n_q, block_size):
            stop = min(start + block_size, n_q)
            scores = torch.mm(q[start:stop], k.T).mul_(scale)  # [b, n]
            top = scores.amax(dim=1, keepdim=True)  # [b, 1]
            weights = scores.sub_(top).exp_()  # [b, n], in place: unnormalised softmax
            total = weights.sum(dim=1, keepdim=True)  # [b, 1]
            torch.mm(weights, v, out=out[start:stop])
            out[start:stop].div_(total)  # [b, d_v]
            lse[start:stop] = (top + total.log()).squeeze(1)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale, ctx.block_size = scale, block_size
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        q, k, v, out, lse = ctx.saved_tensors
        scale = ctx.scale
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        grad_q = torch.zeros_like(q) if need_q else None
        grad_k = torch.zeros_like(k) if need_k else None
        grad_v = torch.zeros_like(v) if need_v else None
        # softmax backward: dS = P * (dY V^T - rowsum(dY * Y)), the row sum taken once here
        delta = (grad_out * out).sum(dim=1, keepdim=True)  # [n_q, 1]
        for start in _block_rows(q.shape[0], ctx.block_size):
            stop = min(start + ctx.block_size, q.shape[0])
            q_b, g_b = q[start:stop], grad_out[start:stop]
            probs = torch.mm(q_b, k.T).mul_(scale).sub_(lse[start:stop, None]).exp_()  # [b, n]
            if need_v:
                grad_v.addmm_(probs.T, g_b)  # dV += P_b^T dY_b
            if need_q or need_k:
                grad_s = torch.mm(g_b, v.T).sub_(delta[start:stop]).mul_(probs).mul_(scale)
                if need_q:
                    grad_q[start:stop] = grad_s @ k
                if need_k:
                    grad_k.addmm_(grad_s.T, q_b)
        return grad_q, grad_k, grad_v, None, None


def blocked_softmax_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float | None = None,
    block_size: int = 256,
) -> torch.Tensor:
    """``softmax(scale * q @ k.T) @ v`` (softmax over each row) computed exactly in row blocks.

    ``scale`` defaults to 1/sqrt(d) (scaled dot-product attention). Shapes: q [n_q, d],
    k [n, d], v [n, d_v] -> [n_q, d_v]. Differentiable once in q, k and v; the forward keeps
    only each row's log-sum-exp (O(n_q)) and the backward recomputes each block's
    probabilities, so the extra memory is O(block_size x n) in both passes.
    Cost: forward 4 n_q n d flops; backward 10 n_q n d.
    """
    if q.shape[1] != k.shape[1] or k.shape[0] != v.shape[0]:
        raise ValueError(
            f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if k.shape[0] < 1:
        raise ValueError("softmax attention needs at least one key")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    scale = q.shape[1] ** -0.5 if scale is None else float(scale)
    return _BlockedSoftmaxAttention.apply(q, k, v, scale, block_size)


def sdpa_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """``softmax(scale * q @ k.T) @ v`` through ``torch.nn.functional.scaled_dot_product_attention``.

    The inputs are passed as 4-D [1, 1, n, d] tensors: for those torch's CPU dispatcher picks its
    fused flash kernel (exact, memory O(n d) in both passes, about twice as fast as
    ``blocked_softmax_attention``; measured in docs/camgr.md), whereas 3-D inputs take the dense
    math path (memory O(n_q n)). On CUDA it uses a fused kernel for fp32/fp16/bf16.
    Shapes and ``scale`` as ``blocked_softmax_attention``.
    """
    if q.shape[1] != k.shape[1] or k.shape[0] != v.shape[0]:
        raise ValueError(
            f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if k.shape[0] < 1:
        raise ValueError("softmax attention needs at least one key")
    scale = q.shape[1] ** -0.5 if scale is None else float(scale)
    out = torch.nn.functional.scaled_dot_product_attention(
        q[None, None], k[None, None], v[None, None], scale=scale
    )  # [1, 1, n_q, d_v]
    return out[0, 0]
