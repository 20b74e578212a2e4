"""DualGNN (Wang et al., IEEE Transactions on Multimedia 2021): per-modality graph branches over
the user-item graph, fused per user, plus a user-user co-occurrence graph.

"DualGNN: Dual Graph Neural Network for Multimedia Recommendation". The behaviour reproduced
is MMRec's implementation (``src/models/dualgnn.py``, ``src/configs/model/DualGNN.yaml``, the
user graph of ``preprocessing/dualgnn-gen-u-u-matrix.py``); this file is written from that
description, not copied.

Reference name -> setting: ``dim_latent`` (hard-coded 64; the yaml's ``embedding_size`` 64
sizes only ``result_embed``'s initial value, which every forward overwrites) ->
``embedding_dim``; the two ``conv_embed_1`` calls of its ``GCN`` -> ``n_layers`` = 2 (the yaml's
``n_layers`` and the code's ``num_layer`` are never read); ``self.k`` = 40 -> ``user_knn_k``;
``user_aggr_mode`` = softmax -> ``user_aggr``; ``reg_weight`` keeps its name. ``aggr_mode`` is
``add`` (the yaml's only value): the symmetric normalisation below.

Modalities: K >= 1 named modalities. The one named ``image_modality`` (default "image") plays
the reference's v_feat and comes first, the others follow in the dataset's order (the
reference's t_feat is the second); without an image modality, the dataset's first plays v_feat.

Forward, per modality m (``nn.PreferenceGCN``; P_m [U, d] the users' preference vectors):
    f^m_i  = W_2 LeakyReLU(W_1 x^m_i + b_1) + b_2            (MLP to 4d, MLP_1 to d)
    e^(0)  = rownorm([P_m ; f^m]),  r_m = sum_{l=0..L} Ahat^l e^(0),  Ahat = D^{-1/2} A D^{-1/2}
             (the layers SUMMED, not averaged), split into users u_m and items i_m
Items: i = sum_m i_m.
Users, fused with per-user weights a [U, K] (``weight_u``: softmax of a Xavier-normal draw at
initialisation, then free parameters, no softmax in the forward):
    ``user_fusion="aliased"`` (the reference): s_1 = sum_m u_m, s_m = u_m (m >= 2),
        u = sum_m a_m s_m. In the reference ``representation = v_rep; representation += t_rep``
        adds in place into v_rep itself, so its "visual" slot holds v + t: with image and text
        u = a_1 (u_v + u_t) + a_2 u_t;
    ``user_fusion="weighted"`` (the paper's weighted sum): u = sum_m a_m u_m;
    one modality: u = u_1 (the reference uses no weight then).
User-user graph (``graph.UserCooccurrenceGraph``, built from the training interactions as the
reference's preprocessing builds ``user_graph_dict.npy``: each user's top ``user_knn_k`` users
by shared training items, padded by a per-epoch random draw when it has fewer, weighted by the
softmax of the counts; see that module): h_u = sum_s w_{u,s} u_{nbr(u,s)},  user = u + h.
Score: y_ui = user_u . i_i.
Loss per batch of (u, i, j) triples:
    L = mean(-log2 sigmoid(y_ui - y_uj))                       (BPR in bits: log2, as coded)
        + reg_weight * (sum_m mean(P_m[u]^2) + mean(a^2))      (mean(a^2): K >= 2 only)
    means over the batch and, for P_m[u], its [B, d] entries; mean(a^2) over all U x K.

Reference behaviours kept: P_m Xavier-normal, the MLPs PyTorch's default initialisation,
LeakyReLU slope 0.01; one symmetric-normalised graph of every training edge in both directions,
no self-loops (``Base_gcn`` with ``aggr='add'``); the same conv applied twice; the user graph
resampled before every epoch; the raw features are constants (not fine-tuned).

Training (``reference`` preset): MMRec's overall.yaml (batch 2048, 1000 epochs, early stopping
after 20, Adam without weight decay, negatives from the items seen in training) with
lr 1e-4 and reg_weight 0.1 from DualGNN.yaml's grid (learning_rate and reg_weight each in
[0.1, 0.01, 1e-3, 1e-4, 1e-5]). The paper reports no Amazon setting (its data are TikTok and
MovieLens), so the point is the authors' own defaults (wqf321/dualgnn ``parse.py``:
``l_r`` 1e-4, ``weight_decay`` 0.1, the reg weight), both points of the grid; the grid's first
point, lr 0.1, is no sensible Adam rate for this model.

Deviations:
- not built: what the reference builds but never uses in a score or a gradient that changes
  one: ``MLP_v``, ``MLP_t``, ``MLP_user`` (unused), the dropped-edge graphs ``edge_index_dropv``
  / ``dropt`` (passed to the GCN, which ignores them), ``result_embed``'s initial parameter;
  ``weight_i`` [I, 2, 1], never in the forward, only in the penalty (it decays towards 0 and
  changes no score; so its term, reg_weight * mean(weight_i^2), is not in the loss either);
- with one modality no ``weight_u`` (the reference keeps it, unused in the forward, decaying);
- the reference scores at evaluation with ``result_embed`` from the epoch's last training
  forward (computed before the last optimiser step); here an evaluation forward recomputes the
  representations from the current weights, with the epoch's user graph;
- the user graph is built from ``dataset.train`` instead of a precomputed file; its ties among
  equal counts are ordered at random from a fixed seed (the script's ``torch.topk`` leaves them
  arbitrary; the lower index would hand the slots to the heaviest users where ids follow
  activity, as on TikTok: ``graph/user_graph.py``);
  the padding draws come from the trainer's numpy generator (the reference: ``np.random``), so
  resumed runs are exact; the graph before the first ``pre_epoch`` is drawn with seed 0;
- BPR as softplus / ln 2 (the reference's log2(sigmoid) is -inf for large margins);
- any number of modalities (the reference: v_feat and/or t_feat), by the rules above.

Shapes: ``forward() -> ([n_users, d], [n_items, d])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.graph import UserAggr, UserCooccurrenceGraph, UserItemGraph
from cranerec.models.base import Batch, Model, image_first
from cranerec.models.presets import MMREC_TRAIN
from cranerec.models.registry import register
from cranerec.nn.item_features import ItemFeatures
from cranerec.nn.preference_gcn import (
    preference_branches,
    preference_loss,
    user_modality_weights,
)


@dataclass(frozen=True)
class DualGNNConfig(Settings):
    """DualGNN settings (see the module docstring for the reference's names)."""

    embedding_dim: int = 64  # dim_latent
    n_layers: int = 2  # user-item graph layers, summed (the reference's two convs)
    user_knn_k: int = 40  # neighbours in the user co-occurrence graph (self.k)
    user_aggr: UserAggr = "softmax"  # weights of a user's neighbours (user_aggr_mode)
    user_fusion: Literal["aliased", "weighted"] = "aliased"  # aliased: the reference's sum
    reg_weight: float = 0.1
    image_modality: str = "image"  # plays the reference's v_feat; else the first modality

    def validate(self) -> None:
        if self.user_knn_k < 1:
            raise ConfigError(f"user_knn_k must be >= 1, got {self.user_knn_k}")


#: DualGNN.yaml's point (see the module docstring for the choice of lr and reg_weight).
DUALGNN_POINT = {
    "embedding_dim": 64, "n_layers": 2, "user_knn_k": 40, "user_aggr": "softmax",
    "user_fusion": "aliased", "reg_weight": 0.1,
}  # fmt: skip


@register
class DualGNN(Model):
    """DualGNN: per-modality graph branches fused per user, and a user co-occurrence graph."""

    name = "dualgnn"
    Config = DualGNNConfig
    min_modalities = 1
    presets = {"reference": {"model": {**DUALGNN_POINT}, "train": {**MMREC_TRAIN, "lr": 1e-4}}}

    def __init__(self, dataset: Dataset, config: DualGNNConfig) -> None:
        super().__init__(dataset, config)
        self.modalities = image_first(dataset.features, config.image_modality)
        self.features = ItemFeatures(dataset.features, self.modalities)  # constants
        widths = {m: x.shape[1] for m, x in dataset.features.items()}
        self.gcn = preference_branches(self.n_users, widths, self.modalities, config.embedding_dim)
        k_mod = len(self.modalities)
        self.weight_u = user_modality_weights(self.n_users, k_mod) if k_mod > 1 else None
        self.graph = UserItemGraph(dataset.train)  # D^{-1/2} A D^{-1/2}
        self.user_graph = UserCooccurrenceGraph(dataset.train, config.user_knn_k, config.user_aggr)

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Redraw the user graph's padding (users with fewer than k co-occurring users)."""
        self.user_graph.resample(rng)

    def branches(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per modality (``self.modalities`` order): users u_m [U, d] and items i_m [I, d]."""
        out = [
            self.gcn[m](self.graph, self.features[m], self.config.n_layers) for m in self.modalities
        ]
        return [u for u, _ in out], [i for _, i in out]

    def fuse_users(self, users: list[torch.Tensor]) -> torch.Tensor:
        """u = sum_m a_m s_m with the slots s of ``user_fusion``; u_1 for one modality."""
        if self.weight_u is None:
            return users[0]
        slots = list(users)
        if self.config.user_fusion == "aliased":
            slots[0] = torch.stack(users).sum(dim=0)  # the reference's in-place v_rep += t_rep
        return sum(self.weight_u[:, n : n + 1] * s for n, s in enumerate(slots))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.branches()
        user = self.fuse_users(users)  # [U, d]
        return user + self.user_graph.aggregate(user), torch.stack(items).sum(dim=0)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """BPR in bits + the preference L2 (``nn.preference_gcn.preference_loss``)."""
        triples = (batch.user_idx, batch.pos_idx, batch.neg_idx)
        branches = [self.gcn[m] for m in self.modalities]
        return preference_loss(
            *self.forward(), triples, branches, self.weight_u, self.config.reg_weight
        )

    # ---------------------------------------------------------------- serving hooks

    @torch.no_grad()
    def items_from_features(
        self, features: dict[str, torch.Tensor], dataset: Dataset
    ) -> torch.Tensor:
        """Cold-start items: DualGNN's own item equation for an item node without edges.

        An item's vector is i = sum_m i_m, i_m = sum_{l=0..L} (Ahat^l e^(0))_i. A new item has
        no interaction, so every Ahat^l term (l >= 1) of its row is 0 and
            i_new = sum_m rownorm(W_2 LeakyReLU(W_1 x^m_new + b_1) + b_2)
        with the trained MLPs. No edge reaches a trained node and no user's co-occurrence
        changes, so no existing score moves. A trained item without training interactions
        gets exactly this vector from its own features. Shapes: features
        {m: [n_new, width_m]} -> [n_new, d].
        """
        device = self.gcn[self.modalities[0]].preference.device
        return sum(
            self.gcn[m].item_inputs(features[m].to(device, torch.float32)) for m in self.modalities
        )
