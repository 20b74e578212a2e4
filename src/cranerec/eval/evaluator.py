"""The model-agnostic full-ranking evaluator.

Protocol ``mmrec`` (the default, the one the CRANE paper and every reference number use):

- evaluated users: every user with at least one interaction in the evaluated split AND at least
  one training interaction;
- candidates: all items; each user's training items are masked (score -inf). At test time the
  validation items are NOT masked unless ``mask_valid_at_test`` is set (protocol ``strict``
  sets it);
- ranking: by score, ties broken by the lower item index (deterministic); NaN scores raise an
  error naming the users;
- metrics (see ``cranerec.eval.metrics``) are averaged over the evaluated users.

Users are scored in batches, so memory is O(user_batch_size x n_items); results do not depend on
the batch size.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp
import torch

from cranerec.config import ConfigError, Settings
from cranerec.data.dataset import Dataset
from cranerec.eval.metrics import METRICS, metrics_from_hits
from cranerec.utils.ranking import topk_items

Protocol = Literal["mmrec", "strict"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)


@dataclass(frozen=True)
class EvalConfig(Settings):
    """Evaluation settings. ``protocol``: ``mmrec`` (default) or ``strict`` (= mmrec with
    ``mask_valid_at_test``)."""

    ks: list[int] = field(default_factory=lambda: [10, 20, 50])
    metrics: list[str] = field(default_factory=lambda: list(METRICS))
    protocol: Protocol = "mmrec"
    mask_valid_at_test: bool = False
    user_batch_size: int = 0  # 0 = auto: 256 on CPU (score block stays in cache), 4096 on GPU

    def validate(self) -> None:
        if not self.ks or any(k < 1 for k in self.ks):
            raise ConfigError(f"ks must be positive integers, got {self.ks}")
        bad = [m for m in self.metrics if m not in METRICS]
        if bad:
            raise ConfigError(f"unknown metric(s) {bad}; choose from {list(METRICS)}")
        if self.user_batch_size < 0:
            raise ConfigError("user_batch_size must be >= 0 (0 = auto)")

    @property
    def masks_valid_at_test(self) -> bool:
        return self.mask_valid_at_test or self.protocol == "strict"


@dataclass
class EvalResult:
    """Mean metrics, and per-user values for paired tests (``users`` are user indices)."""

    metrics: dict[str, float]
    users: np.ndarray
    per_user: dict[str, np.ndarray]

    def save_per_user(self, path: str, user_ids: np.ndarray) -> None:
        """Write ``per_user.npz``: ``user_idx``, ``user_id`` and one array per metric."""
        from cranerec.utils.io import savez_atomic

        savez_atomic(
            path, user_idx=self.users, user_id=np.asarray(user_ids)[self.users].astype(str),
            **{k.replace("@", "_at_"): v for k, v in self.per_user.items()},
        )  # fmt: skip


class _RowEntries:
    """The nonzeros of a CSR matrix's rows ``users`` (in that order), gathered once so that a
    batch ``users[start:stop]`` reads its (row-in-batch, column) pairs with one slice."""

    def __init__(self, m: sp.csr_matrix, users: np.ndarray) -> None:
        counts = np.diff(m.indptr)[users]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        starts = m.indptr[users].astype(np.int64)
        entry = np.repeat(starts - self.offsets[:-1], counts) + np.arange(self.offsets[-1])
        self.rows = torch.from_numpy(np.repeat(np.arange(len(users)), counts))
        self.cols = torch.from_numpy(m.indices[entry].astype(np.int64))
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def batch(
        self, start: int, stop: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._on:
            self._on[device] = (self.rows.to(device), self.cols.to(device))
        rows, cols = self._on[device]
        sl = slice(int(self.offsets[start]), int(self.offsets[stop]))
        return rows[sl] - start, cols[sl]


class Evaluator:
    """Full-ranking evaluation of user/item embeddings (scores = user_emb @ item_emb.T).

    Protocol (``mmrec``, the default): evaluate every user with >= 1 interaction in the split and
    >= 1 in training; mask their training items (and, at test time, their validation items only
    when ``mask_valid_at_test`` / protocol ``strict``); rank all other items, ties by the lower
    index; average Recall, NDCG, Precision, MAP and HitRate (``cranerec.eval.metrics``) at each K.
    """

    def __init__(self, dataset: Dataset, config: EvalConfig | None = None) -> None:
        self.dataset = dataset
        self.config = config or EvalConfig()
        self.config.validate()
        has_train = np.diff(dataset.train.indptr) > 0
        self._users = {}
        for split in ("valid", "test"):
            has_split = np.diff(dataset.split(split).indptr) > 0
            self._users[split] = np.nonzero(has_split & has_train)[0]
        masks = {"valid": dataset.train, "test": dataset.train}
        if self.config.masks_valid_at_test:
            masks["test"] = (dataset.train + dataset.valid).tocsr()
        self._masked = {s: _RowEntries(masks[s], u) for s, u in self._users.items()}
        for split, users in self._users.items():
            if not len(users) and dataset.split(split).nnz:  # an empty split warns when loaded
                warnings.warn(
                    f"{dataset.name}: no user of the {split} split has a training interaction; "
                    f"every {split} metric will be 0",
                    stacklevel=2,
                )
        self._relevant = {s: _RowEntries(dataset.split(s), u) for s, u in self._users.items()}

    def users(self, split: str) -> np.ndarray:
        """Indices of the users evaluated on ``split``."""
        return self._users[split]

    @torch.no_grad()
    def evaluate(
        self, user_emb: torch.Tensor, item_emb: torch.Tensor, split: str = "valid"
    ) -> EvalResult:
        """Rank all items for every evaluated user of ``split`` and compute the metrics."""
        if split not in self._users:
            raise ValueError(f"cannot evaluate split {split!r}; choose valid or test")
        cfg = self.config
        users = self._users[split]
        relevant = self.dataset.split(split)
        n_items = item_emb.shape[0]
        if n_items != self.dataset.n_items or user_emb.shape[0] != self.dataset.n_users:
            raise ValueError(
                f"embeddings have {user_emb.shape[0]} users x {n_items} items; the dataset has "
                f"{self.dataset.n_users} x {self.dataset.n_items}"
            )
        kmax = min(max(cfg.ks), n_items)
        device = item_emb.device
        item_t = item_emb.T.contiguous()
        hit_blocks: list[torch.Tensor] = []
        bs = cfg.user_batch_size or (256 if device.type == "cpu" else 4096)
        for start in range(0, len(users), bs):
            stop = min(start + bs, len(users))
            batch = users[start:stop]
            batch_t = torch.from_numpy(batch).to(device)
            scores = user_emb[batch_t] @ item_t  # [B, N]
            masked = self._masked[split].batch(start, stop, device)
            scores.index_put_(masked, scores.new_tensor(float("-inf")))
            vals, top = topk_items(scores, kmax)  # [B, kmax]
            if torch.isnan(vals).any():  # topk ranks NaN first, so any NaN row shows here
                bad = batch[torch.isnan(vals).any(dim=1).cpu().numpy()]
                raw = self.dataset.user_ids[bad[:10]].tolist()
                raise ValueError(f"NaN scores for {len(bad)} user(s) (first raw ids: {raw})")
            rel = torch.zeros_like(scores, dtype=torch.bool)  # [B, N]
            rel.index_put_(
                self._relevant[split].batch(start, stop, device), torch.tensor(True, device=device)
            )
            hit_blocks.append(rel.gather(1, top).cpu())  # [B, kmax]
        hits = (
            torch.cat(hit_blocks).to(torch.float64)
            if hit_blocks
            else torch.zeros(0, kmax, dtype=torch.float64)
        )
        n_rel = torch.from_numpy(np.diff(relevant.indptr)[users])
        values = {
            k: v.numpy() for k, v in metrics_from_hits(hits, n_rel, cfg.ks, cfg.metrics).items()
        }
        means = {k: float(v.mean()) if len(v) else 0.0 for k, v in values.items()}
        return EvalResult(metrics=means, users=users, per_user=values)
