"""LGMRec (Guo et al., AAAI 2024): local embeddings from the user-item graph (IDs, and each
modality's projected features) plus global embeddings from a per-modality hypergraph of learned
hyperedges, contrasted across modalities.

"LGMRec: Local and Global Graph Learning for Multimodal Recommendation". The behaviour reproduced
is MMRec's implementation (``src/models/lgmrec.py``, ``src/configs/model/LGMRec.yaml``); this file
is written from that description, not copied. Line numbers below are those of MMRec's
``lgmrec.py``.

Reference name -> setting: ``embedding_size`` / ``feat_embed_dim`` -> ``embedding_dim`` (they
must be equal: the modality embeddings are added to the ID ones); ``n_hyper_layer`` ->
``n_hyper_layers``; ``hyper_num`` -> ``n_hyperedges``; ``tau`` (a constant 0.2 in the reference,
line 33, used by the Gumbel softmax and the contrast) -> ``temperature``; ``n_ui_layers``,
``n_mm_layers``, ``keep_rate``, ``alpha``, ``cl_weight``, ``reg_weight`` keep their names.
``cf_model`` is ``lightgcn`` (its ``mf`` is ``n_ui_layers=0``: the layer mean of layer 0 alone is
the ID table). The reference's v_feat slot is the modality named ``image_modality`` (first in
the order; the others follow in the dataset's order).

Graphs: Ahat = D^{-1/2} A D^{-1/2} of the user-item graph (lines 70-87); R [U, I] the binary
training interactions. K modalities, x^m the fixed raw features of modality m.
Forward (lines 89-151, 201-213):
    local, collaborative:  [E_u ; E_i] = mean_{l = 0..n_ui_layers} Ahat^l [U ; I]     (LightGCN)
    local, modality m:     F^m_i = x^m W^m (no bias),  F^m_u = mean of the user's items' F^m_i
                           [M^m_u ; M^m_i] = Ahat^{n_mm_layers} [F^m_u ; F^m_i]   (the last layer)
    local:                 L = [E_u ; E_i] + sum_m normalize(M^m)           (rows to unit length)
    hyperedges, modality m (``n_hyperedges`` = h of them):
                           H^m_i = gumbel_softmax(x^m V^m, temperature)     [I, h]
                           H^m_u = gumbel_softmax(R (x^m V^m), temperature) [U, h]
                           (soft Gumbel samples over the h hyperedges of each row; the user's
                           logits are the sum of their items' logits)
    global, modality m:    with dropout (1 - keep_rate) on H^m_i and H^m_u (training only),
                           G^(0) = E_i;  for l = 1..n_hyper_layers:
                               Lambda^(l) = (H^m_i)^T G^(l-1)   [h, d],  G^(l) = H^m_i Lambda^(l)
                           Gamma^m = [H^m_u Lambda^(n) ; G^(n)]      (the last layer)
    all = L + alpha * normalize(sum_m Gamma^m);   score = user . item
Loss per batch of (u, i, j) triples (lines 153-194):
    BPR(all_u, all_i, all_j)                                         (mean over the batch)
    + cl_weight * sum over the pairs (a, b) of modalities, a before b, of
          sum_{u in batch}     -log softmax_{v in all users}( c(Gamma^a_u, Gamma^b_v) / tau )[u]
        + sum_{i in batch pos} -log softmax_{k in all items}( c(Gamma^a_i, Gamma^b_k) / tau )[i]
      (c the cosine; SUMMED over the batch, not averaged: ``info_nce_table(..., "sum")``;
      with image and text the one pair is (image, text): image anchors, text candidates)
    + reg_weight * (||all_u||_F + ||all_i||_F + ||all_j||_F) / B   (the batch rows; norms not
      squared: ``frobenius_reg``). No weight decay.
Other reference behaviours kept: Xavier-uniform ID tables and W^m, V^m; fixed raw features
(``from_pretrained(freeze=True)``), not normalised; the modality user rows F^m_u averaged by the
user's degree (a user without items: 0); the last layer, not a layer mean, for M^m and Gamma^m.

Deviations:
- evaluation (``eval()``) uses the noise-free H = softmax(logits / temperature) and no dropout;
  the reference's ``full_sort_predict`` draws Gumbel noise at every evaluation too
  (``F.gumbel_softmax`` has no evaluation mode), so its scores change from call to call;
- any number of modalities: every modality's M^m and Gamma^m are summed and every ordered pair
  (a, b), a before b in the order above, is contrasted (the reference: image and text, one pair;
  with fewer than two modalities its ``forward`` fails, lines 128-151). One modality: no pair,
  so no contrast term (its hyperedges are still trained through the scores);
- the symmetric normalisation without the reference's +1e-7 on the degrees;
- the contrast computed with a log-softmax (the same values, without the reference's exp
  overflow for a temperature far below 0.2).

Cold start (``items_from_features``): see its docstring; the hyperedges carry the content.

Shapes: ``forward() -> ([n_users, d], [n_items, d])``; H^m_i [n_items, h], H^m_u [n_users, h].
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.graph import UserItemGraph, sparse_mm
from cranerec.models.base import Batch, Model, image_first, xavier_embedding
from cranerec.models.presets import MMREC_TRAIN
from cranerec.models.registry import register
from cranerec.nn.item_features import ItemFeatures
from cranerec.nn.losses import bpr_loss, frobenius_reg, info_nce_table
from cranerec.nn.profiles import MeanProfile, SumProfile


@dataclass(frozen=True)
class LGMRecConfig(Settings):
    """LGMRec settings (see the module docstring for the reference's names)."""

    embedding_dim: int = 64  # embedding_size = feat_embed_dim
    n_ui_layers: int = 2
    n_mm_layers: int = 2
    n_hyper_layers: int = 1  # n_hyper_layer
    n_hyperedges: int = 4  # hyper_num
    keep_rate: float = 0.5  # of the hyperedge assignments (dropout 1 - keep_rate)
    alpha: float = 0.3  # weight of the global (hypergraph) embeddings
    cl_weight: float = 1e-4
    reg_weight: float = 1e-6
    temperature: float = 0.2  # tau: the Gumbel softmax and the contrast
    image_modality: str = "image"  # the reference's v_feat: first (the contrast's anchor)

    def validate(self) -> None:
        if self.n_hyper_layers < 1 or self.n_hyperedges < 1:
            raise ConfigError(
                f"n_hyper_layers and n_hyperedges must be >= 1, got {self.n_hyper_layers} and "
                f"{self.n_hyperedges}"
            )
        if not 0.0 < self.keep_rate <= 1.0:
            raise ConfigError(f"keep_rate must be in (0, 1], got {self.keep_rate}")
        if self.alpha < 0:
            raise ConfigError(f"alpha must be >= 0, got {self.alpha}")


def _point(n_hyper_layers: int, n_hyperedges: int, keep_rate: float, alpha: float) -> dict:
    """LGMRec.yaml's settings with one dataset's hypergraph block."""
    return {
        "model": {
            "embedding_dim": 64, "n_ui_layers": 2, "n_mm_layers": 2,
            "n_hyper_layers": n_hyper_layers, "n_hyperedges": n_hyperedges,
            "keep_rate": keep_rate, "alpha": alpha, "cl_weight": 1e-4, "reg_weight": 1e-6,
            "temperature": 0.2,
        },
        "train": {**MMREC_TRAIN},
    }  # fmt: skip


@register
class LGMRec(Model):
    """LGMRec: LightGCN local embeddings plus modality graph embeddings, and global embeddings
    from learned per-modality hyperedges, contrasted across modalities."""

    name = "lgmrec"
    Config = LGMRecConfig
    min_modalities = 1
    #: The yaml's blocks (each list holds one value): ``reference`` is its active (Baby) block;
    #: ``sports`` and ``clothing`` are its commented-out blocks for those datasets.
    presets = {
        "reference": _point(1, 4, 0.5, 0.3),
        "baby": _point(1, 4, 0.5, 0.3),
        "sports": _point(1, 4, 0.4, 0.6),
        "clothing": _point(2, 64, 0.2, 0.2),
    }

    def __init__(self, dataset: Dataset, config: LGMRecConfig) -> None:
        super().__init__(dataset, config)
        d, h = config.embedding_dim, config.n_hyperedges
        self.user_emb = xavier_embedding(self.n_users, d)
        self.item_emb = xavier_embedding(self.n_items, d)
        self.graph = UserItemGraph(dataset.train)  # D^{-1/2} A D^{-1/2}
        self.modalities = image_first(dataset.features, config.image_modality)
        self.features = ItemFeatures(dataset.features, self.modalities)  # fixed, raw
        widths = {m: dataset.features[m].shape[1] for m in self.modalities}
        self.project = nn.ParameterDict(
            {m: xavier_embedding(widths[m], d) for m in self.modalities}
        )  # W^m: item_image_trs / item_text_trs
        self.hyper = nn.ParameterDict(
            {m: xavier_embedding(widths[m], h) for m in self.modalities}
        )  # V^m: v_hyper / t_hyper
        self.user_mean = MeanProfile(dataset.train, self.modalities, d)  # F^m_u
        self.user_sum = SumProfile(dataset.train, self.modalities, h)  # R (x V)
        self.drop = nn.Dropout(1.0 - config.keep_rate)

    # ---------------------------------------------------------------- local embeddings

    def collaborative(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(E_u [U, d], E_i [I, d]): the LightGCN layer mean."""
        return self.graph.propagate(self.user_emb, self.item_emb, self.config.n_ui_layers)

    def modality_graph(self, modality: str) -> torch.Tensor:
        """M^m = Ahat^{n_mm_layers} [F^m_u ; F^m_i]: [U + I, d] (the last layer)."""
        items = self.features[modality] @ self.project[modality]  # F^m_i [I, d]
        h = torch.cat([self.user_mean(items, modality), items])
        adj, adj_t = self.graph.adjacency()
        for _ in range(self.config.n_mm_layers):
            h = sparse_mm(adj, h, adj_t)
        return h

    # ---------------------------------------------------------------- global embeddings

    def assign(self, logits: torch.Tensor) -> torch.Tensor:
        """Rows of soft hyperedge assignments: a Gumbel-softmax sample in training, the
        noise-free softmax(logits / temperature) in evaluation."""
        if self.training:
            return F.gumbel_softmax(logits, self.config.temperature, hard=False, dim=1)
        return torch.softmax(logits / self.config.temperature, dim=1)

    def hyperedges(self, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(H^m_i [I, h], H^m_u [U, h]), each with the (training-only) dropout."""
        logits = self.features[modality] @ self.hyper[modality]  # [I, h]
        users = self.assign(self.user_sum(logits, modality))
        return self.drop(self.assign(logits)), self.drop(users)

    def hypergraph(
        self, h_items: torch.Tensor, h_users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Gamma_u [U, d], Gamma_i [I, d], Lambda [h, d]): ``n_hyper_layers`` rounds of items
        -> hyperedges -> items from G^(0) = ``items``, users reading the last round's Lambda."""
        for _ in range(self.config.n_hyper_layers):
            lam = h_items.T @ items  # [h, d]
            items = h_items @ lam
        return h_users @ lam, items, lam

    # ---------------------------------------------------------------- forward and loss

    def encode(self) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """(all [U + I, d], {m: (Gamma^m_u, Gamma^m_i)})."""
        cge_u, cge_i = self.collaborative()
        local = torch.cat([cge_u, cge_i])
        for m in self.modalities:
            local = local + F.normalize(self.modality_graph(m), dim=1)
        hyper = {}
        for m in self.modalities:
            gamma_u, gamma_i, _ = self.hypergraph(*self.hyperedges(m), cge_i)
            hyper[m] = (gamma_u, gamma_i)
        global_ = sum(torch.cat(pair) for pair in hyper.values())
        return local + self.config.alpha * F.normalize(global_, dim=1), hyper

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.encode()
        return out[: self.n_users], out[self.n_users :]

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out, hyper = self.encode()
        users, items = out[: self.n_users], out[self.n_users :]
        u, i, j = users[batch.user_idx], items[batch.pos_idx], items[batch.neg_idx]
        rank = bpr_loss((u * i).sum(-1), (u * j).sum(-1))
        tau, contrast = self.config.temperature, u.new_zeros(())
        for a, b in combinations(self.modalities, 2):  # anchors a, candidates b
            for side, idx in ((0, batch.user_idx), (1, batch.pos_idx)):  # users, items
                anchor, table = hyper[a][side][idx], hyper[b][side]
                contrast = contrast + info_nce_table(anchor, table, idx, tau, "sum")
        contrast = self.config.cl_weight * contrast
        reg = self.config.reg_weight * frobenius_reg(u, i, j)
        parts = {"bpr": rank.detach(), "hcl": contrast.detach(), "reg": reg.detach()}
        return rank + contrast + reg, parts

    # ---------------------------------------------------------------- serving hooks

    @torch.no_grad()
    def items_from_features(
        self, features: dict[str, torch.Tensor], dataset: Dataset
    ) -> torch.Tensor:
        """Cold-start items: an item without training interactions and without an ID row, its
        hyperedges read from its features.

        In ``eval()`` such an item is an isolated node of the user-item graph: its collaborative
        part E_i is 0 (its layer 0 is the missing ID row, its later layers 0) and so is its
        modality-graph part M^m (the last of n_mm_layers >= 1 propagations reaches it from no
        neighbour; with n_mm_layers = 0, M^m = x^m W^m). Its global part is read from its own
        hyperedge assignments H^m_new = softmax(x^m V^m / temperature) and each modality's
        trained hyperedge embeddings Lambda^m (the last round's, from the trained items):
            Gamma_new = sum_m H^m_new Lambda^m
            vector    = sum_m normalize(M^m_new) + alpha * normalize(Gamma_new)
        With n_hyper_layers = 1 this is exactly ``forward``'s vector for an item whose training
        column is empty and whose ID row is 0 (its G^(0) = E_i = 0 adds nothing to Lambda);
        with more rounds the new item reads the hyperedges without writing into them. Nothing
        trained changes, so no existing score moves. A trained item passed in as new does not
        get its own vector back (that one carries its ID and neighbours). ``alpha = 0`` with
        n_mm_layers >= 1 has no content path (the item's vector never reads its features).
        Shapes: features {m: [n_new, width_m]} -> [n_new, d].
        """
        cfg = self.config
        if cfg.alpha == 0 and cfg.n_mm_layers > 0:
            raise NotImplementedError(
                "this lgmrec configuration has no content path (alpha=0 and n_mm_layers > 0: "
                "an item without interactions never reads its features)"
            )
        device = self.item_emb.device
        new = {m: features[m].to(device, torch.float32) for m in self.modalities}
        n_new = next(iter(new.values())).shape[0]
        local = self.item_emb.new_zeros(n_new, cfg.embedding_dim)
        if cfg.n_mm_layers == 0:
            for m in self.modalities:
                local = local + F.normalize(new[m] @ self.project[m], dim=1)
        _, cge_i = self.collaborative()
        global_ = torch.zeros_like(local)
        for m in self.modalities:
            _, _, lam = self.hypergraph(*self.hyperedges(m), cge_i)  # Lambda^m [h, d]
            global_ = global_ + self.assign(new[m] @ self.hyper[m]) @ lam
        return local + cfg.alpha * F.normalize(global_, dim=1)
