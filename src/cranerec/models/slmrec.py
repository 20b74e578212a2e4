"""SLMRec (Tao et al., IEEE TMM 2022): LightGCN branches for the IDs and every modality, fused by a
linear layer, trained with in-batch InfoNCE plus a fine-to-coarse self-supervised task (FAC).

"Self-supervised Learning for Multimedia Recommendation". The behaviour reproduced is MMRec's
implementation (``src/models/slmrec.py``, ``src/configs/model/SLMRec.yaml``); this file is written
from that description, not copied. Line numbers below are those of MMRec's ``slmrec.py``.

Reference name -> setting: ``recdim`` -> ``embedding_dim``; ``layer_num`` -> ``n_layers``;
``temp`` -> ``temperature`` (the main InfoNCE); ``ssl_temp`` -> ``ssl_temperature``;
``ssl_alpha`` -> ``ssl_weight``; ``weight_decay`` (SLMRec.yaml: 1e-4, Adam's, on every parameter)
-> ``train.weight_decay``. The reference's v_feat / (a_feat) / t_feat slots are the modalities
named in ``fac_order`` (see "Modalities" below). Read by the reference but not settings here:
``ssl_task`` is ``FAC``, the only task that runs in MMRec (the FD / FM / FD+FM branches read
``config["data.input.dataset"]``, which MMRec never sets, and the audio projection ``a_dense_emb``,
never built, so they fail); ``mm_fusion_mode`` is ``concat`` (``mean`` feeds d columns to the
fusion layers built for (K + 1) d and fails); ``init`` is ``xavier`` (``normal`` reads a table that
does not exist, line 388); ``adj_type`` is ``pre``, D^{-1/2} A D^{-1/2} (``UserItemGraph``'s
``sym``); ``dropout_rate`` is read by FD only; ``reg`` is in the yaml's grid and
``hyper_parameters`` but no code reads it (searching it repeats the same run).

Modalities (K of them, m_1..m_K, x^m the item features of modality m):
    the FAC chain follows ``fac_order`` (default image, audio, text: the paper's v, a, t), from the
    first of these names the dataset has to the last; a name between them that the dataset lacks
    is a chain step without a loss (MMRec on Amazon, image + text: its iv -> iva step, whose audio
    loss is commented out, lines 284-292); the dataset's modalities not in ``fac_order`` follow in
    the dataset's order. The branches of the fusion come in the same order, after the ID branch
    (image, text on Amazon: the reference's [i, v, t]).
Forward (lines 73-118, 380-432):
    P^m = W_m (x^m / ||x^m||) + b_m                 features L2-normalised once, then projected
    [u^0 ; i^0]   = mean_{l = 0..n_layers} Ahat^l [U ; I]        (ID branch, LightGCN)
    [u^m ; i^m]   = mean_{l = 0..n_layers} Ahat^l [U ; P^m]      (one branch per modality, the
                                                                  same user table U in each)
    user = F_u [u^0, u^1, ..., u^K] + c_u,  item = F_i [i^0, i^1, ..., i^K] + c_i
    score = user . item       (the reference returns sigmoid(score): the same ranking)
    The branches propagate as one [U + I, (K + 1) d] matrix (columns never mix in Ahat).
Loss per batch of (user, positive item) pairs (no negatives; lines 332-337, 369-378, 278-305):
    L_main = mean_b -log softmax_b'( cos(user_b, item_b') / temperature )[b]   (``info_nce``)
    FAC over the batch's positive items (rows as drawn, duplicates included):
        c_0 = i^0;  for each chain level l = 1..n:  c_l = G_l c_{l-1} + g_l
                    (G_l: d -> d, the last level d -> d / 2)
        a level with modality m adds
            L_m = mean_b -log softmax_b'( c_l,b . z_b' / ssl_temperature )[b],
            z = H_m i^m + h_m (d -> the level's width)      raw inner products, no cosine
                                                            (``inner_product_nce``)
    L = L_main + ssl_weight * sum_m L_m;  Adam's weight decay (1e-4) is the only L2.
    With image + text this is the reference's v_loss + t_loss: c_1 = g_i_iv(i^0) against
    g_v_iv(i^v), c_2 = g_iv_iva(c_1) (no loss), c_3 = g_iva_ivat(c_2) against g_t_ivat(i^t).
Other reference behaviours kept: Xavier-uniform ID tables, projections, fusion layers and FAC
layers (weights; biases PyTorch's default); the features fixed (plain tensors in the reference).

Deviations (none changes the model on the reference's data):
- any number of named modalities (the chain rule above) where the reference needs exactly
  v_feat and t_feat (with one of them missing its ``compute`` fails); the audio FAC layer
  ``g_a_iva``, built by the reference but never used (its loss is commented out), is not built
  (only a modality named ``audio`` makes that level, with its loss);
- evaluation scores the current parameters; the reference's ``full_sort_predict`` reuses the
  vectors its last training step computed, one optimiser step old;
- the symmetric normalisation without the reference's +1e-8 on the degrees.

Cold start (``items_from_features``): an item without training edges is an isolated node, so its
branches keep layer 0 only, i^m = P^m / (n_layers + 1), and with no ID row i^0 = 0.

Shapes: ``forward() -> ([n_users, d], [n_items, d])``; the branches are [n, (K + 1) d].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.graph import UserItemGraph
from cranerec.models.base import Batch, Model, feature_projections, xavier_embedding
from cranerec.models.presets import MMREC_TRAIN
from cranerec.models.registry import register
from cranerec.nn.item_features import ItemFeatures
from cranerec.nn.losses import info_nce, inner_product_nce


@dataclass(frozen=True)
class SLMRecConfig(Settings):
    """SLMRec settings (see the module docstring for the reference's names)."""

    embedding_dim: int = 64  # recdim
    n_layers: int = 3  # layer_num
    temperature: float = 0.2  # temp: the main InfoNCE
    ssl_temperature: float = 0.1  # ssl_temp: the FAC InfoNCE terms
    ssl_weight: float = 0.01  # ssl_alpha
    #: The FAC chain's order of modality names, fine to coarse (the paper's v, a, t).
    fac_order: list[str] = field(default_factory=lambda: ["image", "audio", "text"])

    def validate(self) -> None:
        if self.embedding_dim < 2:
            raise ConfigError(
                f"embedding_dim must be >= 2 (the last FAC level is embedding_dim // 2 wide), "
                f"got {self.embedding_dim}"
            )
        if self.n_layers < 0:
            raise ConfigError(f"n_layers must be >= 0, got {self.n_layers}")
        if len(set(self.fac_order)) != len(self.fac_order):
            raise ConfigError(f"fac_order names a modality twice: {self.fac_order}")


#: SLMRec.yaml's point: recdim 64, layer_num 3, temp 0.2, and the first value of each searched
#: list (ssl_alpha 0.01, ssl_temp 0.1, learning_rate 1e-4: the paper reports no Amazon setting),
#: with its Adam weight decay 1e-4 and MMRec's overall training settings.
SLMREC_POINT = {
    "embedding_dim": 64, "n_layers": 3, "temperature": 0.2, "ssl_temperature": 0.1,
    "ssl_weight": 0.01, "fac_order": ["image", "audio", "text"],
}  # fmt: skip
SLMREC_TRAIN = {**MMREC_TRAIN, "lr": 1e-4, "weight_decay": 1e-4}


def fac_levels(order: list[str], modalities: list[str]) -> list[str | None]:
    """The FAC chain's levels: the names of ``order`` from the first to the last that
    ``modalities`` has (one it lacks: None, a step without a loss), then the other modalities
    in their order."""
    present = [i for i, name in enumerate(order) if name in modalities]
    chain = order[present[0] : present[-1] + 1] if present else []
    levels = [name if name in modalities else None for name in chain]
    return levels + [m for m in modalities if m not in order]


@register
class SLMRec(Model):
    """SLMRec: LightGCN over the IDs and over each modality's projected features, a linear
    fusion of the branches, in-batch InfoNCE and the fine-to-coarse (FAC) InfoNCE chain."""

    name = "slmrec"
    Config = SLMRecConfig
    batch_kind = "positives"
    min_modalities = 1
    presets = {"reference": {"model": {**SLMREC_POINT}, "train": {**SLMREC_TRAIN}}}

    def __init__(self, dataset: Dataset, config: SLMRecConfig) -> None:
        super().__init__(dataset, config)
        d = config.embedding_dim
        self.user_emb = xavier_embedding(self.n_users, d)
        self.item_emb = xavier_embedding(self.n_items, d)
        self.graph = UserItemGraph(dataset.train)  # D^{-1/2} A D^{-1/2}

        # FAC levels; the modalities (the fusion's branches) in the same order.
        self.levels = fac_levels(list(config.fac_order), dataset.modalities)
        self.modalities = [m for m in self.levels if m is not None]
        self.features = ItemFeatures(dataset.features, self.modalities, normalize="l2")
        self.project = feature_projections(dataset.features, self.modalities, d)  # v/t_dense
        width = (len(self.modalities) + 1) * d
        self.fuse_user = nn.Linear(width, d)  # embedding_user_after_GCN
        self.fuse_item = nn.Linear(width, d)  # embedding_item_after_GCN
        widths = [d] * (len(self.levels) - 1) + [d // 2]
        self.fac_chain = nn.ModuleList(nn.Linear(d, w) for w in widths)  # g_i_iv, g_iv_iva, ...
        self.fac_head = nn.ModuleDict(
            {m: nn.Linear(d, w) for m, w in zip(self.levels, widths, strict=True) if m}
        )  # g_v_iv, g_t_ivat, ...
        layers = [*self.project.values(), self.fuse_user, self.fuse_item, *self.fac_chain]
        for layer in [*layers, *self.fac_head.values()]:
            nn.init.xavier_uniform_(layer.weight)

    # ---------------------------------------------------------------- forward

    def branches(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The propagated branches ([u^0, u^1..u^K] [n_users, (K+1) d], [i^0, ...] [n_items,
        (K+1) d]): one LightGCN pass over the ID and projected-feature columns side by side."""
        projected = [self.project[m](self.features[m]) for m in self.modalities]  # P^m
        items = torch.cat([self.item_emb, *projected], dim=1)
        users = self.user_emb.repeat(1, len(self.modalities) + 1)  # the same U in every branch
        return self.graph.propagate(users, items, self.config.n_layers)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.branches()
        return self.fuse_user(users), self.fuse_item(items)

    def fac(self, item_rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The FAC InfoNCE term of each modality level, from the batch's branch rows
        [B, (K+1) d]: {modality: L_m}."""
        id_part, *parts = item_rows.split(self.config.embedding_dim, dim=1)
        branch = dict(zip(self.modalities, parts, strict=True))
        c, out = id_part, {}
        for level, layer in zip(self.levels, self.fac_chain, strict=True):
            c = layer(c)
            if level is not None:
                z = self.fac_head[level](branch[level])
                out[level] = inner_product_nce(c, z, self.config.ssl_temperature)
        return out

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The batch's negatives, if any, are not used."""
        users, items = self.branches()
        u = self.fuse_user(users[batch.user_idx])  # [B, d]
        pos_rows = items[batch.pos_idx]  # [B, (K+1) d]
        main = info_nce(u, self.fuse_item(pos_rows), self.config.temperature)
        total, parts = main, {"infonce": main.detach()}
        for m, term in self.fac(pos_rows).items():
            term = self.config.ssl_weight * term
            total = total + term
            parts[f"fac_{m}"] = term.detach()
        return total, parts

    # ---------------------------------------------------------------- serving hooks

    @torch.no_grad()
    def items_from_features(
        self, features: dict[str, torch.Tensor], dataset: Dataset
    ) -> torch.Tensor:
        """Cold-start items: the vector the model gives an item with these features and no
        training interactions.

        Such an item is an isolated node of the user-item graph (its rows of Ahat are 0), so
        each branch keeps its layer 0 alone in the layer mean: i^m = P^m / (n_layers + 1),
        P^m = W_m (x^m / ||x^m||) + b_m; with no ID row its ID branch i^0 is 0. Its vector is
        F_i [0, i^1, ..., i^K] + c_i, exactly what ``forward`` gives a trained item whose training
        column is empty and whose ID row is 0. Nothing trained changes (the new items join no
        graph, the users' vectors do not read them), so no existing score moves. A trained item
        passed in as new does not get its own vector back (that one carries its ID and its
        neighbours). Shapes: features {m: [n_new, width_m]} -> [n_new, d].
        """
        device, d = self.item_emb.device, self.config.embedding_dim
        scale = 1.0 / (self.config.n_layers + 1)
        first = next(iter(features.values()))
        parts = [torch.zeros(first.shape[0], d, device=device)]  # i^0: no ID row
        for m in self.modalities:
            x = F.normalize(features[m].to(device, torch.float32), dim=1)
            parts.append(scale * self.project[m](x))
        return self.fuse_item(torch.cat(parts, dim=1))
