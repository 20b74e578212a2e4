"""RCA: the blocked module equals a naive dense implementation of Eq. 7-13 on tiny inputs."""

import pytest
import torch

from cranerec.nn.rca import RecursiveCrossModalAttention


def naive_rca(module, xs, out_rows=None):
    """Eq. 7-13 written out densely with the module's parameters (the n x n C is built)."""
    for r in range(module.rounds):
        p = module.params[min(r, len(module.params) - 1)]
        e = torch.cat(xs, dim=1)
        e_prime = e @ p.transform.weight.T + p.transform.bias
        new = []
        for m, x in enumerate(xs):
            pm = e_prime @ p.project[m].weight.T
            c = torch.tanh(module.score_scale * x @ pm.T)  # [n, n]
            f = torch.relu(module.value_scale * c @ x @ p.value[m].weight.T)
            new.append(f + x @ p.skip[m].weight.T)
        xs = new
    return [x if out_rows is None else x[out_rows] for x in xs]


def _inputs(n=9, w=4, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, w, generator=g, dtype=torch.float64) for _ in range(k)]


@pytest.mark.parametrize("rounds", [1, 2, 3])
@pytest.mark.parametrize("block_size", [1, 4, 100])
@pytest.mark.parametrize("share", [True, False])
def test_blocked_rca_equals_naive(rounds, block_size, share):
    torch.manual_seed(0)
    rca = RecursiveCrossModalAttention(
        2,
        4,
        rounds=rounds,
        block_size=block_size,
        share_weights=share,
        score_scale=0.5,
        value_scale=0.2,
    ).double()
    xs = _inputs()
    for got, want in zip(rca(xs), naive_rca(rca, xs), strict=True):
        torch.testing.assert_close(got, want)


def test_last_round_computes_only_requested_rows():
    torch.manual_seed(0)
    rca = RecursiveCrossModalAttention(3, 4, rounds=2, block_size=2).double()
    xs = _inputs(k=3)
    rows = torch.tensor([5, 6, 7, 8])
    for got, want in zip(rca(xs, rows), naive_rca(rca, xs, rows), strict=True):
        assert got.shape == (4, 4)
        torch.testing.assert_close(got, want)


def test_gradcheck_through_rca_parameters_and_inputs():
    torch.manual_seed(0)
    rca = RecursiveCrossModalAttention(2, 2, rounds=2, block_size=2, score_scale=0.3).double()
    xs = [x.requires_grad_() for x in _inputs(n=4, w=2)]
    assert torch.autograd.gradcheck(lambda a, b: torch.cat(rca([a, b]), 1), tuple(xs))
    loss = sum(x.sum() for x in rca(xs))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in rca.parameters())
