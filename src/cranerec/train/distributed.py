"""Training over several processes with ``torch.distributed`` (``cranerec train --distributed``
under ``torchrun``; gloo on CPUs, NCCL on GPUs: the same code).

Every rank holds the whole model, draws the same global batch from the same sampler state and
trains on its contiguous slice of it; DistributedDataParallel averages the gradients, and each
rank's loss is weighted by W n_r / n (n_r of the batch's n rows), so the step is the one a
single process takes on the whole batch whenever the loss is a mean over the batch's rows
(BPR, L2 on the batch's rows). A term over the whole batch, such as an in-batch contrastive
loss, sees each rank's slice instead. Models split their own heavy row-independent work over
the ranks in ``Model.distribute`` (CRANE: RCA's rows, ``nn.sharded``) on a process group of
their own, so that its collectives never interleave with the gradient all-reduce.

Rank 0 alone validates (and broadcasts the result, so that every rank stops at the same
epoch), writes the checkpoint (atomically), ``metrics.jsonl`` and the run's outputs. A
checkpoint holds nothing rank-specific: a run resumes on any number of ranks, or on one
process without ``--distributed``.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from cranerec.config import ConfigError
from cranerec.models.base import Batch, Model

LAUNCH = "torchrun --nproc-per-node N -m cranerec.cli train --distributed ..."


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ``world`` ranks; ``group``: the models' own process group."""

    rank: int
    world: int
    group: Any

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a picklable value)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place."""
        dist.all_reduce(tensor)
        return tensor


def current_ranks() -> Ranks:
    """The ranks of the already initialised default process group (and a group for models)."""
    if not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised")
    return Ranks(dist.get_rank(), dist.get_world_size(), dist.new_group(backend=dist.get_backend()))


def init_from_env(device: str) -> tuple[Ranks, str]:
    """Join the process group ``torchrun`` describes in RANK / WORLD_SIZE / MASTER_ADDR; gloo on
    CPUs, NCCL on GPUs. Returns the ranks and this rank's device (``cuda:LOCAL_RANK`` for
    ``cuda``)."""
    missing = [
        v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ
    ]
    if missing:
        raise ConfigError(
            f"--distributed runs under torchrun ({', '.join(missing)} not set): launch it as "
            f"`{LAUNCH}`"
        )
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", 0))
        if not torch.cuda.is_available() or local >= torch.cuda.device_count():
            raise ConfigError(
                f"--distributed with --device cuda: rank {os.environ['RANK']} needs GPU {local}, "
                f"and this machine has {torch.cuda.device_count() if torch.cuda.is_available() else 0}"
            )
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return current_ranks(), device


def close() -> None:
    """Destroy the process groups, after collecting what still holds them (a DDP reducer, a
    model's RCA group in a reference cycle), so that no gloo object outlives its group into
    interpreter exit."""
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def batch_slice(batch: Batch, ranks: Ranks) -> tuple[Batch, float]:
    """This rank's contiguous slice of the global ``batch`` and its loss weight W n_r / n.
    A rank left without rows (a last batch smaller than W) trains on the first row at weight
    0, so that it still takes part in the gradient all-reduce."""
    n = len(batch.user_idx)
    chunk = -(-n // ranks.world)
    start = min(ranks.rank * chunk, n)
    stop = min(start + chunk, n)
    weight = ranks.world * (stop - start) / n
    if stop == start:
        start, stop = 0, 1

    def cut(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[start:stop]

    return Batch(cut(batch.user_idx), cut(batch.pos_idx), cut(batch.neg_idx)), weight


class _Loss(nn.Module):
    """The model's loss as a module's forward, which is what DistributedDataParallel wraps."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch):
        return self.model.loss(batch)


def data_parallel(model: Model, ranks: Ranks, device: torch.device) -> nn.Module:
    """``model.loss`` wrapped in DistributedDataParallel: call it with a batch slice; after
    ``backward`` every gradient is the mean over the ranks. Parameters a step does not use (e.g.
    RCA's between item-graph rebuilds) are found and left without a gradient, as in one process.
    Buffers are not broadcast: every rank derives them from the same data and weights."""
    model.distribute(ranks.group)
    return nn.parallel.DistributedDataParallel(
        _Loss(model),
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True,
        broadcast_buffers=False,
    )
