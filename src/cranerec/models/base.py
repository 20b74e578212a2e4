"""The model contract every recommender follows, and the registry of models by name.

A model:
- is built from the ``Dataset`` and its own typed config dataclass (``Config``);
- computes full user and item representations in ``forward()``;
- owns its loss: ``loss(batch) -> (total, {name: detached tensor})``;
- declares the batches it needs (``batch_kind``): ``"triples"`` (user, positive, negative; BPR),
  ``"positives"`` (user, positive; models without negatives such as BM3), or ``"none"`` (not
  trained, e.g. popularity);
- may do per-epoch work in ``pre_epoch`` (edge sampling, rebuilding an item graph);
- exports embeddings whose inner products are its scores (``export_embeddings``), which is
  how the evaluator, serving and vector search see every model, including models trained as
  two branches and fused at inference (they concatenate the branches' vectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from cranerec.data.dataset import Dataset

BatchKind = Literal["triples", "positives", "none"]


@dataclass
class Batch:
    """One training batch of index tensors (``neg_idx`` is None for ``positives`` batches)."""

    user_idx: torch.Tensor  # [B]
    pos_idx: torch.Tensor  # [B]
    neg_idx: torch.Tensor | None = None  # [B]


class Recommender(nn.Module):
    """Base class of every model (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type]
    batch_kind: ClassVar[BatchKind] = "triples"
    #: Named presets: partial run configs (``{"train": {...}, "model": {...}}``).
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Minimum number of feature modalities the model needs.
    min_modalities: ClassVar[int] = 0

    def __init__(self, dataset: Dataset, config: Any) -> None:
        super().__init__()
        if len(dataset.features) < self.min_modalities:
            raise ValueError(
                f"model {self.name!r} needs at least {self.min_modalities} feature modalit"
                f"{'y' if self.min_modalities == 1 else 'ies'}; dataset {dataset.name!r} has "
                f"{len(dataset.features)} ({', '.join(dataset.modalities) or 'none'})"
            )
        self.n_users = dataset.n_users
        self.n_items = dataset.n_items
        self.config = config

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Full representations ``(user_emb [n_users, d], item_emb [n_items, d])``."""
        raise NotImplementedError

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training loss of one batch: ``(total, {part name: detached 0-d tensor})``.
        Parts stay tensors so that the loop never waits on the device inside an epoch."""
        raise NotImplementedError

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:  # noqa: B027
        """Per-epoch work before the epoch's batches (default: nothing)."""

    @torch.no_grad()
    def export_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference embeddings whose inner products are the model's scores."""
        was_training = self.training
        self.eval()
        try:
            user_emb, item_emb = self.forward()
        finally:
            self.train(was_training)
        return user_emb.detach(), item_emb.detach()


MODELS: dict[str, type[Recommender]] = {}


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: make a model available by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no registry name")
    if cls.name in MODELS and MODELS[cls.name] is not cls:
        raise ValueError(
            f"model name {cls.name!r} is already registered by {MODELS[cls.name].__name__}"
        )
    MODELS[cls.name] = cls
    return cls


def get_model_class(name: str) -> type[Recommender]:
    """The model class registered as ``name``; a clear error listing the valid names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))}"
        ) from None


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Mean BPR loss: -log sigmoid(s_pos - s_neg), computed stably with softplus."""
    return nn.functional.softplus(neg_scores - pos_scores).mean()


def l2_batch(*embeddings: torch.Tensor) -> torch.Tensor:
    """L2 on a batch's embeddings: 0.5 * sum of squared entries / batch size (the LightGCN
    paper's form), so the weight keeps its meaning across batch sizes."""
    return 0.5 * sum(e.pow(2).sum() for e in embeddings) / embeddings[0].shape[0]


def frobenius_reg(*embeddings: torch.Tensor) -> torch.Tensor:
    """MMRec's ``EmbLoss``: the sum of the tensors' Frobenius norms (not squared) divided by the
    number of rows of the LAST tensor (the batch size when all are batch rows)."""
    return sum(torch.linalg.matrix_norm(e) for e in embeddings) / embeddings[-1].shape[0]


def xavier_embedding(n: int, dim: int) -> nn.Parameter:
    """An [n, dim] embedding table with Xavier-uniform initialisation."""
    return nn.Parameter(nn.init.xavier_uniform_(torch.empty(n, dim)))
