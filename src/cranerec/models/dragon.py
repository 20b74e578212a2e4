"""DRAGON (Zhou et al., ECAI 2023): DualGNN's per-modality branches joined by attentive
concatenation, a user co-occurrence graph and a frozen multimodal item kNN graph.

"Enhancing Dyadic Relations with Homogeneous Graphs for Multimodal Recommendation". The
behaviour reproduced is MMRec's implementation (``src/models/dragon.py``,
``src/configs/model/DRAGON.yaml``; the user graph of the DRAGON repository's
``tools/generate-u-u-matrix.py``, the same script as MMRec's DualGNN preprocessing); this file
is written from that description, not copied.

Reference name -> setting: ``dim_latent`` (hard-coded 64; the yaml's ``embedding_size`` and
``feat_embed_dim``, both 64, size only parts that never reach a score) -> ``embedding_dim``;
the two ``conv_embed_1`` calls of its ``GCN`` -> ``n_ui_layers`` = 2 (the yaml's ``n_layers``
is never read); ``n_mm_layers``, ``knn_k``, ``mm_image_weight``, ``reg_weight`` keep their
names; ``self.k`` = 40 -> ``user_knn_k``; ``user_aggr_mode`` = softmax -> ``user_aggr``.
``aggr_mode`` is ``add`` (the yaml's only value): the symmetric normalisation below.

Modalities: K >= 1 named modalities. The one named ``image_modality`` (default "image") plays
the reference's v_feat and comes first, the others follow in the dataset's order; without an
image modality, the dataset's first plays v_feat.

Per modality m (``nn.PreferenceGCN``, as in DualGNN; P_m [U, d] the users' preferences):
    f^m_i  = W_2 LeakyReLU(W_1 x^m_i + b_1) + b_2            (MLP to 4d, MLP_1 to d)
    e^(0)  = rownorm([P_m ; f^m]),  r_m = sum_{l=0..L} Ahat^l e^(0),  Ahat = D^{-1/2} A D^{-1/2}
             (L = ``n_ui_layers``, the layers SUMMED), split into users u_m and items i_m
Attentive concatenation (``construction = 'cat'``), a [U, K] the per-user weights
(``weight_u``: softmax of a Xavier-normal draw at initialisation, then free parameters):
    user^(0) = [a_1 u_1 || ... || a_K u_K]   (one modality: u_1, no weight)     [U, K d]
    item^(0) = [i_1 || ... || i_K]                                            [I, K d]
Item graph (built once from the raw features, frozen; FREEDOM's, ``mixed_knn_adjacency``):
    A^m[i, j] = 1 if j is among the top-``knn_k`` cosine neighbours of i in modality m (the
    item competes for its own list), S^m = D^{-1/2} A^m D^{-1/2} = A^m / k,
    S = sum_m w_m S^m with w_1 = ``mm_image_weight`` for the image (v_feat) modality and the
    others sharing 1 - ``mm_image_weight`` equally (image and text: 0.1 / 0.9); one modality: 1.
User graph (``graph.UserCooccurrenceGraph``, built from the training interactions as the
reference's preprocessing builds ``user_graph_dict.npy``: each user's top ``user_knn_k`` users
by shared training items, padded by a per-epoch random draw when it has fewer, weighted by the
softmax of the counts; see that module): h_u = sum_s w_{u,s} user^(0)_{nbr(u,s)}.
Output: user = user^(0) + h;  item = item^(0) + S^{n_mm_layers} item^(0)  (the last layer);
    y_ui = user_u . item_i.
Loss per batch of (u, i, j) triples:
    L = mean(-log2 sigmoid(y_ui - y_uj))                       (BPR in bits: log2, as coded)
        + reg_weight * (sum_m mean(P_m[u]^2) + mean(a^2))      (mean(a^2): K >= 2 only)
    means over the batch and, for P_m[u], its [B, d] entries; mean(a^2) over all U x K.

Reference behaviours kept: P_m Xavier-normal, the MLPs PyTorch's default initialisation,
LeakyReLU slope 0.01; one symmetric-normalised graph of every training edge in both
directions, no self-loops; the same conv applied twice; the item graph from the raw features;
the user graph resampled before every epoch; the raw features are constants in the branches.

Training (``reference`` preset): MMRec's overall.yaml (batch 2048, 1000 epochs, early stopping
after 20, Adam without weight decay, negatives from the items seen in training) with the
paper's Amazon point, lr 1e-4 and reg_weight 1e-3 (the authors' table of the settings behind
the paper's results, hongyurain/DRAGON README: Baby and Sports 1e-4 / 1e-3, Clothing
1e-4 / 0.1; all points of DRAGON.yaml's grid, learning_rate and reg_weight each in
[0.1, 0.01, 1e-3, 1e-4, 1e-5]); presets ``baby``, ``sports``, ``clothing`` give each row.

Deviations:
- not built: what the reference builds but never uses in a score or a gradient:
  ``image_embedding`` / ``text_embedding`` (trainable copies of the features, read once,
  detached, to build the item graph: they never receive a gradient), ``image_trs`` /
  ``text_trs``, ``MLP_v``, ``MLP_t``, ``MLP_user`` (unused), ``weight_i`` (unused, not even
  penalised under 'cat'), the dropped-edge graphs (passed to the GCN, which ignores them),
  ``result_embed``'s initial parameter;
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
- the item graph is built from the data instead of cached in the dataset folder as
  ``mm_adj_{knn_k}.pt`` (keyed by ``knn_k`` only: a stale cache survives new features or a new
  ``mm_image_weight``); top-k ties go to the lower item index; no 1e-7 on the degrees;
- BPR as softplus / ln 2 (the reference's log2(sigmoid) is -inf for large margins);
- any number of modalities (the reference: v_feat and/or t_feat), by the rules above.

Shapes: ``forward() -> ([n_users, K d], [n_items, K d])``; S is [n_items, n_items] with at most
``knn_k`` x K non-zeros per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.graph import (
    UserAggr,
    UserCooccurrenceGraph,
    UserItemGraph,
    knn_join,
    mixed_knn_adjacency,
    propagate_joined,
    sparse_mm,
    to_torch_sparse,
)
from cranerec.models.base import Batch, Model, image_first
from cranerec.models.frozen_graph import modality_weights
from cranerec.models.presets import MMREC_TRAIN
from cranerec.models.registry import register
from cranerec.nn.item_features import ItemFeatures
from cranerec.nn.preference_gcn import (
    preference_branches,
    preference_loss,
    user_modality_weights,
)


@dataclass(frozen=True)
class DRAGONConfig(Settings):
    """DRAGON settings (see the module docstring for the reference's names)."""

    embedding_dim: int = 64  # dim_latent, per modality (the output is K x this wide)
    n_ui_layers: int = 2  # user-item graph layers, summed (the reference's two convs)
    n_mm_layers: int = 1  # item graph layers
    knn_k: int = 10  # item graph neighbours
    mm_image_weight: float = 0.1  # the image modality's share of the item graph
    user_knn_k: int = 40  # neighbours in the user co-occurrence graph (self.k)
    user_aggr: UserAggr = "softmax"  # weights of a user's neighbours (user_aggr_mode)
    reg_weight: float = 1e-3
    image_modality: str = "image"  # plays the reference's v_feat; else the first modality

    def validate(self) -> None:
        if self.knn_k < 1 or self.user_knn_k < 1:
            raise ConfigError(
                f"knn_k and user_knn_k must be >= 1, got {self.knn_k} and {self.user_knn_k}"
            )
        if not 0.0 <= self.mm_image_weight <= 1.0:
            raise ConfigError(f"mm_image_weight must be in [0, 1], got {self.mm_image_weight}")


#: DRAGON.yaml's point with the paper's reg_weight for Baby and Sports.
DRAGON_POINT = {
    "embedding_dim": 64, "n_ui_layers": 2, "n_mm_layers": 1, "knn_k": 10,
    "mm_image_weight": 0.1, "user_knn_k": 40, "user_aggr": "softmax", "reg_weight": 1e-3,
}  # fmt: skip


def _preset(reg_weight: float) -> dict:
    return {
        "model": {**DRAGON_POINT, "reg_weight": reg_weight},
        "train": {**MMREC_TRAIN, "lr": 1e-4},
    }


@register
class DRAGON(Model):
    """DRAGON: DualGNN's branches concatenated with per-user weights, a user co-occurrence
    graph on the users and a frozen multimodal kNN graph on the items."""

    name = "dragon"
    Config = DRAGONConfig
    min_modalities = 1
    presets = {  # the authors' settings behind the paper's results (hongyurain/DRAGON)
        "reference": _preset(1e-3),
        "baby": _preset(1e-3),
        "sports": _preset(1e-3),
        "clothing": _preset(0.1),
    }

    def __init__(self, dataset: Dataset, config: DRAGONConfig) -> None:
        super().__init__(dataset, config)
        if config.knn_k > self.n_items:
            raise ValueError(f"knn_k={config.knn_k} exceeds the number of items ({self.n_items})")
        self.modalities = image_first(dataset.features, config.image_modality)
        self.features = ItemFeatures(dataset.features, self.modalities)  # constants
        widths = {m: x.shape[1] for m, x in dataset.features.items()}
        self.gcn = preference_branches(self.n_users, widths, self.modalities, config.embedding_dim)
        k_mod = len(self.modalities)
        self.weight_u = user_modality_weights(self.n_users, k_mod) if k_mod > 1 else None
        self.graph = UserItemGraph(dataset.train)  # D^{-1/2} A D^{-1/2}
        self.user_graph = UserCooccurrenceGraph(dataset.train, config.user_knn_k, config.user_aggr)
        adj_item = mixed_knn_adjacency(
            [dataset.features[m] for m in self.modalities],
            config.knn_k,
            modality_weights(k_mod, config.mm_image_weight),
            exclude_self=False,
        )  # S, frozen
        self.register_buffer("adj_item", to_torch_sparse(adj_item), persistent=False)
        self.register_buffer("adj_item_t", to_torch_sparse(adj_item.T), persistent=False)

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Redraw the user graph's padding (users with fewer than k co-occurring users)."""
        self.user_graph.resample(rng)

    def concatenated(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(user^(0) [U, K d], item^(0) [I, K d]): the branches, attentively concatenated."""
        out = [
            self.gcn[m](self.graph, self.features[m], self.config.n_ui_layers)
            for m in self.modalities
        ]
        items = torch.cat([i for _, i in out], dim=1)
        if self.weight_u is None:
            return out[0][0], items
        users = [self.weight_u[:, n : n + 1] * u for n, (u, _) in enumerate(out)]
        return torch.cat(users, dim=1), items

    def semantic_items(self, items: torch.Tensor) -> torch.Tensor:
        """S^{n_mm_layers} items: [I, K d]."""
        for _ in range(self.config.n_mm_layers):
            items = sparse_mm(self.adj_item, items, self.adj_item_t)
        return items

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        user, item = self.concatenated()
        return user + self.user_graph.aggregate(user), item + self.semantic_items(item)

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
        """Cold-start items: an item node without edges that joins the item graph S as a row
        of its own.

        Without interactions every Ahat^l term (l >= 1) of the new item's branch rows is 0,
        so its item^(0) is x_new = [rownorm(MLP_m(x^m_new))]_m (the trained MLPs). Per
        modality m its top-``knn_k`` cosine neighbours among the trained items and itself,
        from the raw features (it competes for its own list, as every trained item does; ties
        go to the trained items), each weighted w_m / knn_k as in S (``knn_join``); then
            h^(l)_new = sum_{j trained} S[new, j] h^(l-1)_j + S[new, new] h^(l-1)_new,
            h^(0)_new = x_new, h^(0)_j = item^(0)_j   (``propagate_joined``)
        and the vector is x_new + h^(n_mm_layers)_new, as item^(0) + S^L item^(0) is for a
        trained item. No trained row of S, no edge and no user's co-occurrence changes, so no
        existing score moves. A trained item passed in with its own features has cosine 1 with
        that item and with itself, so its list is the item's own with the last neighbour
        replaced by the copy: at one layer its vector is
            x_i + h_i - sum_m (w_m / k) (item^(0)_{last_m} - x_i),  h_i = (S item^(0))_i
        with x_i its edge-free item^(0). Shapes: features {m: [n_new, width_m]} ->
        [n_new, K d]. Memory O(n_new x n_items).
        """
        device, k = self.adj_item.device, self.config.knn_k
        new = {m: features[m].to(device, torch.float32) for m in self.modalities}
        x_new = torch.cat([self.gcn[m].item_inputs(new[m]) for m in self.modalities], dim=1)
        weights = modality_weights(len(self.modalities), self.config.mm_image_weight)
        idx, values = [], []
        for m, w in zip(self.modalities, weights, strict=True):
            trained = torch.as_tensor(dataset.features[m], device=device)
            i, sim = knn_join(new[m], trained, k)
            idx.append(i)
            values.append(torch.full_like(sim, w / k))  # S = sum_m w_m A^m / k
        _, items = self.concatenated()
        h = propagate_joined(
            torch.cat(idx, dim=1),
            torch.cat(values, dim=1),
            items,
            self.config.n_mm_layers,
            partial(sparse_mm, self.adj_item, adj_t=self.adj_item_t),
            x_new,
        )
        return x_new + h
