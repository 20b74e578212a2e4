"""LATTICE (Zhang et al., ACM MM 2021): learned multimodal item graphs over a LightGCN backbone.

"Mining Latent Structures for Multimedia Recommendation". The behaviour reproduced is MMRec's
implementation (``src/models/lattice.py``, ``src/configs/model/LATTICE.yaml``, the kNN helpers
in ``src/utils/utils.py``); this file is written from that description, not copied. Line
numbers below are those of MMRec's files.

Reference name -> setting: ``embedding_size`` -> ``embedding_dim``; ``feat_embed_dim`` ->
``projection_dim`` (the width of the projected features the learned graph is built from);
``len(weight_size)`` -> ``n_ui_layers`` (lattice.py 46: the sizes themselves are unused by the
LightGCN backbone, only their count, 2, matters); ``n_layers`` -> ``n_mm_layers``; ``knn_k``,
``lambda_coeff``, ``reg_weight`` keep their names. ``cf_model`` is ``lightgcn`` in LATTICE.yaml
(line 9) and is the only backbone here (``mf`` is ``n_ui_layers=0``: the layer mean of layer 0
alone is the ID table); ``mess_dropout`` (yaml line 10) is read only by the ``ngcf`` backbone
(lattice.py 53-61, 174), so LATTICE as configured applies no dropout and it is not a setting.

Item graphs (K modalities, x^m the raw features of modality m, P^m = W_m x^m + b_m):
    A(X)[i, j] = cos(x_i, x_j) if j is among row i's top-``knn_k`` cosine neighbours, else 0;
                 the item competes for its own list, and the similarity value is kept
                 (utils.py 119-122, 134-137)
    N(S) = D^{-1/2} S D^{-1/2}, D = diag(row sums of S)    (utils.py 125-131)
    initial graphs, built once from the features as loaded: O^m = N(A(x^m))    (lattice.py 67-87)
    w = softmax(modal_weight), modal_weight initialised to 0.5 each           (lattice.py 94-95, 138)
    learned graph: L = N(sum_m w_m A(P^m))      (the mixture normalised once; lattice.py 141-154)
    item graph:    S = (1 - lambda_coeff) L + lambda_coeff sum_m w_m O^m       (lattice.py 152, 157)
    so ``lambda_coeff`` = 0.9 keeps 0.9 of the initial graph and 0.1 of the learned one, and the
    modality weights enter both parts. One modality: w = (1) and no weight parameter (the
    reference's modal_weight is then never used). ``graph.knn_laplacian`` builds N(sum w A).
User-item graph (lattice.py 100-122): Ahat = D^{-1} (A + I), A = [[0, R], [R^T, 0]], rows of
    A + I normalised to sum to one (self-loops, random-walk normalisation, not LightGCN's
    symmetric one).
Forward (lattice.py 161-163, 184-195):
    [E_u ; E_i] = mean_{l = 0..n_ui_layers} Ahat^l [U ; I]
    h = S^{n_mm_layers} I                    (the item ID table through the item graph)
    user = E_u;  item = E_i + h / ||h||_2 (per item);  score = user . item
Loss (lattice.py 199-227), means over the batch of (u, i, j) triples:
    -log sigmoid(user_u . item_i - user_u . item_j)
        + reg_weight * 0.5 (||user_u||^2 + ||item_i||^2 + ||item_j||^2) / B
    on the final (propagated) vectors, not the layer-0 tables (``l2_batch``).

Item-graph cadence (lattice.py 38, 97-98, 137-159, 218-219): ``pre_epoch`` marks the graph
stale; the first training forward after it rebuilds S from the current projections, features
and modality weights, and that step's loss carries gradient into W_m, b_m, the (fine-tuned)
features and modal_weight through the kept similarity values and w. Every later step of the
epoch reuses S detached, so those parameters get no gradient until the next epoch's first step
(their ``.grad`` is None, so Adam skips them, as in MMRec under torch >= 2, whose ``zero_grad``
sets None; under MMRec's pinned torch 1.11 it writes zeros and Adam's momentum keeps moving them).
A model never given a ``pre_epoch`` builds the graph on its first training forward (the
reference's flag starts True). Evaluation (``eval()``) builds S afresh from the current
parameters on every forward, as ``full_sort_predict`` does (lattice.py 229-237).

Other reference behaviours kept: Xavier-uniform user and item tables (lattice.py 48-51);
projections are ``nn.Linear`` with bias and default initialisation (lattice.py 89-92: the bias
changes the cosines, so it matters here); trainable raw features (``nn.Embedding.
from_pretrained(..., freeze=False)``, lattice.py 68, 79; ``tune_features=false`` freezes them),
which only the graph-building step trains; the initial graphs stay those of the features as
loaded. Training (``reference`` preset): MMRec's overall.yaml with LATTICE.yaml's
``learning_rate_scheduler: [0.96, 50]``, which MMRec applies as ``LambdaLR`` with
lr_e = lr * 0.96 ** (e / 50), stepped once per epoch (trainer.py 95-99, 247): a continuous
decay, which is exactly ``train.lr_decay=0.96``, ``train.lr_decay_every=50``.

Deviations (none changes the model; each is a determinism, scale or robustness detail):
- the graphs are sparse (at most ``knn_k`` x K entries per row and part) where the reference
  builds dense [n_items, n_items] matrices; the values are the same;
- top-k ties are broken by the lower item index (``torch.topk`` leaves them unspecified); a
  feature row of norm 0 has cosine 0 with everything, and a graph row whose kept similarities
  sum to <= 0 is all zero (the reference gives NaN for both);
- the L2 term is divided by the batch's size; the reference divides by the configured
  ``train_batch_size`` (abstract_recommender.py 86), which differs on each epoch's last batch;
- any number of modalities: K weights in the softmax, all starting equal (the reference: image
  and/or text, read from ``vision_feature_file`` / ``text_feature_file`` only; its TikTok folder
  names a text file it lacks, so there it sees the image alone, while every modality the
  dataset has is used here: ``data.modalities=[image]`` restricts it). The modality named ``image_modality`` comes first (modal_weight[0], the
  reference's image weight), then the dataset's order; the graphs do not depend on the order;
- the initial graphs are built from the data instead of cached in the dataset folder under a
  name keyed by ``knn_k`` only (a stale cache there survives new features).

Shapes: ``forward() -> ([n_users, d], [n_items, d])``; S is [n_items, n_items] with at most
2 x ``knn_k`` x K non-zeros per row; the user-item graph is users first.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.graph import (
    UserItemGraph,
    knn_laplacian,
    knn_laplacian_join,
    propagate_joined,
    sparse_mm,
)
from cranerec.models.base import (
    Batch,
    Model,
    feature_projections,
    image_first,
    xavier_embedding,
)
from cranerec.models.presets import MMREC_TRAIN
from cranerec.models.registry import register
from cranerec.nn.item_features import ItemFeatures
from cranerec.nn.losses import bpr_loss, l2_batch


@dataclass(frozen=True)
class LATTICEConfig(Settings):
    """LATTICE settings (see the module docstring for the reference's names)."""

    embedding_dim: int = 64
    projection_dim: int = 64  # feat_embed_dim: the learned graph's feature width
    knn_k: int = 10
    lambda_coeff: float = 0.9  # weight of the initial graphs (1 - it: the learned graph)
    n_ui_layers: int = 2  # len(weight_size)
    n_mm_layers: int = 1  # n_layers
    reg_weight: float = 1e-4  # L2 on the batch's final vectors
    image_modality: str = "image"  # first in modal_weight (the reference's v_feat)
    tune_features: bool = True  # the reference fine-tunes the raw features

    def validate(self) -> None:
        if min(self.embedding_dim, self.projection_dim, self.knn_k) < 1:
            raise ConfigError("embedding_dim, projection_dim and knn_k must be >= 1")
        if self.n_ui_layers < 0 or self.n_mm_layers < 0:
            raise ConfigError("n_ui_layers and n_mm_layers must be >= 0")
        if not 0.0 <= self.lambda_coeff <= 1.0:
            raise ConfigError(f"lambda_coeff must be in [0, 1], got {self.lambda_coeff}")
        if self.reg_weight < 0:
            raise ConfigError(f"reg_weight must be >= 0, got {self.reg_weight}")


#: LATTICE.yaml's point (the yaml searches reg_weight in [0, 1e-5, 1e-4, 1e-3] and
#: learning_rate in [1e-4, 5e-4, 1e-3, 5e-3], lines 7 and 14; this is the point 1e-4 / 5e-4)
#: with MMRec's training settings and the yaml's lr schedule (line 5).
LATTICE_POINT = {
    "embedding_dim": 64, "projection_dim": 64, "knn_k": 10, "lambda_coeff": 0.9,
    "n_ui_layers": 2, "n_mm_layers": 1, "reg_weight": 1e-4, "tune_features": True,
}  # fmt: skip
LATTICE_TRAIN = {**MMREC_TRAIN, "lr": 5e-4, "lr_decay": 0.96, "lr_decay_every": 50}


def _csr(adj: torch.Tensor) -> torch.Tensor:
    """A coalesced sparse COO tensor in CSR layout (faster products)."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return adj.to_sparse_csr()


@register
class LATTICE(Model):
    """LATTICE: LightGCN plus the item ID table through a mixture of fixed kNN item graphs and
    kNN graphs learned from projected features, rebuilt on each epoch's first step."""

    name = "lattice"
    Config = LATTICEConfig
    min_modalities = 1
    presets = {
        "reference": {"model": {**LATTICE_POINT}, "train": {**LATTICE_TRAIN}},
        "reference_10ep": {
            "model": {**LATTICE_POINT},
            "train": {**LATTICE_TRAIN, "epochs": 10, "patience": 10},  # patience >= epochs
        },
    }

    def __init__(self, dataset: Dataset, config: LATTICEConfig) -> None:
        super().__init__(dataset, config)
        if config.knn_k > self.n_items:
            raise ValueError(f"knn_k={config.knn_k} exceeds the number of items ({self.n_items})")
        d = config.embedding_dim
        self.user_emb = xavier_embedding(self.n_users, d)
        self.item_emb = xavier_embedding(self.n_items, d)

        # Raw features (copied: fine-tuning must not write into the dataset) and their
        # projections (the reference's image_trs / text_trs), image first.
        self.modalities = image_first(dataset.features, config.image_modality)
        self.features = ItemFeatures(
            dataset.features, self.modalities, trainable=config.tune_features
        )
        self.project = feature_projections(dataset.features, self.modalities, config.projection_dim)
        k_mod = len(self.modalities)
        self.modal_weight = nn.Parameter(torch.full((k_mod,), 0.5)) if k_mod > 1 else None

        # The initial graphs O^m = N(A(x^m)), one per modality, from the features as loaded.
        for m in self.modalities:
            self.register_buffer(
                f"adj_init_{m}",
                knn_laplacian([dataset.features[m]], config.knn_k),
                persistent=False,
            )

        self.graph = UserItemGraph(dataset.train, "row_self")  # D^{-1} (A + I)

        # The item graph S of the current epoch, detached (rebuilt on the epoch's first step).
        self._adj_item: torch.Tensor | None = None
        self._adj_item_t: torch.Tensor | None = None
        self._rebuild = True

    # ---------------------------------------------------------------- item graph

    def feature(self, modality: str) -> torch.Tensor:
        """The raw (or fine-tuned) features x^m of every item: [n_items, width_m]."""
        return self.features[modality]

    def modality_weights(self) -> torch.Tensor:
        """w = softmax(modal_weight): [K] (a constant 1 for one modality)."""
        if self.modal_weight is None:
            return self.item_emb.new_ones(1)
        return torch.softmax(self.modal_weight, dim=0)

    def initial_graph(self, modality: str) -> torch.Tensor:
        """O^m = N(A(x^m)) of the features as loaded: sparse [n_items, n_items]."""
        return getattr(self, f"adj_init_{modality}")

    def learned_graph(self, weights: torch.Tensor) -> torch.Tensor:
        """L = N(sum_m w_m A(P^m)), differentiable: sparse [n_items, n_items]."""
        projected = [self.project[m](self.feature(m)) for m in self.modalities]  # [N, p] each
        return knn_laplacian(projected, self.config.knn_k, weights)

    def item_graph(self) -> torch.Tensor:
        """S = (1 - lambda) L + lambda sum_m w_m O^m, differentiable in the projections, the
        features and the modality weights: a coalesced sparse [n_items, n_items] tensor."""
        w = self.modality_weights()
        lam = self.config.lambda_coeff
        adj = (1.0 - lam) * self.learned_graph(w)
        for n, m in enumerate(self.modalities):
            adj = adj + (lam * w[n]) * self.initial_graph(m)
        return adj.coalesce()

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Mark the item graph stale: the epoch's first training step rebuilds it."""
        self._rebuild = True

    def _current_item_graph(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(S, S^T or None): rebuilt with gradient on the first training step after
        ``pre_epoch`` (and at every evaluation), the stored detached copy otherwise."""
        if not self.training:
            return self.item_graph(), None
        if self._rebuild or self._adj_item is None:
            adj = self.item_graph()
            self._adj_item = _csr(adj.detach())
            self._adj_item_t = _csr(adj.detach().t().coalesce())
            self._rebuild = False
            return adj, None  # torch's own backward: gradient into the values too
        return self._adj_item, self._adj_item_t

    # ---------------------------------------------------------------- forward and loss

    def collaborative(self) -> tuple[torch.Tensor, torch.Tensor]:
        """LightGCN layer mean over D^{-1} (A + I): ([n_users, d], [n_items, d])."""
        return self.graph.propagate(self.user_emb, self.item_emb, self.config.n_ui_layers)

    def semantic_items(self) -> torch.Tensor:
        """h = S^{n_mm_layers} I: [n_items, d]."""
        h = self.item_emb
        if self.config.n_mm_layers == 0:
            return h
        adj, adj_t = self._current_item_graph()
        for _ in range(self.config.n_mm_layers):
            h = sparse_mm(adj, h, adj_t)
        return h

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        user_out, item_out = self.collaborative()
        return user_out, item_out + F.normalize(self.semantic_items(), dim=1)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        user_out, item_out = self.forward()
        u = user_out[batch.user_idx]  # [B, d]
        pos, neg = item_out[batch.pos_idx], item_out[batch.neg_idx]  # [B, d]
        rank = bpr_loss((u * pos).sum(-1), (u * neg).sum(-1))
        reg = l2_batch(u, pos, neg)
        total = rank + self.config.reg_weight * reg
        return total, {"bpr": rank.detach(), "reg": reg.detach()}

    # ---------------------------------------------------------------- serving hooks

    @torch.no_grad()
    def items_from_features(
        self, features: dict[str, torch.Tensor], dataset: Dataset
    ) -> torch.Tensor:
        """Cold-start items: each new item joins the item graph S as a row of its own.

        Its row of every kNN part is built as the trained rows are, over the trained items and
        itself (it competes for its own list; ties go to the trained items), and normalised by
        its own row sum and the trained rows' unchanged ones (``knn_laplacian_join``):
            L[new]   from sum_m w_m A(P^m), P^m_new = W_m x^m_new + b_m (the features given;
                     the trained items' P^m from their fine-tuned features, as in S)
            O^m[new] from A(x^m) of the features as loaded
            S[new]   = (1 - lambda_coeff) L[new] + lambda_coeff sum_m w_m O^m[new]
        No trained row changes (no trained item gains a neighbour), so no existing score moves.
        With no interactions and no ID embedding, the new item's collaborative part E_i and its
        h^(0) are 0, so its vector is h / ||h||_2 with h = h^(n_mm_layers),
            h^(l)_new = sum_{j trained} S[new, j] h^(l-1)_j + S[new, new] h^(l-1)_new:
        the content part h_i / ||h_i|| of an item with these features (unit norm, as every
        trained item's). ``n_mm_layers=0`` has no content path (h = I: the scores never use
        the features). Shapes: features {m: [n_new, width_m]} -> [n_new, d]. Memory
        O(n_new x n_items); rebuilds S as an evaluation forward does.
        """
        if self.config.n_mm_layers == 0:
            raise NotImplementedError(
                "this lattice configuration has no content path (n_mm_layers=0: its scores "
                "never use the item features)"
            )
        device, k, lam = self.item_emb.device, self.config.knn_k, self.config.lambda_coeff
        new = {m: features[m].to(device, torch.float32) for m in self.modalities}
        w = self.modality_weights()
        idx, values = knn_laplacian_join(
            [self.project[m](new[m]) for m in self.modalities],
            [self.project[m](self.feature(m)) for m in self.modalities],
            k,
            w,
        )  # L[new]
        idx, values = [idx], [(1.0 - lam) * values]
        for n, m in enumerate(self.modalities):
            trained = torch.as_tensor(dataset.features[m], device=device)
            i, v = knn_laplacian_join([new[m]], [trained], k)  # O^m[new]
            idx.append(i)
            values.append(lam * w[n] * v)
        adj = self.item_graph()  # S of the trained items, as an evaluation forward builds it
        h = propagate_joined(
            torch.cat(idx, dim=1),
            torch.cat(values, dim=1),
            self.item_emb,
            self.config.n_mm_layers,
            partial(sparse_mm, adj),
        )
        return F.normalize(h, dim=1)  # + E_i, 0 for an item without interactions
