"""MMGCN (Wei et al., ACM MM 2019) as MMRec runs it: one user-item graph network per modality,
each mixing the modality's features with shared ID embeddings, fused by averaging.

Paper symbol -> parameter: d -> ``embedding_dim``; L -> ``n_layers``; the visual latent width
(256 in the code) -> ``latent_dim``; lambda -> ``reg_weight``.

Forward, for each modality m (shared: ID embeddings u_id, i_id, stacked as E_id [U + I, d]):
    x^(0) = l2-normalised rows of [P_m ; MLP_m(F_m)]          P_m: users' preference vectors
          ([P_m ; F_m], raw features, for modalities not in ``mlp_modalities``)  [U + I, w_m]
    for l = 1..L (w = w_m at l = 1, d after):
        h^(l)    = LeakyReLU(A_mean x^(l-1) W1_l)              aggregation     W1_l: [w, w]
        xhat^(l) = LeakyReLU(x^(l-1) W2_l + b2_l) + E_id        ID injection    W2_l: [w, d]
        x^(l)    = LeakyReLU([h^(l) ; xhat^(l)] W3_l + b3_l)    concatenation   W3_l: [w + d, d]
    A_mean = D^{-1} A, the training graph with both edge directions and no self-loops: each node
    takes the mean of its neighbours (a node without neighbours gets h = 0).
Fusion and score: [U* ; I*] = mean_m x_m^(L) (``fusion="sum"``: the paper's sum); y_ui = u* . i*.
Loss per batch of triples: mean(-log sigmoid(y_ui - y_uj)) + reg_weight * R,
    R = mean over the [2B, d] entries of E_id[u]^2 + E_id[i or j]^2 (each user once with its
        positive, once with its negative) + sum_m mean(P_m^2).

Reference behaviours reproduced (MMRec ``src/models/mmgcn.py``):
- three graph layers whatever ``n_layers`` says: its GCN hard-codes conv_embed_1..3 and ignores
  num_layer (L150-186), hence ``n_layers=3`` here;
- concatenation combination: ``self.concate = 'False'`` is a non-empty string, so truthy, so every
  ``if self.concate`` takes the concatenation branch (L33, L134, L154, L161, L173-185);
- mean aggregation over the edge list in both directions, no self-loops, no normalisation
  weights (L32, L42, ``BaseModel`` L191-213: message x_j, aggr 'mean'; ``normalize`` unused);
- image features through a Linear to 256 first, text raw (L46-52, L125-148), rows of
  [preference ; features] l2-normalised (L167-168), LeakyReLU slope 0.01 throughout;
- ID embeddings shared by the modalities and added after each layer's linear map (L171, L55);
- fusion by the mean over modalities (L74), BPR on the fused vectors (L84-92);
- the ID embeddings and the preference vectors are plain tensors, not ``nn.Parameter`` (L55,
  L126, L139), so the optimiser never updates them: they stay at their random start (the
  authors' code does the same); ``freeze_embeddings=True`` keeps that, as buffers saved with the
  weights. The regularisation term therefore has no gradient in the reference (L93-96);
- initialisation: W1 and W2 Xavier-normal, W3 Xavier-normal at layer 1 only (layers 2-3 keep
  torch's default, L136 vs L154-162), IDs and preferences Xavier-normal, the MLP torch's default.

Deviations:
- ``n_layers`` is honoured (layers 2..L as layers 2-3 of the reference) and modalities are any
  named ones: those in ``mlp_modalities`` (names absent from the data are ignored) get the MLP;
- ``freeze_embeddings=False`` learns the ID embeddings and preferences (the paper's intent);
- R regularises every modality's preferences (MMRec: the visual one only; no effect when frozen);
- BPR as softplus (MMRec: -log sigmoid, which overflows to inf for a large negative margin).

Shapes: ``forward() -> ([n_users, d], [n_items, d])``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.graph import bipartite_adjacency, normalize_adjacency, sparse_mm, to_torch_sparse
from cranerec.models.base import Batch, Model
from cranerec.models.registry import register
from cranerec.nn.item_features import ItemFeatures
from cranerec.nn.losses import bpr_loss


@dataclass(frozen=True)
class MMGCNConfig(Settings):
    """MMGCN settings (see the module docstring for the paper symbols and the reference)."""

    embedding_dim: int = 64
    n_layers: int = 3  # the reference's effective depth (its n_layers: 2 is ignored)
    latent_dim: int = 256
    mlp_modalities: list[str] = field(default_factory=lambda: ["image"])
    fusion: Literal["mean", "sum"] = "mean"  # mean: MMRec; sum: the paper
    freeze_embeddings: bool = True  # MMRec and the authors' code never train them
    reg_weight: float = 1e-4

    def validate(self) -> None:
        if min(self.embedding_dim, self.n_layers, self.latent_dim) < 1:
            raise ConfigError("embedding_dim, n_layers and latent_dim must be >= 1")


#: MMRec's setting: its MMGCN.yaml (embedding 64, reg_weight 1e-4 from the grid; the n_layers it
#: lists has no effect) and its overall training defaults.
REFERENCE = {
    "model": {"embedding_dim": 64, "n_layers": 3, "latent_dim": 256, "mlp_modalities": ["image"],
              "fusion": "mean", "freeze_embeddings": True, "reg_weight": 1e-4},
    "train": {"lr": 1e-3, "batch_size": 2048, "epochs": 1000, "patience": 20,
              "negative_pool": "seen"},
}  # fmt: skip


def _embedding(n: int, dim: int, trainable: bool) -> torch.Tensor:
    """An [n, dim] Xavier-normal table: a parameter, or a plain tensor to keep as a buffer."""
    table = nn.init.xavier_normal_(torch.empty(n, dim))
    return nn.Parameter(table) if trainable else table


class ModalityGCN(nn.Module):
    """One modality's layers (aggregation, ID injection, concatenation), graph passed in."""

    def __init__(self, n_users: int, in_width: int, config: MMGCNConfig, mlp: bool) -> None:
        super().__init__()
        d = config.embedding_dim
        self.mlp = nn.Linear(in_width, config.latent_dim) if mlp else None
        width = config.latent_dim if mlp else in_width  # w_m
        preference = _embedding(n_users, width, not config.freeze_embeddings)
        if config.freeze_embeddings:
            self.register_buffer("preference", preference)
        else:
            self.preference = preference
        widths = [width] + [d] * (config.n_layers - 1)  # input width of each layer
        self.aggregate = nn.ParameterList(
            nn.Parameter(nn.init.xavier_normal_(torch.empty(w, w))) for w in widths
        )  # W1
        self.inject = nn.ModuleList(nn.Linear(w, d) for w in widths)  # W2, b2
        self.combine = nn.ModuleList(nn.Linear(w + d, d) for w in widths)  # W3, b3
        for layer in self.inject:
            nn.init.xavier_normal_(layer.weight)
        nn.init.xavier_normal_(self.combine[0].weight)  # the reference re-initialises only this one

    def forward(
        self, adj: torch.Tensor, adj_t: torch.Tensor, features: torch.Tensor, id_emb: torch.Tensor
    ) -> torch.Tensor:
        """Layer-L representations [U + I, d] of every user and item."""
        items = self.mlp(features) if self.mlp is not None else features  # [I, w]
        x = F.normalize(torch.cat([self.preference, items]), dim=1)  # [U + I, w]
        return self._layers(x, id_emb, lambda y: sparse_mm(adj, y, adj_t))

    def isolated_items(self, features: torch.Tensor) -> torch.Tensor:
        """Layer-L representations [n, d] of items with these features [n, width], no edges
        and a zero ID embedding (cold start): at every layer h = 0 (the mean over no
        neighbours, as for a trained node without edges) and xhat = LeakyReLU(x W2 + b2)."""
        x = F.normalize(self.mlp(features) if self.mlp is not None else features, dim=1)
        return self._layers(x, None, None)

    def _layers(
        self,
        x: torch.Tensor,
        id_emb: torch.Tensor | None,
        aggregate: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> torch.Tensor:
        """The L layers from x^(0) [n, w]: ``aggregate(y) = A_mean y`` (None: no edges, h = 0),
        ``id_emb`` [n, d] the rows' ID embeddings (None: 0)."""
        for w1, w2, w3 in zip(self.aggregate, self.inject, self.combine, strict=True):
            h = torch.zeros_like(x) if aggregate is None else F.leaky_relu(aggregate(x @ w1))
            x_hat = F.leaky_relu(w2(x))  # [n, d]
            if id_emb is not None:
                x_hat = x_hat + id_emb
            x = F.leaky_relu(w3(torch.cat([h, x_hat], dim=1)))  # [n, d]
        return x


@register
class MMGCN(Model):
    """Per-modality graph networks over the user-item graph, fused by their mean."""

    name = "mmgcn"
    Config = MMGCNConfig
    min_modalities = 1
    presets = {"reference": REFERENCE}

    def __init__(self, dataset: Dataset, config: MMGCNConfig) -> None:
        super().__init__(dataset, config)
        id_emb = _embedding(self.n_users + self.n_items, config.embedding_dim,
                            not config.freeze_embeddings)  # fmt: skip
        if config.freeze_embeddings:
            self.register_buffer("id_emb", id_emb)  # [U + I, d], users first
        else:
            self.id_emb = id_emb
        adj = normalize_adjacency(bipartite_adjacency(dataset.train), "row")  # D^-1 A
        self.register_buffer("adj_mean", to_torch_sparse(adj), persistent=False)
        self.register_buffer("adj_mean_t", to_torch_sparse(adj.T), persistent=False)
        self.modalities = dataset.modalities
        self.features = ItemFeatures(dataset.features, self.modalities)
        self.gcn = nn.ModuleDict({
            m: ModalityGCN(self.n_users, dataset.features[m].shape[1], config,
                           mlp=m in config.mlp_modalities)
            for m in self.modalities
        })  # fmt: skip

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        reps = [
            self.gcn[m](self.adj_mean, self.adj_mean_t, self.features[m], self.id_emb)
            for m in self.modalities
        ]
        out = torch.stack(reps).sum(0)  # [U + I, d]
        if self.config.fusion == "mean":
            out = out / len(reps)
        return out[: self.n_users], out[self.n_users :]

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        user_out, item_out = self.forward()
        u, i, j = user_out[batch.user_idx], item_out[batch.pos_idx], item_out[batch.neg_idx]
        rank = bpr_loss((u * i).sum(-1), (u * j).sum(-1))
        id_u = self.id_emb[batch.user_idx]  # [B, d]
        id_i = self.id_emb[self.n_users + batch.pos_idx]
        id_j = self.id_emb[self.n_users + batch.neg_idx]
        # Each user counted twice (with i and with j) over 2B rows, as the reference does.
        reg = id_u.pow(2).mean() + 0.5 * (id_i.pow(2).mean() + id_j.pow(2).mean())
        reg = reg + sum(self.gcn[m].preference.pow(2).mean() for m in self.modalities)
        reg = self.config.reg_weight * reg
        return rank + reg, {"bpr": rank.detach(), "reg": reg.detach()}

    # ---------------------------------------------------------------- serving hooks

    @torch.no_grad()
    def items_from_features(
        self, features: dict[str, torch.Tensor], dataset: Dataset
    ) -> torch.Tensor:
        """Cold-start items: MMGCN's own equations for an item node with no edges.

        Per modality m, x^(0) = l2-normalised MLP_m(f^m) (f^m raw for modalities without the
        MLP), then for l = 1..L: h^(l) = 0 (the mean over no neighbours, as for any node
        without edges), xhat^(l) = LeakyReLU(x^(l-1) W2_l + b2_l) + 0 (the item has no ID
        embedding: 0; with the reference's frozen random table, its distribution's mean),
        x^(l) = LeakyReLU([0 ; xhat^(l)] W3_l + b3_l); the vector is the fusion (mean, or sum)
        of the x_m^(L). No edge reaches a trained node, so no existing score moves. A trained
        item without training interactions whose ID row is 0 gets exactly this vector from its
        own features; an item with interactions also receives graph messages, which a new item
        lacks. Shapes: features {m: [n_new, width_m]} -> [n_new, d].
        """
        device = self.adj_mean.device
        reps = [
            self.gcn[m].isolated_items(features[m].to(device, torch.float32))
            for m in self.modalities
        ]
        out = torch.stack(reps).sum(0)  # [n_new, d]
        return out / len(reps) if self.config.fusion == "mean" else out
