"""RCA rows sharded over 2 gloo processes equal one process's RCA: forward and gradients, in
float64, exact and with sampled keys (what `train --distributed` relies on)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cranerec.nn import RecursiveCrossModalAttention, ShardedTanhAttention, gather_rows


def _rca(attention=None, n_keys: int = 0) -> RecursiveCrossModalAttention:
    torch.manual_seed(0)
    rca = RecursiveCrossModalAttention(2, 6, rounds=3, block_size=4, value_scale=0.1,
                                       attention=attention).double()  # fmt: skip
    return rca


def _inputs(n: int = 23) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(n, 6, generator=gen, dtype=torch.float64, requires_grad=True)
            for _ in range(2)]  # fmt: skip


def _loss(outs: list[torch.Tensor]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(2)
    return sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)


def _worker(rank: int, world: int, init: str, n_keys: int, out_rows, result_dir: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        xs = _inputs()
        torch.manual_seed(100 + rank)  # different generators: the key sample must still agree
        rca = _rca(ShardedTanhAttention(block_size=4, n_keys=n_keys))
        rows = None if out_rows is None else torch.tensor(out_rows)
        outs = rca(xs, rows)
        _loss(outs).backward()
        grads = [p.grad for p in rca.parameters()] + [x.grad for x in xs]
        for g in grads:  # what DistributedDataParallel does to every gradient
            dist.all_reduce(g)
            g /= world
        torch.save({"outs": [o.detach() for o in outs], "grads": grads},
                   f"{result_dir}/rank{rank}.pt")  # fmt: skip
    finally:
        dist.destroy_process_group()


def _sharded(tmp_path, world: int, n_keys: int = 0, out_rows=None) -> list[dict]:
    init = f"file://{tmp_path}/pg"
    mp.spawn(_worker, args=(world, init, n_keys, out_rows, str(tmp_path)), nprocs=world)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]


def _single(out_rows=None, attention=None):
    xs = _inputs()
    rca = _rca(attention)
    outs = rca(xs, None if out_rows is None else torch.tensor(out_rows))
    _loss(outs).backward()
    return outs, [p.grad for p in rca.parameters()] + [x.grad for x in xs]


def test_sharded_rca_equals_one_process_forward_and_gradients(tmp_path):
    rows = [3, 7, 11, 12, 20, 22]  # the last round computes only these rows, as CRANE's items
    outs, grads = _single(rows)
    for res in _sharded(tmp_path, world=2, out_rows=rows):
        for got, want in zip(res["outs"], outs, strict=True):
            torch.testing.assert_close(got, want.detach(), rtol=1e-12, atol=1e-12)
        for got, want in zip(res["grads"], grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_sharded_rca_with_three_ranks_and_uneven_rows(tmp_path):
    """23 rows over 3 ranks: chunks of 8, 8 and 7 (the short one padded, then trimmed)."""
    outs, grads = _single()
    for res in _sharded(tmp_path, world=3):
        for got, want in zip(res["outs"], outs, strict=True):
            torch.testing.assert_close(got, want.detach(), rtol=1e-12, atol=1e-12)
        for got, want in zip(res["grads"], grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_sampled_keys_agree_across_ranks(tmp_path):
    """Each rank's generator differs, yet both ranks attend over rank 0's sample: their outputs
    are identical, and far from the exact RCA (so the sample really is partial)."""
    first, second = _sharded(tmp_path, world=2, n_keys=5)
    for a, b in zip(first["outs"], second["outs"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    exact, _ = _single()
    assert (
        max(float((a - e).detach().abs().max()) for a, e in zip(first["outs"], exact, strict=True))
        > 1e-3
    )


def _gather_worker(rank: int, world: int, init: str, result_dir: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        full = torch.arange(10.0).reshape(5, 2)
        start = rank * 3
        local = full[start : start + 3].clone().requires_grad_(True)  # rank 1 holds 2 rows
        gathered = gather_rows(local, 5)
        (gathered * (rank + 1)).sum().backward()
        torch.save({"gathered": gathered.detach(), "grad": local.grad}, f"{result_dir}/g{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gather_rows_sums_the_ranks_gradients(tmp_path):
    mp.spawn(_gather_worker, args=(2, f"file://{tmp_path}/pg", str(tmp_path)), nprocs=2)
    for rank in range(2):
        res = torch.load(tmp_path / f"g{rank}.pt")
        torch.testing.assert_close(res["gathered"], torch.arange(10.0).reshape(5, 2))
        # d/dlocal of sum_r (r + 1) * sum(gathered) = 1 + 2 on every row this rank holds
        assert torch.equal(res["grad"], torch.full_like(res["grad"], 3.0))
