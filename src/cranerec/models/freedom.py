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
from functools import partial

import numpy as np
import torch

from cranerec.data.dataset import Dataset
from cranerec.graph import (
    drop_edges,
    knn_join,
    mixed_knn_adjacency,
    propagate,
    propagate_joined,
    sparse_mm,
    to_torch_sparse,
)
from cranerec.models.base import (
    Batch,
    Model,
    attach_item_features,
    attach_ui_graph,
    feature_projections,
    image_first,
    item_features,
    set_kept_edges,
    xavier_embedding,
)
from cranerec.models.registry import register
from cranerec.nn.losses import bpr_loss


@dataclass
class FrozenGraphConfig:
    """Settings shared by FREEDOM and ``crane_official`` (see the FREEDOM module docstring)."""

    embedding_dim: int = 64
    knn_k: int = 10
    mm_image_weight: float = 0.1
    image_modality: str = "image"  # gets mm_image_weight (the reference's v_feat); else the first
    dropout: float = 0.8  # fraction of user-item edges DROPPED each epoch
    n_ui_layers: int = 2
    n_mm_layers: int = 1
    tune_features: bool = True  # the reference fine-tunes the raw features

    def validate(self) -> None:
        from cranerec.config import ConfigError

        if min(self.embedding_dim, self.knn_k) < 1:
            raise ConfigError("embedding_dim and knn_k must be >= 1")
        if self.n_ui_layers < 0 or self.n_mm_layers < 0:
            raise ConfigError("n_ui_layers and n_mm_layers must be >= 0")
        if not 0.0 <= self.mm_image_weight <= 1.0:
            raise ConfigError(f"mm_image_weight must be in [0, 1], got {self.mm_image_weight}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(
                f"dropout (the fraction dropped) must be in [0, 1), got {self.dropout}"
            )


@dataclass
class FREEDOMConfig(FrozenGraphConfig):
    """``reg_weight``: the weight of the per-modality BPR terms (the reference's name; no L2)."""

    reg_weight: float = 1e-4

    def validate(self) -> None:
        super().validate()
        if self.reg_weight < 0:
            from cranerec.config import ConfigError

            raise ConfigError(f"reg_weight must be >= 0, got {self.reg_weight}")


def modality_weights(n_modalities: int, first_weight: float) -> list[float]:
    """The item-graph mixing weights: ``first_weight`` for the first modality, the rest of the
    unit mass shared equally by the others; a single modality gets weight 1."""
    if n_modalities == 1:
        return [1.0]
    rest = (1.0 - first_weight) / (n_modalities - 1)
    return [first_weight] + [rest] * (n_modalities - 1)


#: MMRec's training point (``configs/overall.yaml``), shared by the reference presets.
MMREC_TRAIN = {
    "lr": 1e-3, "batch_size": 2048, "epochs": 1000, "patience": 20, "lr_decay": 1.0,
    "stop_metric": "recall@20", "negative_pool": "seen",
}  # fmt: skip
#: FREEDOM.yaml's graph settings (the first value of each searched list).
FREEDOM_POINT = {
    "embedding_dim": 64, "knn_k": 10, "mm_image_weight": 0.1, "dropout": 0.8,
    "n_ui_layers": 2, "n_mm_layers": 1, "tune_features": True,
}  # fmt: skip


class FrozenGraphRecommender(Model):
    """FREEDOM's two graphs, shared by FREEDOM and ``crane_official`` (not registered).

    Subclasses choose what goes through the frozen item graph (``item_graph_input``; for
    cold-start items ``new_item_graph_input``) and own their loss; everything else (tables,
    features, projections, graphs, propagation, cold-start items) is here.
    """

    min_modalities = 1
    #: Whether the feature projections W_m x + b_m have a bias b_m.
    projection_bias: bool = True

    def __init__(self, dataset: Dataset, config: FrozenGraphConfig) -> None:
        super().__init__(dataset, config)
        d = config.embedding_dim
        self.user_emb = xavier_embedding(self.n_users, d)
        self.item_emb = xavier_embedding(self.n_items, d)

        # Raw item features (copied: fine-tuning must not write into the dataset) and their
        # learned projections to d (the reference's image_trs / text_trs).
        # The image modality first (it gets mm_image_weight, as the reference's v_feat does);
        # without one, the dataset's order.
        self.modalities = image_first(dataset.features, config.image_modality)
        attach_item_features(self, dataset.features, self.modalities, config.tune_features)
        self.project = feature_projections(
            dataset.features, self.modalities, d, bias=self.projection_bias
        )

        # The frozen item graph S [n_items, n_items] from the features as loaded.
        adj_item = mixed_knn_adjacency(
            [dataset.features[m] for m in self.modalities],
            config.knn_k,
            modality_weights(len(self.modalities), config.mm_image_weight),
            exclude_self=False,
        )
        self.register_buffer("adj_item", to_torch_sparse(adj_item), persistent=False)
        self.register_buffer("adj_item_t", to_torch_sparse(adj_item.T), persistent=False)

        # The user-item graph: full (inference) and pruned (training, resampled per epoch).
        attach_ui_graph(self, dataset.train)

    # ---------------------------------------------------------------- graphs

    def pruned_edges(self, rng: np.random.Generator) -> np.ndarray:
        """Boolean mask of the training edges kept this epoch: floor((1 - dropout) |E|) of them,
        weighted by 1/sqrt(d_u d_i) (the reference's count, floor included)."""
        n_edges = len(self._edge_users)
        n_keep = int(n_edges * (1.0 - self.config.dropout))
        if n_keep < 1:
            raise ValueError(
                f"dropout={self.config.dropout} keeps no edge of the {n_edges} training edges"
            )
        return drop_edges(
            self._edge_users, self._edge_items, self.n_users, self.n_items,
            "degree_sampled", rng, keep_ratio=n_keep / n_edges,
        )  # fmt: skip

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Resample the pruned user-item graph (the item graph stays frozen)."""
        if self.config.dropout <= 0.0:
            self.adj_train = self.adj_full
            return
        set_kept_edges(self, self.pruned_edges(rng))

    # ---------------------------------------------------------------- forward

    def feature(self, modality: str) -> torch.Tensor:
        """The raw (or fine-tuned) features x^m of every item: [n_items, width_m]."""
        return item_features(self, modality)

    def projected(self, modality: str, idx: torch.Tensor | None = None) -> torch.Tensor:
        """P^m = W_m x^m + b_m for the items ``idx`` (all items when None): [len(idx), d]."""
        x = self.feature(modality)
        return self.project[modality](x if idx is None else x[idx])

    def collaborative(self) -> tuple[torch.Tensor, torch.Tensor]:
        """LightGCN layer mean on the pruned graph in training, the full graph otherwise."""
        adj = self.adj_train if self.training else self.adj_full
        emb = torch.cat([self.user_emb, self.item_emb])  # [U + I, d]
        out = propagate(adj, emb, self.config.n_ui_layers, adj_t=adj)  # symmetric
        return out[: self.n_users], out[self.n_users :]

    def item_graph_input(self) -> torch.Tensor:
        """What goes through the frozen item graph: [n_items, d]."""
        raise NotImplementedError

    def semantic_items(self) -> torch.Tensor:
        """h = S^{n_mm_layers} x, x = ``item_graph_input()``: [n_items, d]."""
        h = self.item_graph_input()
        for _ in range(self.config.n_mm_layers):
            h = sparse_mm(self.adj_item, h, self.adj_item_t)
        return h

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        user_out, item_out = self.collaborative()
        return user_out, item_out + self.semantic_items()

    # ---------------------------------------------------------------- serving hooks

    def new_item_graph_input(self, features: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """h^(0) of cold-start items (what ``item_graph_input`` is for trained items) from their
        features ``{m: [n_new, width_m]}``: [n_new, d], or None where it is 0."""
        return None

    @torch.no_grad()
    def items_from_features(
        self, features: dict[str, torch.Tensor], dataset: Dataset
    ) -> torch.Tensor:
        """Cold-start items: each new item joins the frozen item graph S as a row of its own.

        Per modality m its top-``knn_k`` cosine neighbours among the trained items and itself
        (it competes for its own list as every trained item does; ties go to the lower index,
        i.e. to the trained items), from the features as loaded, each kept neighbour weighted
        w_m / knn_k as in S (``knn_join``). No trained row changes (no trained item gains a new
        neighbour), so no existing score moves. With no interactions and no ID embedding, the
        new item's collaborative part is 0, and its vector is h^(n_mm_layers) with
            h^(l)_new = sum_{j trained} S[new, j] h^(l-1)_j + S[new, new] h^(l-1)_new
        (``propagate_joined``), h^(0)_new = ``new_item_graph_input``: FREEDOM 0 (no ID row);
        ``crane_official`` f_new, the attention output of its features over the trained items.
        The item vector being E_i + h_i, the new vector is the content part h of an item with
        these features. A trained item's copy (its own features) has cosine 1 with that item
        and with itself, so its list is the item's own with the last neighbour replaced by the
        copy itself: h_copy = h_i - sum_m (w_m / k) (x_last_m - x_copy) at one layer, x the
        h^(0) rows (FREEDOM: x_copy = 0; crane_official: x_copy = f_i, without fine-tuning).
        ``n_mm_layers=0`` with h^(0)_new = 0 has no content path (the scores never use the
        features). Shapes: features {m: [n_new, width_m]} -> [n_new, d]. Memory
        O(n_new x n_items).
        """
        h_new = self.new_item_graph_input(features)
        if h_new is None and self.config.n_mm_layers == 0:
            raise NotImplementedError(
                f"this {self.name} configuration has no content path (n_mm_layers=0: its "
                "scores never use the item features)"
            )
        k, device = self.config.knn_k, self.item_emb.device
        weights = modality_weights(len(self.modalities), self.config.mm_image_weight)
        idx, values = [], []
        for m, w in zip(self.modalities, weights, strict=True):
            trained = torch.as_tensor(dataset.features[m], device=device)
            i, sim = knn_join(features[m].to(device, torch.float32), trained, k)
            idx.append(i)
            values.append(torch.full_like(sim, w / k))  # S = sum_m w_m A^m / k
        step = partial(sparse_mm, self.adj_item, adj_t=self.adj_item_t)
        return propagate_joined(
            torch.cat(idx, dim=1),
            torch.cat(values, dim=1),
            self.item_graph_input(),
            self.config.n_mm_layers,
            step,
            h_new,
        )  # + the collaborative part, 0 for an item without interactions


@register
class FREEDOM(FrozenGraphRecommender):
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
