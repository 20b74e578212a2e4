"""Exact softmax attention: the blocked kernel and the SDPA wrapper equal the dense formula,
forward and backward (gradcheck in float64), for any block size and n_q != n."""

import pytest
import torch

from cranerec.nn import blocked_softmax_attention, sdpa_attention

KERNELS = {
    "blocked": lambda q, k, v, scale=None: blocked_softmax_attention(q, k, v, scale, block_size=3),
    "sdpa": sdpa_attention,
}


def dense(q, k, v, scale=None):
    scale = q.shape[1] ** -0.5 if scale is None else scale
    return torch.softmax(scale * q @ k.T, dim=1) @ v


def _inputs(n_q=7, n=9, d=3, d_v=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    return make(n_q, d), make(n, d), make(n, d_v)


@pytest.mark.parametrize("block_size", [1, 2, 3, 7, 100])
@pytest.mark.parametrize("scale", [None, 0.3, 2.0])
def test_blocked_forward_equals_dense(block_size, scale):
    q, k, v = _inputs()
    got = blocked_softmax_attention(q, k, v, scale, block_size)
    torch.testing.assert_close(got, dense(q, k, v, scale))


@pytest.mark.parametrize("scale", [None, 0.3])
def test_sdpa_forward_equals_dense(scale):
    q, k, v = _inputs()
    torch.testing.assert_close(sdpa_attention(q, k, v, scale), dense(q, k, v, scale))


def test_float32_and_large_scores_stay_exact():
    q, k, v = (t.detach().float() for t in _inputs())
    for kernel in KERNELS.values():  # scores up to ~100: exp would overflow without the max
        torch.testing.assert_close(kernel(q * 10, k * 10, v, 1.0), dense(q * 10, k * 10, v, 1.0))


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_gradcheck(name):
    q, k, v = _inputs(n_q=5, n=6, d=2, d_v=3)
    kernel = KERNELS[name]
    assert torch.autograd.gradcheck(lambda a, b, c: kernel(a, b, c, 0.7), (q, k, v))


@pytest.mark.parametrize("block_size", [1, 3, 100])
def test_blocked_gradients_equal_dense_autograd(block_size):
    q, k, v = _inputs()
    w = torch.randn(7, 4, dtype=torch.float64)
    (blocked_softmax_attention(q, k, v, 0.5, block_size) * w).sum().backward()
    got = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    (dense(q, k, v, 0.5) * w).sum().backward()
    for a, t in zip(got, (q, k, v), strict=True):
        torch.testing.assert_close(a, t.grad)


def test_only_some_inputs_need_gradients():
    q, k, v = _inputs()
    blocked_softmax_attention(q, k.detach(), v, block_size=2).sum().backward()
    assert q.grad is not None and v.grad is not None
    q.grad = None
    blocked_softmax_attention(q, k, v.detach(), block_size=2).sum().backward()
    assert q.grad is not None and k.grad is not None


def test_sdpa_dispatches_to_a_fused_kernel_on_cpu():
    """The wrapper's 4-D inputs get torch's fused (memory O(n d)) kernel, not the dense math
    path (choice 0) that 3-D inputs get; guards the memory claim if torch changes dispatch."""
    choose = getattr(torch, "_fused_sdp_choice", None)
    if choose is None:
        pytest.skip("this torch has no _fused_sdp_choice")
    x = torch.randn(1, 1, 16, 8)
    assert choose(x, x, x) != 0


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_shape_errors_are_clear(name):
    q, k, v = _inputs()
    with pytest.raises(ValueError, match="shape mismatch"):
        KERNELS[name](q, k[:, :2], v)
    with pytest.raises(ValueError, match="at least one key"):
        KERNELS[name](q, k[:0], v[:0])
