"""CAmgr (Li, Xu, Zhu & Zhang, Mathematics 2024): multimodal graph recommendation with
ID-guided purification and common/distinct cross-attention fusion.

"A Multimodal Graph Recommendation Method Based on Cross-Attention Fusion" (no public code).
Our reading of every equation, the malformed ones (Eq. 4, 18, 19, 21, 22, 30) included, with the
alternatives and the reasons: docs/camgr.md. Rows are entities (the paper's columns); N = n_users +
n_items, users first; R is the binary training matrix; E_u, E_i the ID tables.

Paper symbol -> setting: d -> ``embedding_dim``; L (GAT layers) -> ``gat_layers``; k (Eq. 11) ->
``knn_k``; tau (Eq. 30; printed "alpha_2" in Sec. 4.4) -> ``temperature``; alpha_1 (Eq. 31) ->
``cl_weight``; alpha_2 (Eq. 31) -> ``reg_weight``; the text modality of Eq. 16 ->
``query_modality``; LeakyReLU in Eq. 8 -> ``gat_negative_slope``; sigma in Eq. 7 ->
``gat_activation``; D^{-1} in Eq. 12 -> ``item_graph_norm``; the MLP of Eq. 20 / 23 (hidden width
``mlp_ratio`` x d, GELU).

Forward:
    P_m   = X_m W_1m^T + b_1m                                        Eq. 1 (per modality)
    Ubar  = diag(n)^{-1} R^T E_u, n_i = users of item i (0 if none)  Eq. 2-4
    H''_m = (E_i + Ubar) * sigmoid(P_m W_2m^T + b_2m)                Eq. 5-6
    H_n   = mean_{l=0..L} H^l, H^0 = [E_u ; E_i],                    Eq. 7-9
            H^l_n = ReLU(sum_{j in N(n)} alpha_nj W^l H^{l-1}_j), alpha: GAT edge softmax
    S''_m = D^{-1} S'_m, S'_m = top-k cosine of the raw X_m (self included), frozen   Eq. 10-12
    Ht_m  = [user means of Ht_im over their training items ; Ht_im = S''_m H''_m]     Eq. 13-14
    for the query modality q and each other (key/value) modality p:
        Q, K, V = Ht_q W_Q^T + b, Ht_p W_K^T + b, Ht_p W_V^T + b                      Eq. 15-17
        A       = softmax(Q K^T / sqrt(d)) V  over all N users and items              Eq. 18 = 21
        H_com   = MLP(LN(CR)) + CR,  CR = Linear(A) + Q                               Eq. 19-20
        H_dif   = MLP'(LN'(DR)) + DR, DR = Linear'(V - A) + Q                         Eq. 22-23
    H_com, H_dif = means over the key/value modalities (one modality: self-attention)
    H_m   = (H_com * sigmoid(H_n W_com^T + b) + H_dif * sigmoid(H_n W_dif^T + b)) / 2 Eq. 24-26
    h     = H_n + H_m; score = h_u . h_i                                              Eq. 27-28
Loss (means over the batch):
    BPR + cl_weight * (InfoNCE(H_m[u], H_n[u]) + InfoNCE(H_m[i], H_n[i])) + reg_weight * reg
    InfoNCE over the batch's unique users and unique positive items (cosine / tau, in-batch
    negatives); reg: ``reg_scope=batch`` 0.5 * squared norm of the batch's ID rows / batch size,
    ``all`` the sum of squares of every parameter (Eq. 31 literally).

The attention over all N entities never builds the N x N scores: ``attention_kernel=sdpa``
(torch's fused kernel, memory O(N d)) or ``blocked`` (``blocked_softmax_attention``, memory
O(block x N)). The loss computes Eq. 15-26 only for the batch's unique users and items (queries;
keys and values stay over all N): exactly the full computation's loss and gradients, since every
step after the attention is row-wise.

Shapes: ``forward() -> ([n_users, d], [n_items, d])``; item graphs [n_items, n_items] with at most
``knn_k`` non-zeros per row; the GAT runs over the 2 |R| directed training edges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.graph import (
    knn_graph,
    knn_join,
    normalize_adjacency,
    normalize_joined,
    propagate_joined,
    sparse_mm,
    to_torch_sparse,
)
from cranerec.models.base import Batch, Model, xavier_embedding
from cranerec.models.presets import MMREC_TRAIN
from cranerec.models.registry import register
from cranerec.nn import GraphAttention, blocked_softmax_attention, info_nce, sdpa_attention
from cranerec.nn.gat import Activation
from cranerec.nn.item_features import ItemFeatures
from cranerec.nn.losses import bpr_loss, l2_batch


@dataclass(frozen=True)
class CAmgrConfig(Settings):
    """CAmgr settings; the defaults are the paper's reported point, the rest MGCN's (see
    docs/camgr.md, "Unreported settings")."""

    RUNTIME: ClassVar[frozenset[str]] = frozenset({"attention_kernel", "attention_block_size"})

    embedding_dim: int = 64  # d (Sec. 4.4)
    gat_layers: int = 2  # L, unreported (MGCN's n_ui_layers)
    gat_negative_slope: float = 0.2  # GAT's LeakyReLU slope (Eq. 8)
    gat_activation: Activation = "relu"  # sigma of Eq. 7 (ReLU in the paper)
    gat_self_loops: bool = False  # N(n) = the neighbours only (Eq. 7)
    knn_k: int = 15  # k (Sec. 5.3.1: 15 on Sports and Clothing, 20 on Baby)
    item_graph_norm: Literal["row", "sym"] = (
        "row"  # Eq. 12: D^{-1} S' (printed) | D^{-1/2} S' D^{-1/2}
    )
    query_modality: str = "text"  # Q of Eq. 16; absent from the data: its last modality
    mlp_ratio: int = 4  # MLP hidden width / d (Eq. 20, 23; unreported)
    attention_kernel: Literal["sdpa", "blocked"] = "sdpa"  # exact, memory-bounded both
    attention_block_size: int = 256  # rows per block of the blocked kernel (benchmark); RUNTIME
    cl_weight: float = 0.01  # alpha_1 (Sec. 5.3.2)
    temperature: float = 0.2  # tau (Sec. 4.4)
    reg_weight: float = 1e-4  # alpha_2, unreported (MGCN's)
    reg_scope: Literal["batch", "all"] = "batch"  # the batch's ID rows | every parameter (Eq. 31)

    def validate(self) -> None:
        if min(self.embedding_dim, self.knn_k, self.mlp_ratio, self.attention_block_size) < 1:
            raise ConfigError(
                "embedding_dim, knn_k, mlp_ratio and attention_block_size must be >= 1"
            )
        if self.gat_layers < 0:
            raise ConfigError(f"gat_layers must be >= 0, got {self.gat_layers}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.cl_weight < 0 or self.reg_weight < 0:
            raise ConfigError("cl_weight and reg_weight must be >= 0")


def _xavier_linear(in_dim: int, out_dim: int) -> nn.Linear:
    """A Linear layer with Xavier-uniform weights and zero bias (the paper's initialisation)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class CommonDistinctAttention(nn.Module):
    """Eq. 15-23 for one (query modality, key/value modality) pair.

    One scaled dot-product attention A = softmax(Q K^T / sqrt(d)) V feeds both branches
    (Eq. 18 = Eq. 21): common H_com = MLP(LN(CR)) + CR with CR = Linear(A) + Q, distinct
    H_dif = MLP'(LN'(DR)) + DR with DR = Linear'(V - A) + Q.

    Shapes: ``forward(x_query [N, d], x_source [N, d], rows [r] or None, attention)`` ->
    ``(H_com, H_dif)`` each [r, d] (all N rows when ``rows`` is None); keys and values always
    span all N rows.
    """

    def __init__(self, dim: int, mlp_ratio: int) -> None:
        super().__init__()
        self.query, self.key, self.value = (_xavier_linear(dim, dim) for _ in range(3))
        self.common_out, self.distinct_out = _xavier_linear(dim, dim), _xavier_linear(dim, dim)
        self.common_norm, self.distinct_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.common_mlp, self.distinct_mlp = (
            nn.Sequential(
                _xavier_linear(dim, mlp_ratio * dim),
                nn.GELU(),
                _xavier_linear(mlp_ratio * dim, dim),
            )
            for _ in range(2)
        )

    def forward(
        self,
        x_query: torch.Tensor,
        x_source: torch.Tensor,
        rows: torch.Tensor | None,
        attention,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.query(x_query if rows is None else x_query[rows])  # Eq. 16 [r, d]
        k = self.key(x_source)  # Eq. 15 [N, d]
        v = self.value(x_source)  # Eq. 17 [N, d]
        attended = attention(q, k, v)  # Eq. 18 = Eq. 21 [r, d]
        common = self.common_out(attended) + q  # Eq. 19
        distinct = self.distinct_out((v if rows is None else v[rows]) - attended) + q  # Eq. 22
        h_com = self.common_mlp(self.common_norm(common)) + common  # Eq. 20
        h_dif = self.distinct_mlp(self.distinct_norm(distinct)) + distinct  # Eq. 23
        return h_com, h_dif


@register
class CAmgr(Model):
    """CAmgr: GAT ID embeddings plus purified modality views fused by common/distinct
    cross-attention (see the module docstring and docs/camgr.md)."""

    name = "camgr"
    Config = CAmgrConfig
    min_modalities = 1
    presets = {
        name: {
            "model": {"embedding_dim": 64, "knn_k": k, "cl_weight": 0.01, "temperature": 0.2},
            "train": {**MMREC_TRAIN},
        }
        for name, k in {"paper": 15, "baby": 20, "sports": 15, "clothing": 15}.items()
    }

    def __init__(self, dataset: Dataset, config: CAmgrConfig) -> None:
        super().__init__(dataset, config)
        if config.knn_k > self.n_items:
            raise ValueError(f"knn_k={config.knn_k} exceeds the number of items ({self.n_items})")
        d = config.embedding_dim
        self.user_emb = xavier_embedding(self.n_users, d)  # E_u
        self.item_emb = xavier_embedding(self.n_items, d)  # E_i

        # Modalities: the query modality (Eq. 16) and the key/value sources (Eq. 15, 17).
        self.modalities = list(dataset.features)
        q = config.query_modality
        self.query_modality = q if q in self.modalities else self.modalities[-1]
        others = [m for m in self.modalities if m != self.query_modality]
        self.sources = others or [self.query_modality]  # one modality: self-attention

        # Eq. 1-6: raw features (constants), alignment and ID-guided gates per modality.
        self.features = ItemFeatures(dataset.features, self.modalities)
        self.align = nn.ModuleDict(
            {m: _xavier_linear(dataset.features[m].shape[1], d) for m in self.modalities}
        )
        self.gate = nn.ModuleDict({m: _xavier_linear(d, d) for m in self.modalities})
        train = sp.csr_matrix(dataset.train, dtype=np.float32)
        # Row-normalised interaction matrices (an empty row stays 0): rows average their columns.
        item_users = normalize_adjacency(train.T, "row")  # [I, U]: Eq. 2-4, diag(n)^{-1} R^T
        user_items = normalize_adjacency(train, "row")  # [U, I]: Eq. 14, each user's mean item
        self.register_buffer("item_users", to_torch_sparse(item_users), persistent=False)
        self.register_buffer("item_users_t", to_torch_sparse(item_users.T), persistent=False)
        self.register_buffer("user_items", to_torch_sparse(user_items), persistent=False)
        self.register_buffer("user_items_t", to_torch_sparse(user_items.T), persistent=False)

        # Eq. 7-9: GAT over the training edges, both directions (user -> item, item -> user).
        coo = train.tocoo()
        users = torch.from_numpy(coo.row.astype(np.int64))
        items = torch.from_numpy(coo.col.astype(np.int64)) + self.n_users
        src, dst = torch.cat([users, items]), torch.cat([items, users])
        if config.gat_self_loops:
            nodes = torch.arange(self.n_users + self.n_items)
            src, dst = torch.cat([src, nodes]), torch.cat([dst, nodes])
        self.register_buffer("edge_src", src, persistent=False)
        self.register_buffer("edge_dst", dst, persistent=False)
        self.gat = nn.ModuleList(
            GraphAttention(d, d, config.gat_negative_slope, config.gat_activation)
            for _ in range(config.gat_layers)
        )

        # Eq. 10-12: one frozen top-k item graph per modality from the raw features.
        for m in self.modalities:
            adj = self._item_graph(dataset.features[m], config.knn_k, config.item_graph_norm)
            self.register_buffer(f"adj_item_{m}", to_torch_sparse(adj), persistent=False)
            self.register_buffer(f"adj_item_t_{m}", to_torch_sparse(adj.T), persistent=False)

        # Eq. 15-26: one common/distinct block per key/value modality, gates shared.
        self.fusion = nn.ModuleDict(
            {p: CommonDistinctAttention(d, config.mlp_ratio) for p in self.sources}
        )
        self.gate_common = _xavier_linear(d, d)  # W_2,com, b_2,com (Eq. 24)
        self.gate_distinct = _xavier_linear(d, d)  # W_2,dif, b_2,dif (Eq. 25)
        if config.attention_kernel == "sdpa":
            self.attention = sdpa_attention
        else:
            self.attention = partial(
                blocked_softmax_attention, block_size=config.attention_block_size
            )

    # ---------------------------------------------------------------- graphs

    @staticmethod
    def _item_graph(features: np.ndarray, k: int, norm: str) -> sp.csr_matrix:
        """Eq. 10-12: the top-k cosine values of each row (the item itself competing, ties by the
        lower index), negatives clamped to 0, normalised by the row sums (``row``: D^{-1} S';
        ``sym``: D^{-1/2} S' D^{-1/2})."""
        with torch.no_grad():
            idx, sim = knn_graph(torch.from_numpy(features), k, exclude_self=False)  # [I, k]
        n = idx.shape[0]
        values = sim.clamp(min=0).numpy().ravel()
        adj = sp.csr_matrix((values, idx.numpy().ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
        return normalize_adjacency(adj, norm)

    def item_graph(self, modality: str) -> torch.Tensor:
        """S''_m of Eq. 12: sparse [n_items, n_items]."""
        return getattr(self, f"adj_item_{modality}")

    # ---------------------------------------------------------------- forward

    def purified(self, modality: str) -> torch.Tensor:
        """H''_m (Eq. 1-6): [n_items, d]."""
        aligned = self.align[modality](self.features[modality])  # Eq. 1 [I, d]
        mean_user = sparse_mm(self.item_users, self.user_emb, self.item_users_t)  # Eq. 2-4
        return (self.item_emb + mean_user) * torch.sigmoid(self.gate[modality](aligned))

    def collaborative(self) -> torch.Tensor:
        """H_n (Eq. 7-9): GAT layers over the training edges, mean of layers 0..L: [N, d]."""
        layers = [torch.cat([self.user_emb, self.item_emb])]  # H^0 [N, d]
        for gat in self.gat:
            layers.append(gat(layers[-1], self.edge_src, self.edge_dst))
        return torch.stack(layers).mean(dim=0)

    def modality_views(self) -> dict[str, torch.Tensor]:
        """Htilde_m (Eq. 13-14) per modality: [users' means ; S''_m H''_m], [N, d] each."""
        views = {}
        for m in self.modalities:
            adj, adj_t = self.item_graph(m), getattr(self, f"adj_item_t_{m}")
            items = sparse_mm(adj, self.purified(m), adj_t)  # Eq. 13 [I, d]
            users = sparse_mm(self.user_items, items, self.user_items_t)  # Eq. 14 [U, d]
            views[m] = torch.cat([users, items])
        return views

    def fuse(
        self,
        views: dict[str, torch.Tensor],
        h_n: torch.Tensor,
        rows: torch.Tensor | None = None,
        attention: Callable[..., torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """H_m (Eq. 15-26) at ``rows`` of the N entities (all when None): [r, d].
        ``attention(q, k, v)``: the kernel (default the configured one)."""
        common, distinct = [], []
        for p in self.sources:
            h_com, h_dif = self.fusion[p](
                views[self.query_modality], views[p], rows, attention or self.attention
            )
            common.append(h_com)
            distinct.append(h_dif)
        h_com, h_dif = torch.stack(common).mean(0), torch.stack(distinct).mean(0)  # [r, d]
        h_n = h_n if rows is None else h_n[rows]
        g_com = torch.sigmoid(self.gate_common(h_n))  # Eq. 24
        g_dif = torch.sigmoid(self.gate_distinct(h_n))  # Eq. 25
        return 0.5 * (h_com * g_com + h_dif * g_dif)  # Eq. 26

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        h_n = self.collaborative()
        h = h_n + self.fuse(self.modality_views(), h_n)  # Eq. 27 [N, d]
        return h[: self.n_users], h[self.n_users :]

    # ---------------------------------------------------------------- serving hooks

    @torch.no_grad()
    def items_from_features(
        self, features: dict[str, torch.Tensor], dataset: Dataset
    ) -> torch.Tensor:
        """Cold-start items: CAmgr's equations for an item with no users and no ID embedding
        that joins each modality's frozen item graph as a row of its own.

        - Eq. 7-9: no edges and H^0 = 0 (no ID row), so H_n = 0 (as for any node without
          neighbours, self-loops or not);
        - Eq. 1-6: H''_m = (0 + 0) * sigmoid(...) = 0: the item's features gate an ID-based
          vector that it does not have;
        - Eq. 10-13: per modality its top-``knn_k`` cosine values among the trained items and
          itself from the raw features, clamped at 0 and normalised as S''_m (the trained rows'
          unchanged sums for ``sym``; ``knn_join``, ``normalize_joined``); Htilde_m = S''_m[new]
          H''_m, the trained neighbours' purified features (its own slot carries its 0);
        - Eq. 15-26: its Htilde rows query the TRAINED users' and items' keys and values (it is
          not added to them, so no trained output changes), V of the distinct branch its own;
          the gates of Eq. 24-25 see H_n = 0: sigmoid(b_com), sigmoid(b_dif);
        - Eq. 27: h = H_n + H_m = H_m.
        So the features act through the neighbours they select, as in FREEDOM. No trained
        entity sees the new item: no existing score moves. Shapes: features {m: [n_new,
        width_m]} -> [n_new, d]. Memory O(n_new x n_items).
        """
        device, k = self.item_emb.device, self.config.knn_k
        n_all = self.n_users + self.n_items  # the trained entities
        h_n = self.collaborative()
        views = self.modality_views()
        for m in self.modalities:
            trained = self.features[m]
            idx, sim = knn_join(features[m].to(device, torch.float32), trained, k)
            deg = None
            if self.config.item_graph_norm == "sym":  # the trained rows' sums
                deg = knn_graph(trained, k, exclude_self=False)[1].clamp(min=0).sum(dim=1)
            values = normalize_joined(idx, sim.clamp(min=0), deg, self.config.item_graph_norm)
            new_view = propagate_joined(idx, values, self.purified(m), 1)  # Eq. 13
            views[m] = torch.cat([views[m], new_view])
        n_new = idx.shape[0]
        h_n = torch.cat([h_n, h_n.new_zeros(n_new, h_n.shape[1])])

        def trained_keys(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return self.attention(q, k[:n_all], v[:n_all])

        rows = torch.arange(n_all, n_all + n_new, device=device)
        return self.fuse(views, h_n, rows, trained_keys)  # H_m; + H_n = 0

    # ---------------------------------------------------------------- loss

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 29-31 with Eq. 15-26 computed only for the batch's unique users and items."""
        users, user_pos = torch.unique(batch.user_idx, return_inverse=True)
        items, item_pos = torch.unique(
            torch.cat([batch.pos_idx, batch.neg_idx]), return_inverse=True
        )
        rows = torch.cat([users, self.n_users + items])  # [r] entity rows the loss reads
        h_n_all = self.collaborative()
        h_m = self.fuse(self.modality_views(), h_n_all, rows)  # [r, d]
        h_n = h_n_all[rows]
        h = h_n + h_m  # Eq. 27 at the batch's rows
        n_b = len(batch.user_idx)
        u = h[user_pos]  # [B, d]
        pos, neg = h[len(users) + item_pos[:n_b]], h[len(users) + item_pos[n_b:]]
        rank = bpr_loss((u * pos).sum(-1), (u * neg).sum(-1))  # Eq. 28, L_BPR

        # Eq. 29-30: the batch's unique users; its unique positive items
        pos_rows = len(users) + torch.unique(item_pos[:n_b])
        tau = self.config.temperature
        cl = info_nce(h_m[: len(users)], h_n[: len(users)], tau) + info_nce(
            h_m[pos_rows], h_n[pos_rows], tau
        )
        if self.config.reg_scope == "batch":
            reg = l2_batch(
                self.user_emb[batch.user_idx],
                self.item_emb[batch.pos_idx],
                self.item_emb[batch.neg_idx],
            )
        else:  # Eq. 31 literally: the squared norm of every parameter
            reg = sum(p.pow(2).sum() for p in self.parameters())
        total = rank + self.config.cl_weight * cl + self.config.reg_weight * reg  # Eq. 31
        return total, {"bpr": rank.detach(), "cl": cl.detach(), "reg": reg.detach()}
