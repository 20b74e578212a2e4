"""BM3 (Zhou et al., WWW 2023), "Bootstrap Latent Representations for Multi-modal
Recommendation", as MMRec runs it: no negatives; an online view is pulled towards a
dropout-perturbed, gradient-stopped copy of the representations (the target view).

Paper symbol -> parameter: d -> ``embedding_dim``; L -> ``n_layers``; p (dropout ratio) ->
``dropout``; lambda_c -> ``cl_weight``; lambda -> ``reg_weight``; f_p -> ``predictor``;
f_m (the per-modality projections) -> ``project[m]``.

Forward:
    [H_u ; H_i'] = mean_{k=0..L} Ahat^k [E_u ; E_i]     LightGCN, Ahat = D^{-1/2} A D^{-1/2}
    h_u = H_u,  h_i = H_i' + e_i                         (the item ID embedding added again)
    z_i^m = f_m(x_i^m) = W_m x_i^m + b_m                 per modality, x^m the feature table
    score y_ui = f_p(h_u) . f_p(h_i),  f_p(x) = W_p x + b_p
Loss per batch of (user, positive item) pairs, with sg = stop-gradient and
drop = dropout with ratio p (always on: it makes the target view), c = cosine similarity:
    h~_u = drop(sg(h_u)),  h~_i = drop(sg(h_i)),  z~_i^m = drop(sg(z_i^m))
    L_graph = (1 - mean c(f_p(h_u), h~_i)) + (1 - mean c(f_p(h_i), h~_u))
    L_inter = sum_m (1 - mean c(f_p(z_i^m), h~_i))        modality -> ID target
    L_intra = sum_m (1 - mean c(f_p(z_i^m), z~_i^m))      modality -> its own target
    L = L_graph + cl_weight * (L_inter + L_intra) + reg_weight * (|h_U|_F + |h_I|_F) / n_items
where h_U [n_users, d] and h_I [n_items, d] are the FULL tables of h_u and h_i and |.|_F is the
Frobenius norm, not squared (MMRec's ``EmbLoss`` divides by the rows of its last argument).

Reference behaviours reproduced (MMRec ``src/models/bm3.py``, configs/model/BM3.yaml):
- LightGCN mean over layers 0..L of the symmetric normalised graph, item ID added after it
  (L58-95); IDs Xavier-uniform (L41-42);
- one predictor shared by IDs and modalities, Xavier-normal weight, default bias (L44-47, L121,
  L131, L137); projections Linear with Xavier-normal weight (L51-56);
- the feature tables are trainable (``Embedding.from_pretrained(freeze=False)``, L50, L54):
  ``tune_features=True``;
- targets: detached copies with ``F.dropout`` in its default training mode (L106-119); losses as
  above (L129-147); scores through the predictor (L149-154); batches of (user, item) with no
  negatives (``use_neg_sampling: False``);
- reference point n_layers 1, dropout 0.5, reg_weight 0.01, cl_weight 2.0: the Sports row of the
  authors' best settings (enoche/BM3 README), which also gives presets ``baby`` and ``elec``.

Deviations:
- the target dropout is drawn for the batch's rows, not for the full tables before indexing: a
  user or item repeated in a batch gets independent masks (the reference shares one); the
  modality projections are computed for the batch's items only (the same values and gradients);
- any number of named modalities (MMRec: text and/or image), summed in L_inter and L_intra;
- the symmetric normalisation without MMRec's +1e-7 on the degrees (relative difference 1e-7).

Shapes: ``forward() -> ([n_users, d], [n_items, d])`` (after the predictor).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.graph import UserItemGraph
from cranerec.models.base import (
    Batch,
    Model,
    feature_projections,
    xavier_embedding,
)
from cranerec.models.registry import register
from cranerec.nn.item_features import ItemFeatures
from cranerec.nn.losses import frobenius_reg


@dataclass(frozen=True)
class BM3Config(Settings):
    """BM3 settings (see the module docstring for the paper symbols)."""

    embedding_dim: int = 64
    n_layers: int = 1
    dropout: float = 0.5
    cl_weight: float = 2.0
    reg_weight: float = 0.01
    tune_features: bool = True  # the feature tables are trained, as in MMRec

    def validate(self) -> None:
        if self.embedding_dim < 1 or self.n_layers < 0:
            raise ConfigError("embedding_dim must be >= 1 and n_layers >= 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


_TRAIN = {"lr": 1e-3, "batch_size": 2048, "epochs": 1000, "patience": 20}  # MMRec's defaults


def _preset(n_layers: int, dropout: float, reg_weight: float) -> dict:
    model = {"n_layers": n_layers, "dropout": dropout, "reg_weight": reg_weight}
    return {"model": {"embedding_dim": 64, "cl_weight": 2.0, **model}, "train": dict(_TRAIN)}


@register
class BM3(Model):
    """Self-supervised: online views predict dropout-perturbed, gradient-stopped targets."""

    name = "bm3"
    Config = BM3Config
    batch_kind = "positives"
    min_modalities = 1
    presets = {  # the authors' best settings (enoche/BM3 README, Table III of the paper)
        "reference": _preset(1, 0.5, 0.01),
        "baby": _preset(1, 0.5, 0.1),
        "sports": _preset(1, 0.5, 0.01),
        "elec": _preset(2, 0.3, 0.1),
    }

    def __init__(self, dataset: Dataset, config: BM3Config) -> None:
        super().__init__(dataset, config)
        d = config.embedding_dim
        self.user_emb = xavier_embedding(self.n_users, d)
        self.item_emb = xavier_embedding(self.n_items, d)
        self.graph = UserItemGraph(dataset.train)  # D^{-1/2} A D^{-1/2}
        self.predictor = nn.Linear(d, d)  # f_p
        nn.init.xavier_normal_(self.predictor.weight)
        self.modalities = dataset.modalities
        self.features = ItemFeatures(
            dataset.features, self.modalities, trainable=config.tune_features
        )
        self.project = feature_projections(dataset.features, self.modalities, d)  # f_m
        for layer in self.project.values():
            nn.init.xavier_normal_(layer.weight)

    def feature_table(self, modality: str) -> torch.Tensor:
        """The item feature table [n_items, width] of ``modality`` (trained or fixed)."""
        return self.features[modality]

    def encode(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(h_u [n_users, d], h_i [n_items, d]): the graph's outputs before the predictor."""
        users, items = self.graph.propagate(self.user_emb, self.item_emb, self.config.n_layers)
        return users, items + self.item_emb

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        user_h, item_h = self.encode()
        return self.predictor(user_h), self.predictor(item_h)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The batch's negatives, if any, are not used."""
        user_h, item_h = self.encode()
        reg = self.config.reg_weight * frobenius_reg(user_h, item_h)
        u, i = user_h[batch.user_idx], item_h[batch.pos_idx]  # [B, d]
        p = self.config.dropout
        u_target = F.dropout(u.detach(), p, training=True)
        i_target = F.dropout(i.detach(), p, training=True)
        graph = _distance(self.predictor(u), i_target) + _distance(self.predictor(i), u_target)
        inter = intra = u.new_zeros(())
        for m in self.modalities:
            z = self.project[m](self.feature_table(m)[batch.pos_idx])  # [B, d]
            z_online = self.predictor(z)
            inter = inter + _distance(z_online, i_target)
            intra = intra + _distance(z_online, F.dropout(z.detach(), p, training=True))
        inter, intra = self.config.cl_weight * inter, self.config.cl_weight * intra
        parts = {"graph": graph, "inter": inter, "intra": intra, "reg": reg}
        return graph + inter + intra + reg, {k: v.detach() for k, v in parts.items()}

    # ---------------------------------------------------------------- serving hooks

    @torch.no_grad()
    def items_from_features(
        self, features: dict[str, torch.Tensor], dataset: Dataset
    ) -> torch.Tensor:
        """Cold-start items: h predicted from the modalities, then the item's usual predictor.

        The scores use no features: an item's vector is f_p(h_i), h_i from its ID and the graph.
        What the features predict is h_i's direction: L_inter trains f_p(z_i^m), z_i^m =
        f_m(x_i^m), to point where h_i does (a cosine, so no length). For a new item
            hhat = r * unit(sum_m unit(f_p(f_m(x^m))))     (each modality's prediction counts
                                                           equally, as in L_inter)
            r    = the mean ||h_i|| of the trained items   (the length cosines leave free)
        and its vector is f_p(hhat), in the space of the trained f_p(h_i). A trained item passed
        in with its own features gets hhat, the modality branch's estimate of its h_i (the
        target of L_inter), at the trained items' mean length. The trained vectors are not
        touched, so no existing score moves. Shapes: features {m: [n_new, width_m]} ->
        [n_new, d].
        """
        device = self.item_emb.device
        direction = sum(
            F.normalize(
                self.predictor(self.project[m](features[m].to(device, torch.float32))), dim=1
            )
            for m in self.modalities
        )  # [n_new, d]
        _, item_h = self.encode()
        hhat = item_h.norm(dim=1).mean() * F.normalize(direction, dim=1)
        return self.predictor(hhat)


def _distance(online: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - the mean cosine similarity of matching rows."""
    return 1 - F.cosine_similarity(online, target, dim=-1).mean()
