"""The blocked tanh attention equals the dense formula, forward and backward."""

import pytest
import torch

from cranerec.nn import blocked_tanh_attention


def _inputs(n_q=7, n=9, d=3, d_v=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    return make(n_q, d), make(n, d), make(n, d_v)


@pytest.mark.parametrize("block_size", [1, 2, 3, 7, 100])
def test_forward_equals_dense(block_size):
    q, k, v = _inputs()
    dense = torch.tanh(q @ k.T) @ v
    torch.testing.assert_close(blocked_tanh_attention(q, k, v, block_size), dense)


@pytest.mark.parametrize("block_size", [1, 3, 100])
def test_gradcheck(block_size):
    q, k, v = _inputs(n_q=5, n=6, d=2, d_v=3)
    assert torch.autograd.gradcheck(
        lambda a, b, c: blocked_tanh_attention(a, b, c, block_size), (q, k, v)
    )


def _assert_dense_gradients(cache_mb: float = 0) -> None:
    q, k, v = _inputs()
    w = torch.randn(7, 4, dtype=torch.float64)
    (blocked_tanh_attention(q, k, v, 2, cache_mb=cache_mb) * w).sum().backward()
    got = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    ((torch.tanh(q @ k.T) @ v) * w).sum().backward()
    for a, t in zip(got, (q, k, v), strict=True):
        torch.testing.assert_close(a, t.grad)


def test_gradients_equal_dense_autograd():
    _assert_dense_gradients()


# budgets in MiB: nothing; two of the four [2, 9] float64 score blocks (144 bytes each), with
# room left for the short last block (72 bytes), which must not be kept out of order; all
@pytest.mark.parametrize("cache_mb", [0, 400 / 2**20, 1.0])
def test_cached_scores_give_the_dense_gradients(cache_mb):
    """Score blocks kept from the forward (within the budget) replace the backward's
    recomputation without changing a number, also when only some blocks fit."""
    _assert_dense_gradients(cache_mb)
    assert torch.autograd.gradcheck(
        lambda a, b, c: blocked_tanh_attention(a, b, c, 3, cache_mb=cache_mb), _inputs(5, 6, 2, 3)
    )


def test_a_cached_graph_backpropagates_twice():
    """retain_graph: the cache is used up by the first backward, the second recomputes."""
    q, k, v = _inputs()
    out = blocked_tanh_attention(q, k, v, 2, cache_mb=1.0).sum()
    out.backward(retain_graph=True)
    first = q.grad.clone()
    q.grad = None
    out.backward()
    torch.testing.assert_close(q.grad, first)


def test_only_some_inputs_need_gradients():
    q, k, v = _inputs()
    k_const = k.detach()
    blocked_tanh_attention(q, k_const, v, 3).sum().backward()
    assert q.grad is not None and v.grad is not None


def test_shape_errors_are_clear():
    q, k, v = _inputs()
    with pytest.raises(ValueError, match="shape mismatch"):
        blocked_tanh_attention(q, k[:, :2], v)


def test_sampled_attention_is_exact_with_every_key_and_unbiased_with_fewer():
    from cranerec.nn.attention import blocked_tanh_attention, sampled_tanh_attention

    torch.manual_seed(0)
    q, k, v = (
        torch.randn(5, 3, dtype=torch.float64),
        torch.randn(40, 3, dtype=torch.float64),
        (torch.randn(40, 2, dtype=torch.float64)),
    )
    exact = blocked_tanh_attention(q, k, v, 8)
    torch.testing.assert_close(sampled_tanh_attention(q, k, v, 40, 8), exact)
    torch.testing.assert_close(sampled_tanh_attention(q, k, v, 99, 8), exact)
    draws = torch.stack([sampled_tanh_attention(q, k, v, 10, 8) for _ in range(4000)])
    terms = torch.tanh(q @ k.T)[:, :, None] * v[None]  # [n_q, n, d_v]: the summed terms
    n, s = 40, 10
    se = n * ((n - s) / (s * (n - 1))) ** 0.5 * terms.std(dim=1, unbiased=False) / 4000**0.5
    assert ((draws.mean(0) - exact).abs() <= 4 * se + 1e-12).all()  # unbiased (4 standard errors)
    assert not torch.allclose(draws[0], exact)  # and an estimate, not the exact value


def test_sampled_attention_passes_gradients_to_the_sampled_keys_only():
    from cranerec.nn.attention import sampled_tanh_attention

    torch.manual_seed(1)
    q = torch.randn(4, 3, requires_grad=True)
    k = torch.randn(30, 3, requires_grad=True)
    v = torch.randn(30, 2, requires_grad=True)
    sampled_tanh_attention(q, k, v, 7).sum().backward()
    assert q.grad.abs().sum() > 0
    assert int((v.grad.abs().sum(1) > 0).sum()) == 7
