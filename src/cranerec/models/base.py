"""The model contract every recommender follows, and the registry of models by name.

A model:
- is built from the ``Dataset`` and its own typed config dataclass (``Config``);
- computes full user and item representations in ``forward()``;
- owns its loss: ``loss(batch) -> (total, {name: detached tensor})``;
- declares the batches it needs (``batch_kind``): ``"triples"`` (user, positive, negative; BPR),
  ``"positives"`` (user, positive; models without negatives such as BM3), or ``"none"`` (not
  trained, e.g. popularity);
- may do per-epoch work in ``pre_epoch`` (edge sampling, rebuilding an item graph);
- may split its own heavy work over the ranks of a ``torch.distributed`` group in
  ``distribute`` (CRANE shards its RCA rows); the trainer averages every gradient across ranks;
- exports embeddings whose inner products are its scores (``export_embeddings``), which is
  how the evaluator, serving and vector search see every model, including models trained as
  two branches and fused at inference (they concatenate the branches' vectors).

Serving hooks (``cranerec.serve``):
- ``user_from_items`` (classmethod): a new user's vector from the exported vectors of the items
  they hold; default the normalised sum (mean) of those vectors, overridden where a model
  documents another rule;
- ``items_from_features``: exported vectors for cold-start items known only by their modality
  features; only models with a content path implement it (``has_content_path()``).
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


class Model(nn.Module):
    """Base class of every model (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type]
    batch_kind: ClassVar[BatchKind] = "triples"
    #: Named presets: partial run configs (``{"train": {...}, "model": {...}}``).
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Minimum number of feature modalities the model needs.
    min_modalities: ClassVar[int] = 0
    #: Printed by ``cranerec train`` when the model trains at its defaults (no preset, no config).
    defaults_note: ClassVar[str] = ""

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

    def distribute(self, group: Any) -> None:  # noqa: B027
        """Training runs on the ranks of ``group`` (``train --distributed``), each with the same
        weights and a slice of every batch: split work whose rows are independent over them
        (default: nothing; everything else is replicated and its gradients averaged)."""

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

    # ---------------------------------------------------------------- serving hooks

    @classmethod
    def user_from_items(cls, item_emb: torch.Tensor, config: Any = None) -> torch.Tensor:
        """A new user's vector from the exported vectors of the items they hold, without
        retraining: ``[n, d] -> [d]``, to be scored against ``export_embeddings()``'s items.

        Default: the normalised sum of the item vectors (their mean; the normalisation only
        scales the scores, never the ranking). A model whose user representation is another
        function of its items overrides this and documents its rule. ``config`` is the model's
        ``Config`` (unused by the default)."""
        if item_emb.ndim != 2 or item_emb.shape[0] == 0:
            raise ValueError(
                f"need a non-empty [n, d] matrix of item vectors, got {tuple(item_emb.shape)}"
            )
        return item_emb.sum(dim=0) / item_emb.shape[0]

    def items_from_features(
        self, features: dict[str, torch.Tensor], dataset: Dataset
    ) -> torch.Tensor:
        """Cold-start items: vectors ``[n_new, d]`` in the space of ``export_embeddings()``'s
        items for items known only by their features (``{modality: [n_new, width]}``, every
        modality of ``dataset``, validated by the caller). ``dataset`` is the data the model was
        built from (the trained items' features). Called on a trained model in ``eval()`` mode;
        must not change any existing score. Models without a content path keep this default."""
        raise NotImplementedError(
            f"model {self.name!r} has no content path: it cannot represent an item from its "
            "features alone (cold-start items need a content model such as crane, freedom or vbpr)"
        )

    @classmethod
    def has_content_path(cls) -> bool:
        """Whether the model implements ``items_from_features`` (cold-start items)."""
        return cls.items_from_features is not Model.items_from_features


def image_first(modalities, image_modality: str) -> list[str]:
    """The modalities with ``image_modality`` first (the MMRec references' v_feat slot, which
    gets their image weight), the others in the order given."""
    return sorted(modalities, key=lambda m: m != image_modality)


def feature_projections(
    features: dict[str, np.ndarray], modalities: list[str], width: int, bias: bool = True
) -> nn.ModuleDict:
    """One ``nn.Linear(width_m, width)`` per modality, from the feature table's width (PyTorch's
    default initialisation; created in ``modalities`` order)."""
    return nn.ModuleDict({m: nn.Linear(features[m].shape[1], width, bias=bias) for m in modalities})


def rename_old_keys(model: nn.Module, renames: dict[str, str]) -> None:
    """Load state dicts (checkpoints, ``model.pt``) written under older parameter names: every
    key starting with an ``old`` prefix of ``renames`` is read as its ``new`` prefix."""

    def hook(module, state_dict, prefix, *args) -> None:
        for old, new in renames.items():
            for key in [k for k in state_dict if k.startswith(prefix + old)]:
                state_dict[prefix + new + key[len(prefix + old) :]] = state_dict.pop(key)

    model._register_load_state_dict_pre_hook(hook, with_module=True)


def xavier_embedding(n: int, dim: int) -> nn.Parameter:
    """An [n, dim] embedding table with Xavier-uniform initialisation."""
    return nn.Parameter(nn.init.xavier_uniform_(torch.empty(n, dim)))
