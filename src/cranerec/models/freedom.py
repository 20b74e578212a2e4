"""FREEDOM (Zhou & Shen, ACM MM 2023): a frozen multimodal item graph and a pruned user-item graph.

"A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal Recommendation".
The behaviour reproduced is the authors' reference implementation (MMRec, ``models/freedom.py``,
``configs/model/FREEDOM.yaml``); this file is written from that description, not copied.

Reference name -> setting: ``embedding_size`` / ``feat_embed_dim`` -> ``embedding_dim`` (they
must be equal: the modality terms score user vectors against projected features);
``knn_k``, ``mm_image_weight``, ``dropout``, ``reg_weight``, ``n_mm_layers``, ``n_ui_layers``
keep their names. ``lambda_coeff``, ``cf_model``, ``degree_ratio`` and ``weight_size`` are read
by the reference but never used, so they are not settings here.

Item graph (built once in the constructor from the raw features, then frozen):
    A^m[i, j] = 1 if j is among the top-``knn_k`` cosine neighbours of item i in modality m;
                the item competes for its own list (cosine 1), so it is normally one of the k
    S^m = D_m^{-1/2} A^m D_m^{-1/2}, D_m = diag(row sums of A^m) = k I, hence S^m = A^m / k
    S   = sum_m w_m S^m  (``mixed_knn_adjacency``), with modality weights w:
          one modality: w = (1); K >= 2: w_1 = ``mm_image_weight`` for the modality named
          ``image_modality`` ("image", the reference's v_feat; the first modality of the
          dataset when there is none), the other K - 1 share 1 - ``mm_image_weight`` equally.
          With image and text this is the reference's 0.1 image / 0.9 text; on TikTok
          (audio, image) the image gets 0.1, as in the reference run.
User-item graph, resampled before every training epoch (degree-sensitive pruning):
    keep floor((1 - dropout) * |E|) of the |E| training edges, drawn without replacement with
    probability proportional to 1/sqrt(d_u d_i) (degrees of the full training graph); ``dropout``
    is the fraction DROPPED (0.8: 20% of the edges kept). The kept graph is normalised
    symmetrically with degrees counted on the kept edges; ``dropout=0`` uses the full graph.
    Inference (``eval()``) always uses the full training graph.
Forward:
    [E_u ; E_i] = mean_{l = 0..n_ui_layers} Ahat^l [U ; I]   (LightGCN: no weights, no activation)
    h = S^{n_mm_layers} I                    (the item ID table through the item graph: the last
                                              layer, not a layer mean)
    user = E_u (no multimodal part);  item = E_i + h;  score = user . item
Loss (means over the batch):
    BPR(user, item) + reg_weight * sum_m BPR(user, P^m),  P^m_i = W_m x^m_i
    where ``user`` are the propagated user vectors of the same forward pass and x^m the item's
    raw feature vector. ``reg_weight`` weighs the modality BPR terms: it is NOT an L2 weight, and
    the reference applies no L2 at all (its ``weight_decay`` is 0). The projected features P^m
    appear only in these terms: they are not propagated and not part of the scores.

Other reference behaviours kept: Xavier-uniform user and item tables, default ``nn.Linear``
initialisation of the projections, and trainable raw features (the reference wraps them in
``nn.Embedding.from_pretrained(..., freeze=False)``, so Adam fine-tunes them through the modality
terms; ``tune_features=false`` freezes them). The item graph is built from the features as
loaded, so it stays frozen whatever the fine-tuning does to them.

Deviations (none changes the model; each is a determinism or robustness detail):
- top-k ties are broken by the lower item index (``torch.topk`` leaves ties unspecified); a
  feature row of norm 0 has cosine 0 with everything instead of NaN;
- the pruned edges are drawn with exponential keys from the trainer's numpy generator
  (``drop_edges(..., "degree_sampled")``: the same distribution as ``torch.multinomial``
  without replacement, another random stream, exactly resumable);
- the reference adds 1e-7 to every degree before the inverse square root; we do not;
- any number of modalities (the weight rule above) instead of exactly image and/or text;
- each batch projects only its own items' features (same values and gradients);
- the projections have no bias: the reference's b_m enters only u . (P^m_pos - P^m_neg), where
  it cancels, so it never receives a gradient and never changes a score;
- the graph is rebuilt from the data instead of cached in the dataset folder under a name
  keyed by ``knn_k`` and ``mm_image_weight`` only (a stale cache there survives new features);
- before the first ``pre_epoch`` a training-mode forward uses the full graph (the reference
  has no graph yet and fails).

Shapes: ``forward() -> ([n_users, d], [n_items, d])``; the item graph S is [n_items, n_items]
with at most ``knn_k`` x K non-zeros per row, the user-item graph is users first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cranerec.config import ConfigError
from cranerec.models.base import (
    Batch,
)
from cranerec.models.frozen_graph import FREEDOM_POINT, FrozenGraphConfig, FrozenGraphModel
from cranerec.models.presets import MMREC_TRAIN
from cranerec.models.registry import register
from cranerec.nn.losses import bpr_loss


@dataclass(frozen=True)
class FREEDOMConfig(FrozenGraphConfig):
    """``reg_weight``: the weight of the per-modality BPR terms (the reference's name; no L2)."""

    reg_weight: float = 1e-4

    def validate(self) -> None:
        super().validate()
        if self.reg_weight < 0:
            raise ConfigError(f"reg_weight must be >= 0, got {self.reg_weight}")


@register
class FREEDOM(FrozenGraphModel):
    """FREEDOM: LightGCN on the pruned user-item graph plus the item ID table through a frozen
    multimodal kNN item graph; per-modality BPR terms train the feature projections."""

    name = "freedom"
    Config = FREEDOMConfig
    projection_bias = False  # b_m cancels in every BPR difference: no gradient, no effect
    presets = {
        "reference": {"model": {**FREEDOM_POINT, "reg_weight": 1e-4}, "train": {**MMREC_TRAIN}}
    }

    def item_graph_input(self) -> torch.Tensor:
        return self.item_emb

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        user_out, item_out = self.forward()
        u = user_out[batch.user_idx]
        rank = bpr_loss(
            (u * item_out[batch.pos_idx]).sum(-1), (u * item_out[batch.neg_idx]).sum(-1)
        )
        total, parts = rank, {"bpr": rank.detach()}
        for m in self.modalities:
            pos, neg = self.projected(m, batch.pos_idx), self.projected(m, batch.neg_idx)
            modal = bpr_loss((u * pos).sum(-1), (u * neg).sum(-1))
            total = total + self.config.reg_weight * modal
            parts[f"bpr_{m}"] = modal.detach()
        return total, parts
