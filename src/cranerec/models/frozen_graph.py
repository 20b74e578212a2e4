"""The frozen-graph base shared by FREEDOM and ``crane_official``: FREEDOM's two graphs (a frozen
multimodal kNN item graph and a user-item graph pruned each epoch), the tables, the feature
projections and cold-start items. Not a model itself; the equations are in ``freedom.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.graph import (
    UserItemGraph,
    drop_edges,
    knn_join,
    mixed_knn_adjacency,
    propagate_joined,
    sparse_mm,
    to_torch_sparse,
)
from cranerec.models.base import (
    Model,
    feature_projections,
    image_first,
    xavier_embedding,
)
from cranerec.nn.item_features import ItemFeatures


@dataclass(frozen=True)
class FrozenGraphConfig(Settings):
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


def modality_weights(n_modalities: int, first_weight: float) -> list[float]:
    """The item-graph mixing weights: ``first_weight`` for the first modality, the rest of the
    unit mass shared equally by the others; a single modality gets weight 1."""
    if n_modalities == 1:
        return [1.0]
    rest = (1.0 - first_weight) / (n_modalities - 1)
    return [first_weight] + [rest] * (n_modalities - 1)


#: FREEDOM.yaml's graph settings (the first value of each searched list).
FREEDOM_POINT = {
    "embedding_dim": 64, "knn_k": 10, "mm_image_weight": 0.1, "dropout": 0.8,
    "n_ui_layers": 2, "n_mm_layers": 1, "tune_features": True,
}  # fmt: skip


class FrozenGraphModel(Model):
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
        self.features = ItemFeatures(
            dataset.features, self.modalities, trainable=config.tune_features
        )
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
        self.graph = UserItemGraph(dataset.train)

    # ---------------------------------------------------------------- graphs

    def pruned_edges(self, rng: np.random.Generator) -> np.ndarray:
        """Boolean mask of the training edges kept this epoch: floor((1 - dropout) |E|) of them,
        weighted by 1/sqrt(d_u d_i) (the reference's count, floor included)."""
        n_edges = len(self.graph.edge_users)
        n_keep = int(n_edges * (1.0 - self.config.dropout))
        if n_keep < 1:
            raise ValueError(
                f"dropout={self.config.dropout} keeps no edge of the {n_edges} training edges"
            )
        return drop_edges(
            self.graph.edge_users, self.graph.edge_items, self.n_users, self.n_items,
            "degree_sampled", rng, keep_ratio=n_keep / n_edges,
        )  # fmt: skip

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Resample the pruned user-item graph (the item graph stays frozen)."""
        self.graph.keep_edges(self.pruned_edges(rng) if self.config.dropout > 0.0 else None)

    # ---------------------------------------------------------------- forward

    def feature(self, modality: str) -> torch.Tensor:
        """The raw (or fine-tuned) features x^m of every item: [n_items, width_m]."""
        return self.features[modality]

    def projected(self, modality: str, idx: torch.Tensor | None = None) -> torch.Tensor:
        """P^m = W_m x^m + b_m for the items ``idx`` (all items when None): [len(idx), d]."""
        x = self.feature(modality)
        return self.project[modality](x if idx is None else x[idx])

    def collaborative(self) -> tuple[torch.Tensor, torch.Tensor]:
        """LightGCN layer mean on the pruned graph in training, the full graph otherwise."""
        return self.graph.propagate(self.user_emb, self.item_emb, self.config.n_ui_layers)

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
