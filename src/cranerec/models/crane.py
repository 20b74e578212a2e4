"""CRANE: Cross-modal Recursive Attention Network with dual graph Embedding (the paper's model).

Defaults: the ``sports_text`` preset's model, chosen on Amazon Sports with text's validation split
(no W^(l), mean h_u, beta 0, orthogonal init, RCA width 128 over 2,048 sampled keys); ``tiktok``:
TikTok's; the paper's Table 3: ``baby``, ``sports``, ``clothing``, ``electronics`` (docs/crane.md).

Ablations and variants as settings (``--set model.<key>=<value>``):
    w/o item graph -> ``item_graph=false`` (h = 0, so the contrastive term is 0 too);
    w/o RCA -> ``rca_rounds=1``; w/o attention = CRANE-C -> ``fusion=concat``;
    w/o GCN -> ``ui_layers=0 ii_layers=0`` (our reading: e is the layer-0 embedding, h_i = e_i,
    h_u = sum of the user's e_i); w/o CL -> ``cl_weight=0``;
    CRANE-S / CRANE-A / single modality -> ``fusion=sum`` / ``average`` / ``<modality name>``;
    w/o dual fusion -> ``late_fusion=true`` (a collaborative and a semantic branch with its own
    item table, separate BPR losses, no contrastive term; exported vectors [e ; h]);
    profiles (Sec. 4.8) -> ``profile=sum|mean|max|attention``.

Paper symbol -> parameter:
    d -> ``embedding_dim``; L_UI -> ``ui_layers``; L_II -> ``ii_layers``; R -> ``rca_rounds``;
    k -> ``knn_k``; tau -> ``temperature``; beta -> ``cl_weight``; lambda -> ``reg_weight``;
    W^(l), sigma (Eq. 3-4) -> ``gcn_weights``, ``activation``; P_ui (Eq. 2) -> ``dropedge``.

Forward (Eq. 1-17):
    e   = GCN over the (edge-dropped, in training) user-item graph, layers 0..L_UI combined
    X^m = [profiles of users (Eq. 5: sum of their training items' features); item features]
    X_att = RCA(X^1..X^K) on the item rows (Eq. 7-13)
    S~  = top-k cosine graph of X_att, self excluded, kept values row-normalised (Eq. 14)
    h_i = S~^{L_II} e_i (Eq. 15), h_u = sum of the user's training items' h_i (Eq. 16;
          ``semantic_user=mean|sqrt`` divide it by |N_u| or sqrt(|N_u|))
    z   = e + h (Eq. 17); score = z_u . z_i
Loss (Eq. 18-20, means over the batch): BPR + beta (InfoNCE(e_u, h_u) + InfoNCE(e_i, h_i)) over
the batch's unique users and unique positive items (a duplicate would be its own false negative)
+ lambda * L2 of the batch's layer-0 embeddings. ``exclude_target`` scores each training
positive with h_u computed without that positive's own term (leave-one-out; Eq. 16 is silent on
whether a user's profile may contain the item being scored during training).

Item-graph cadence: ``graph_cadence="epoch"`` rebuilds RCA and S~ on the first training step of
each epoch; that step's loss carries gradient into RCA through the kept similarity values, later
steps reuse them as constants (as LATTICE does), so RCA gets one update an epoch. ``"every"``
rebuilds every ``graph_every`` training steps (counted from the epoch's first), ``"step"`` at
every step, ``"once"`` never: S~ of the initial features, frozen, RCA untrained (as FREEDOM).

RCA's cost: ``rca_keys=S`` estimates each attention sum over the n = users + items keys
(Eq. 10-11) without bias from S keys drawn uniformly per call (O(n S w) instead of O(n^2 w));
0 is exact, as is S >= n. ``rca_cache_mb`` keeps score blocks for the backward (same numbers);
``train --distributed`` shards the rows. When to use which: docs/crane.md ("Cost").

Training schedule: ``cl_warmup_epochs`` / ``cl_ramp_epochs`` switch the contrastive term on late
and ramp it up (``contrastive_weight``); ``cl_loss`` chooses InfoNCE (the paper's), ``align``
(1 - cos, no negatives) or ``centred`` (InfoNCE of batch-centred views); at beta = 0 the term is
not computed. ``init="xavier"`` (Sec. 4.3.2) gives W^(l) and the feature projections Xavier
weights and zero biases; ``"torch"``, PyTorch's Linear default (``tiktok``'s); ``"orthogonal"``
orthogonal ones and RCA's W_f = I, so that the first item graph keeps the features' own
neighbourhoods (Xavier's R random maps scramble them: docs/crane.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.graph import (
    DropEdgeMode,
    KnnProduct,
    UserItemGraph,
    drop_edges,
    knn_graph,
    knn_join,
    propagate_joined,
    sparse_mm,
    to_torch_sparse,
)
from cranerec.models.base import (
    Batch,
    Model,
    feature_projections,
    rename_old_keys,
    xavier_embedding,
)
from cranerec.models.registry import register
from cranerec.nn import RecursiveCrossModalAttention, ShardedTanhAttention, sampled_tanh_attention
from cranerec.nn.fusion import FUSIONS, make_fusion
from cranerec.nn.gat import ACTIVATIONS, Activation
from cranerec.nn.item_features import ItemFeatures
from cranerec.nn.losses import VIEW_CONTRASTS, bpr_loss, l2_batch
from cranerec.nn.profiles import PROFILES

INITS = {"xavier": nn.init.xavier_uniform_, "orthogonal": nn.init.orthogonal_}  # ``init``
_VALIDATED = {"semantic_user": "mean", "cl_weight": 0.0, "gcn_weights": False}  # both presets
_VALIDATED_TRAIN = {"lr": 1e-3, "batch_size": 2048, "epochs": 1000, "patience": 20}
_PAPER = {"gcn_weights": True, "semantic_user": "sum", "init": "xavier",  # Table 3's model
          "rca_width": 64, "rca_keys": 0}  # fmt: skip
Losses = tuple[Tensor, dict[str, Tensor]]


@dataclass(frozen=True)
class CRANEConfig(Settings):
    """CRANE settings (see the module docstring for the paper symbols)."""

    RUNTIME: ClassVar[frozenset[str]] = frozenset({"rca_block_size", "rca_cache_mb"})
    ADDED: ClassVar[dict[str, Any]] = {"graph_every": 1, "cl_loss": "infonce", "rca_keys": 0,
        "cl_warmup_epochs": 0, "cl_ramp_epochs": 0, "rca_cache_mb": 2048}  # fmt: skip

    embedding_dim: int = 64
    ui_layers: int = 2
    ii_layers: int = 1
    gcn_weights: bool = False  # the paper's W^(l): True (its presets)
    activation: Activation = "none"
    dropedge: DropEdgeMode = "degree_sampled"
    dropedge_keep: float = 0.8
    rca_rounds: int = 3
    rca_width: int = 128
    rca_share_weights: bool = True
    rca_block_size: int = 128  # fastest on 2 CPU cores (benchmarks/rca_speed.py); RUNTIME
    rca_cache_mb: int = 2048  # RCA score blocks kept for the backward (same numbers); RUNTIME
    rca_score_scale: float | None = None  # None: 1/sqrt(rca_width)
    rca_keys: int = 2048  # 0: exact RCA; S > 0: each attention sums S sampled keys (unbiased)
    rca_value_scale: Literal["mean", "none"] = (
        "mean"  # "mean": 1/(M+N) on C X W_a; "none": the literal Eq. 11
    )
    feature_norm: Literal["l2", "none"] = "l2"  # per item, before profiles
    profile: Literal["sum", "mean", "max", "attention"] = "sum"  # Eq. 5 (attention: Sec. 4.8)
    semantic_user: Literal["sum", "mean", "sqrt"] = "mean"  # Eq. 16 (sum); sqrt: / sqrt(|N_u|)
    exclude_target: bool = False  # training: leave the scored positive's own term out of h_u
    project_before_profile: bool = False  # True: project item features, then aggregate
    fusion: str = "rca"  # "rca" | "concat" | "sum" | "average" | a modality name (Sec. 4.6)
    item_graph: bool = True  # False: ablation w/o item graph (h = 0, so no contrastive term)
    late_fusion: bool = False  # ablation w/o dual fusion: two branches trained apart
    knn_k: int = 10
    graph_cadence: Literal["epoch", "step", "every", "once"] = "epoch"
    graph_every: int = 1  # with graph_cadence=every: rebuild every graph_every training steps
    cl_weight: float = 0.0  # the paper's beta: 0.6-0.8 (its presets)
    cl_loss: Literal["infonce", "align", "centred"] = "infonce"
    cl_warmup_epochs: int = 0  # the contrastive term is off for these first epochs ...
    cl_ramp_epochs: int = 0  # ... then rises linearly to cl_weight over these
    temperature: float = 0.2
    reg_weight: float = 1e-4
    init: Literal["xavier", "torch", "orthogonal"] = "orthogonal"  # Sec. 4.3.2: xavier

    def validate(self) -> None:
        if min(self.embedding_dim, self.rca_rounds, self.rca_width, self.knn_k) < 1:
            raise ConfigError("embedding_dim, rca_rounds, rca_width and knn_k must be >= 1")
        if self.profile == "attention" and not self.project_before_profile:
            raise ConfigError(
                "profile=attention needs project_before_profile=true (its query lives in the projected space)"
            )
        if self.ui_layers < 0 or self.ii_layers < 0 or self.temperature <= 0:
            raise ConfigError("ui_layers, ii_layers must be >= 0 and temperature > 0")
        if min(self.rca_keys, self.rca_cache_mb) < 0:  # rca_keys 0: exact RCA
            raise ConfigError(
                f"rca_keys must be >= 0 and rca_cache_mb >= 0 (got {self.rca_keys}, {self.rca_cache_mb})"
            )
        if self.graph_every < 1:
            raise ConfigError(f"graph_every must be >= 1, got {self.graph_every}")


@register
class CRANE(Model):
    """CRANE (paper-faithful): dual user-item / item-item graphs over RCA-refined modalities.

    Shapes: ``forward() -> ([n_users, d], [n_items, d])``; RCA runs over n_users + n_items
    entities per modality, blocked so that memory is O(rca_block_size x (n_users + n_items)).
    """

    name = "crane"
    Config = CRANEConfig
    min_modalities = 1
    defaults_note = "CRANE's defaults are the sports_text preset's model (chosen on Amazon Sports with text's validation split); the paper's settings are the presets baby, sports, clothing, electronics; TikTok's: --preset tiktok (docs/crane.md)"  # fmt: skip
    presets = {  # Table 3 of the paper, with its common settings (Sec. 4.3.2)
        name: {
            "model": {
                **_PAPER,
                "ui_layers": 2,
                "ii_layers": 1,
                "activation": "leaky_relu",  # Eq. 3-4 keep sigma (unnamed: NGCF's, as Eq. 3-4)
                "rca_rounds": r,
                "knn_k": k,
                "reg_weight": lam,
                "temperature": tau,
                "cl_weight": beta,
            },
            "train": {"lr": lr, "batch_size": 1024, "epochs": 250, "patience": 5},
        }  # fmt: skip
        for name, (r, k, lr, lam, tau, beta) in {
            "baby": (3, 15, 1e-4, 1e-3, 0.6, 0.8),
            "sports": (2, 15, 5e-5, 1e-3, 0.5, 0.7),
            "clothing": (3, 10, 1e-4, 1e-3, 0.4, 0.7),
            "electronics": (3, 10, 1e-4, 5e-4, 0.5, 0.6),
        }.items()
    } | {  # chosen on validation splits: TikTok's, Amazon Sports with text's (docs/crane.md)
        "tiktok": {  # orthogonal init since 2026-12-07 (torch before; the fair table)
            "model": {**_VALIDATED, "init": "orthogonal", "rca_width": 64, "rca_keys": 0},
            "train": {**_VALIDATED_TRAIN},
        },
        "sports_text": {  # approximate RCA: exact costs minutes an epoch there on a CPU
            "model": {**_VALIDATED, "init": "orthogonal", "rca_width": 128, "rca_keys": 2048},
            "train": {**_VALIDATED_TRAIN, "min_epochs": 10},
        },
    }

    def __init__(self, dataset: Dataset, config: CRANEConfig) -> None:
        super().__init__(dataset, config)
        if config.knn_k >= self.n_items:
            raise ValueError(
                f"knn_k={config.knn_k} must be below the number of items ({self.n_items})"
            )
        d = config.embedding_dim
        self.user_emb = xavier_embedding(self.n_users, d)
        self.item_emb = xavier_embedding(self.n_items, d)
        # w/o dual fusion: the semantic branch starts from its own item table instead of e_i.
        self.sem_item_emb = xavier_embedding(self.n_items, d) if config.late_fusion else None
        self.gcn = (
            nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(config.ui_layers))
            if config.gcn_weights
            else None
        )
        self.act = ACTIVATIONS[config.activation]()
        self.graph = UserItemGraph(dataset.train)  # edge-dropped per epoch in training (Eq. 2)
        interactions = to_torch_sparse(dataset.train)  # R [n_users, n_items], binary
        self.register_buffer("interactions", interactions, persistent=False)
        self.register_buffer("interactions_t", to_torch_sparse(dataset.train.T), persistent=False)
        user_deg = np.maximum(np.diff(dataset.train.indptr), 1).astype(np.float32)
        self.register_buffer("user_deg", torch.from_numpy(user_deg)[:, None], persistent=False)

        # Item features per modality: normalised once, projected to a common width (Fig. 3).
        self.modalities = list(dataset.features)
        self.features = ItemFeatures(
            dataset.features, self.modalities, normalize=config.feature_norm
        )
        self.project = feature_projections(dataset.features, self.modalities, config.rca_width)
        if config.init != "torch":  # Sec. 4.3.2 (ID tables and RCA: Xavier, but W_f = I below)
            weight_init = INITS[config.init]
            for layer in [*(self.gcn or []), *self.project.values()]:
                weight_init(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
        # The variants, chosen once: the profile rule (Eq. 5, Sec. 4.8) and the fusion (Sec. 4.6).
        self.profiles = PROFILES[config.profile](dataset.train, self.modalities, config.rca_width)
        if config.fusion not in FUSIONS and config.fusion not in self.modalities:
            raise ValueError(
                f"fusion {config.fusion!r} is neither one of {list(FUSIONS)} nor a modality of "
                f"{dataset.name!r} ({', '.join(self.modalities)})"
            )
        n_entities = self.n_users + self.n_items
        self._cache_mb = config.rca_cache_mb / (len(self.modalities) * config.rca_rounds)  # a call
        rca = None if config.fusion != "rca" else RecursiveCrossModalAttention(
            len(self.modalities), config.rca_width, rounds=config.rca_rounds,
            share_weights=config.rca_share_weights, block_size=config.rca_block_size,
            score_scale=config.rca_score_scale or config.rca_width**-0.5,
            value_scale=1.0 / n_entities if config.rca_value_scale == "mean" else 1.0,
            cache_mb=config.rca_cache_mb,
            attention=None if config.rca_keys == 0 else partial(
                sampled_tanh_attention, n_keys=config.rca_keys, block_size=config.rca_block_size,
                cache_mb=self._cache_mb,
            ),
        )  # fmt: skip
        if rca is not None and config.init == "orthogonal":
            rca.identity_residual()
        self.fusion = make_fusion(config.fusion, self.modalities, rca)
        # w/o dual fusion: the two branches scored and trained apart (``late_fusion``).
        self._combine = _concat if config.late_fusion else torch.add
        self._loss = self._late_fusion_loss if config.late_fusion else self._dual_loss
        self._contrast = partial(VIEW_CONTRASTS[config.cl_loss], temperature=config.temperature)
        self._epoch = 0  # set by pre_epoch: the contrastive schedule and the graph cadence
        self._steps = 0  # training steps of this epoch (graph_cadence=every)
        # checkpoints written before the variants became modules
        rename_old_keys(self, {"rca.": "fusion.rca.", "profile_query.": "profiles.query."})
        # The current item graph is part of the state (checkpoints, best-weight restore, model.pt),
        # so a reloaded model scores exactly as the one that was validated.
        self.register_buffer("graph_idx", torch.zeros(self.n_items, config.knn_k, dtype=torch.long))
        self.register_buffer("graph_values", torch.zeros(self.n_items, config.knn_k))
        self.register_buffer("graph_built", torch.tensor(False))
        self._rebuild = True
        self._item_step = KnnProduct()  # S~ h: a CSR product on the steps that reuse S~

    # ---------------------------------------------------------------- graphs

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Resample the edge-dropped user-item graph (Eq. 2); schedule the item-graph rebuild."""
        keep = drop_edges(
            self.graph.edge_users, self.graph.edge_items, self.n_users, self.n_items,
            self.config.dropedge, rng, self.config.dropedge_keep,
        )  # fmt: skip
        self.graph.keep_edges(keep)
        self._rebuild = True
        self._epoch, self._steps = epoch, 0

    def distribute(self, group) -> None:
        """``train --distributed``: each rank computes a slice of RCA's query rows, gathered after
        (``nn.sharded``); the graphs, losses and the item graph stay replicated."""
        rca = getattr(self.fusion, "rca", None)
        if rca is not None:
            rca.attention = ShardedTanhAttention(
                self.config.rca_block_size, self.config.rca_keys, group, self._cache_mb
            )

    def contrastive_weight(self) -> float:
        """beta of this epoch: 0 for ``cl_warmup_epochs``, then rising linearly to ``cl_weight``
        over ``cl_ramp_epochs`` (at once when 0). At the start, InfoNCE's gradient on the ID
        tables is hundreds of times BPR's and Adam's normalised steps follow it: BPR stalls at
        ln 2 for thousands of steps (docs/crane.md); the schedule lets BPR move first."""
        cfg, e = self.config, self._epoch
        if e < cfg.cl_warmup_epochs:
            return 0.0
        if cfg.cl_ramp_epochs == 0:
            return cfg.cl_weight
        return cfg.cl_weight * min(1.0, (e - cfg.cl_warmup_epochs + 1) / cfg.cl_ramp_epochs)

    def fused_item_features(self, new_items: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The item features the item graph is built from (Sec. 3.3 / 4.6):
        ``rca``: X_att (Eq. 13, RCA over users and items); ``concat`` / ``sum``: the projected
        modalities concatenated / summed (``concat`` is also the w/o-attention ablation);
        ``average``: per-modality L2-normalised features concatenated, whose cosine similarity is
        the mean of the per-modality cosine similarities (CRANE-A); a modality name: that
        modality alone (CRANE-V, CRANE-T, ...).

        ``new_items`` (serving, cold start): normalised features ``{modality: [n_new, width]}``
        of items without interactions, appended after the trained items (as extra RCA
        entities); their rows follow the trained items' in the result."""
        mods = self.fusion.modalities
        feats = {m: self.features[m] for m in mods}
        if new_items is not None:
            feats = {m: torch.cat([feats[m], new_items[m]]) for m in mods}
        x_items = [self.project[m](feats[m]) for m in mods]  # [N, w] each
        users = None
        if self.fusion.reads_users:
            users = [self._profile(x_items[i][: self.n_items], m) for i, m in enumerate(mods)]
        return self.fusion(x_items, users)  # [N, w']

    def _profile(self, x: torch.Tensor, m: str) -> torch.Tensor:
        """Users' rows of X^m (Eq. 5) from the projected items x = X W^T + b: P x with
        ``project_before_profile``, else project(P X); for a linear rule P (sum, mean) computed as
        P (x - b) + b, with no [n_users, width_m] raw profile (3 GB at Amazon-Electronics' shape)."""
        if self.config.project_before_profile:
            return self.profiles(x, m)
        if not self.profiles.linear:
            return self.project[m](self.profiles(self.features[m], m))
        bias = self.project[m].bias
        return self.profiles(x, m) if bias is None else self.profiles(x - bias, m) + bias

    def item_graph(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 14: top-k cosine neighbours of the fused item features, self excluded, kept
        values row-normalised (negative similarities clamped to 0). Returns (idx, values)."""
        idx, sim = knn_graph(self.fused_item_features(), self.config.knn_k)
        sim = sim.clamp(min=0)
        return idx, sim / sim.sum(dim=1, keepdim=True).clamp(min=1e-12)

    def _current_graph(self) -> tuple[torch.Tensor, torch.Tensor]:
        cadence, due = self.config.graph_cadence, False
        if self.training:  # steps count from the epoch's first (graph_cadence=every)
            due = cadence == "step" or (
                cadence == "every" and self._steps % self.config.graph_every == 0
            )
            self._steps += 1
        learn = self.training and cadence != "once"  # RCA trains through this rebuild
        if bool(self.graph_built) and not (learn and (self._rebuild or due)):
            return self.graph_idx, self.graph_values
        with torch.set_grad_enabled(learn and torch.is_grad_enabled()):
            idx, values = self.item_graph()
        self.graph_idx.copy_(idx)
        self.graph_values.copy_(values.detach())
        self.graph_built.fill_(True)
        self._rebuild = False
        if not values.requires_grad:  # the buffers: what later steps' cached S~ product reads
            return self.graph_idx, self.graph_values
        return idx, values  # carries gradient into RCA on this step only

    # ---------------------------------------------------------------- forward and loss

    def collaborative(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 3-4 on the sampled graph in training, the full graph otherwise; layer mean:
        (e_u [n_users, d], e_i [n_items, d])."""

        def layer(i: int, msg: torch.Tensor) -> torch.Tensor:  # sigma(W^(l) A E^(l-1))
            return self.act(self.gcn[i](msg) if self.gcn is not None else msg)

        return self.graph.propagate(self.user_emb, self.item_emb, self.config.ui_layers, layer)

    def _user_weight(self) -> torch.Tensor:
        """[n_users, 1]: the weight of each of a user's items in h_u (Eq. 16, ``semantic_user``)."""
        rule = self.config.semantic_user
        if rule == "sum":
            return torch.ones_like(self.user_deg)
        return 1.0 / self.user_deg if rule == "mean" else self.user_deg.rsqrt()

    def _views(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        e_u, e_i = self.collaborative()
        if not self.config.item_graph:  # ablation w/o item graph: h = 0
            return e_u, e_i, torch.zeros_like(e_u), torch.zeros_like(e_i)
        idx, values = self._current_graph()
        h_i = self.sem_item_emb if self.config.late_fusion else e_i  # Eq. 15: h^(0)
        for _ in range(self.config.ii_layers):
            h_i = self._item_step(idx, values, h_i)  # Eq. 15
        h_u = sparse_mm(self.interactions, h_i, self.interactions_t) * self._user_weight()  # Eq. 16
        return e_u, e_i, h_u, h_i

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """z = e + h (Eq. 17); w/o dual fusion [e ; h], so that z_u . z_i sums the branches'
        scores."""
        e_u, e_i, h_u, h_i = self._views()
        return self._combine(e_u, h_u), self._combine(e_i, h_i)

    def loss(self, batch: Batch) -> Losses:
        return self._loss(batch, *self._views())

    def _dual_loss(
        self, batch: Batch, e_u: Tensor, e_i: Tensor, h_u: Tensor, h_i: Tensor
    ) -> Losses:
        """Eq. 18-20: BPR on z = e + h, InfoNCE between the views, L2 on the batch's rows."""
        z_u, z_i = e_u + h_u, e_i + h_i
        u, i, j = z_u[batch.user_idx], z_i[batch.pos_idx], z_i[batch.neg_idx]
        pos_scores, neg_scores = (u * i).sum(-1), (u * j).sum(-1)
        if self.config.exclude_target and self.config.item_graph:
            # leave-one-out: score the positive with h_u computed without it (negatives are
            # never in the user's training items, so their scores are unchanged)
            own = self._user_weight()[batch.user_idx] * h_i[batch.pos_idx]
            pos_scores = pos_scores - (own * i).sum(-1)
        rank = bpr_loss(pos_scores, neg_scores)
        users = torch.unique(batch.user_idx)
        items = torch.unique(batch.pos_idx)  # the batch's (positive) items
        beta = self.contrastive_weight()
        if self.config.item_graph and beta > 0:
            cl = self._contrast(e_u[users], h_u[users]) + self._contrast(e_i[items], h_i[items])
        else:  # no semantic view to align with, or no weight on it: not computed
            cl = torch.zeros((), device=z_u.device)
        reg = l2_batch(
            self.user_emb[batch.user_idx],
            self.item_emb[batch.pos_idx],
            self.item_emb[batch.neg_idx],
        )
        total = rank + beta * cl + self.config.reg_weight * reg
        return total, {"bpr": rank.detach(), "cl": cl.detach(), "reg": reg.detach()}

    def _late_fusion_loss(
        self, batch: Batch, e_u: Tensor, e_i: Tensor, h_u: Tensor, h_i: Tensor
    ) -> Losses:
        """w/o dual fusion: each branch its own BPR loss, no contrast (disjoint parameters)."""
        u, p, n = batch.user_idx, batch.pos_idx, batch.neg_idx
        collab = bpr_loss((e_u[u] * e_i[p]).sum(-1), (e_u[u] * e_i[n]).sum(-1))
        semantic = bpr_loss((h_u[u] * h_i[p]).sum(-1), (h_u[u] * h_i[n]).sum(-1))
        reg = l2_batch(self.user_emb[u], self.item_emb[p], self.item_emb[n]) + l2_batch(
            self.sem_item_emb[p], self.sem_item_emb[n]
        )
        total = collab + semantic + self.config.reg_weight * reg
        parts = {"bpr": collab.detach(), "bpr_semantic": semantic.detach(), "reg": reg.detach()}
        return total, parts

    # ---------------------------------------------------------------- serving hooks

    @torch.no_grad()
    def items_from_features(
        self, features: dict[str, torch.Tensor], dataset: Dataset
    ) -> torch.Tensor:
        """Cold-start items: join the item graph through the content path (Sec. 3.3).

        1. refine: the new items' features (normalised as in training) enter RCA as extra
           entities beside the trained users and items (Eq. 7-13; the value scale keeps its
           trained 1 / (users + items));
        2. join: each new item's top-``knn_k`` cosine neighbours among the trained items'
           refined features (not itself: S~ excludes self; ``knn_join``), clamped and
           row-normalised as S~ (Eq. 14);
        3. aggregate: h^(l)_new = sum_j S~[new, j] h^(l-1)_j over the trained items' h^(l-1)
           (Eq. 15; ``propagate_joined``), h^(0)_new = 0 (no ID embedding). With no
           interactions e_new = 0, so the vector is z = h^(L_II) (``late_fusion``: [0 ; h]).
        The trained items' graph is kept and no trained item gains a neighbour, so no existing
        score moves; ``item_graph=false`` or ``ii_layers=0`` have no content path.
        Shapes: features {m: [n_new, width_m]} -> [n_new, d] (2d with ``late_fusion``).
        """
        if not self.config.item_graph or self.config.ii_layers == 0:
            raise NotImplementedError(
                "this crane configuration has no content path (item_graph=false or "
                "ii_layers=0: its scores never use the item features)"
            )
        new = {m: features[m].float() for m in self.modalities}
        if self.config.feature_norm == "l2":
            new = {m: F.normalize(x, dim=1) for m, x in new.items()}
        fused = self.fused_item_features(new_items=new)  # [n_items + n_new, w']
        idx, sim = knn_join(
            fused[self.n_items :], fused[: self.n_items], self.config.knn_k, include_self=False
        )  # [n_new, k] among the trained items, ties by the lower index
        values = sim.clamp(min=0)
        values = values / values.sum(dim=1, keepdim=True).clamp(min=1e-12)
        h = self.sem_item_emb if self.config.late_fusion else self.collaborative()[1]  # h^(0)

        step = partial(self._item_step, self.graph_idx, self.graph_values)  # S~ h (Eq. 15)
        h_new = propagate_joined(idx, values, h, self.config.ii_layers, step)
        if self.config.late_fusion:
            return torch.cat([torch.zeros_like(h_new), h_new], dim=1)
        return h_new


def _concat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cat([a, b], dim=1)
