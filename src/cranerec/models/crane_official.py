"""``crane_official``: what the CRANE authors' public code computes (MKC-Lab/CRANE,
``src/models/crane.py``), which is not the paper's model (that is ``crane``).

Why it exists: the published code and the paper differ, and users comparing results against
either need both side by side on the same data, splits and evaluator. This model reproduces the
code's behaviour (written from a reading of it, not copied) and is no recommendation.

What the code computes (FREEDOM's graphs, reused from ``cranerec.models.freedom``):
    frozen item graph S and pruned user-item graph: exactly FREEDOM's (same building blocks,
    same settings: ``knn_k``, ``mm_image_weight``, ``dropout``, ``n_ui_layers``, ``n_mm_layers``)
    P^m   = W_m x^m + b_m                   (per-modality projection of the raw features, which
                                              are fine-tuned as in the code: ``tune_features``)
    Q^m   = V_m P^m + c_m                   (a second per-modality linear layer, d -> d)
    T     = stack(Q^1, ..., Q^K, dim=1)     [n_items, K, d]
    O     = MultiheadAttention(d, num_heads)(T, T, T) with the default ``batch_first=False``:
            PyTorch reads T as (sequence = items, batch = modalities, d), so each modality does
            self-attention ACROSS ALL ITEMS (an n_items x n_items attention per head) and the
            modalities never meet inside the attention                          [n_items, K, d]
    f     = mean over modalities of O        [n_items, d]
    h     = S^{n_mm_layers} f                (the fused features, not the item ID table, go
                                              through the item graph)
    user  = E_u (LightGCN, no multimodal part);  item = E_i + h;  score = user . item
Cold-start items (serving): FREEDOM's rule with h^(0) = f (``FrozenGraphModel.
items_from_features``): the new item's f from its features over the trained items' attention
keys and values, then its own row in S.
Loss: BPR only (no modality terms, no contrastive term, no L2; the code's ``reg_weight`` is
read but unused, so it is not a setting here).
Unlike the paper there is no recursion, no user profiles, no contrastive loss and no item graph
built from refined features. Cost: the attention is recomputed at every training step and is
O(n_items^2 d) per modality.

Deviations:
- the code applies the attention only when exactly an image and a text modality exist (with
  one it falls back to FREEDOM without modality terms); here the attention runs over whatever
  K >= 1 modalities the dataset has, in the dataset's modality order;
- the attention is called with ``need_weights=False`` (the code keeps the default ``True`` and
  discards the weights): the same output, through PyTorch's fused kernel, without an
  [heads, n_items, n_items] weight tensor kept for the backward pass;
- FREEDOM's determinism details (tie-breaking, sampling stream, no 1e-7 in the degrees).

Presets: ``reference`` is FREEDOM's (and the code's) configuration point with MMRec's training
settings; ``reference_10ep`` is the same for 10 epochs without early stopping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cranerec.config import ConfigError
from cranerec.data.dataset import Dataset
from cranerec.models.base import Batch
from cranerec.models.frozen_graph import FREEDOM_POINT, FrozenGraphConfig, FrozenGraphModel
from cranerec.models.presets import MMREC_TRAIN
from cranerec.models.registry import register
from cranerec.nn.losses import bpr_loss


@dataclass(frozen=True)
class CRANEOfficialConfig(FrozenGraphConfig):
    """FREEDOM's graph settings plus ``num_heads`` of the attention (4 in the code)."""

    num_heads: int = 4

    def validate(self) -> None:
        super().validate()
        if self.num_heads < 1 or self.embedding_dim % self.num_heads:
            raise ConfigError(
                f"num_heads={self.num_heads} must be >= 1 and divide embedding_dim={self.embedding_dim}"
            )


@register
class CRANEOfficial(FrozenGraphModel):
    """The CRANE authors' published code: FREEDOM plus attention across items, per modality."""

    name = "crane_official"
    Config = CRANEOfficialConfig
    presets = {
        "reference": {"model": {**FREEDOM_POINT, "num_heads": 4}, "train": {**MMREC_TRAIN}},
        "reference_10ep": {
            "model": {**FREEDOM_POINT, "num_heads": 4},
            "train": {**MMREC_TRAIN, "epochs": 10, "patience": 10},  # patience >= epochs
        },
    }

    def __init__(self, dataset: Dataset, config: CRANEOfficialConfig) -> None:
        super().__init__(dataset, config)
        d = config.embedding_dim
        self.attn_project = nn.ModuleDict({m: nn.Linear(d, d) for m in self.modalities})
        self.attention = nn.MultiheadAttention(d, config.num_heads)  # batch_first=False

    def stacked(self, features: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """T = stack_m Q^m of the trained items ([n_items, K, d]), or of the items with
        ``features`` ({m: [n, width_m]}, cold-start items: [n, K, d])."""
        return torch.stack(
            [
                self.attn_project[m](
                    self.projected(m) if features is None else self.project[m](features[m])
                )
                for m in self.modalities
            ],
            dim=1,
        )

    def attention_outputs(self) -> torch.Tensor:
        """O: the attention's output per item and modality, [n_items, K, d]."""
        stacked = self.stacked()  # [N, K, d], read by the attention as (sequence N, batch K, d)
        out, _ = self.attention(stacked, stacked, stacked, need_weights=False)  # [N, K, d]
        return out

    def item_graph_input(self) -> torch.Tensor:
        return self.attention_outputs().mean(dim=1)  # [N, d]

    def new_item_graph_input(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """f of cold-start items (the serving hook's h^(0), see ``items_from_features``): their
        T rows, from the features given, query the attention over the TRAINED items' keys and
        values (a new item is not added to the sequence, so no trained output changes; a copy of
        a trained item with its features as trained gets exactly that item's f); mean over
        modalities. [n_new, d]."""
        device = self.item_emb.device
        new = self.stacked({m: x.to(device, torch.float32) for m, x in features.items()})
        trained = self.stacked()  # [N, K, d]
        out, _ = self.attention(new, trained, trained, need_weights=False)  # [n_new, K, d]
        return out.mean(dim=1)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        user_out, item_out = self.forward()
        u = user_out[batch.user_idx]
        rank = bpr_loss(
            (u * item_out[batch.pos_idx]).sum(-1), (u * item_out[batch.neg_idx]).sum(-1)
        )
        return rank, {"bpr": rank.detach()}
