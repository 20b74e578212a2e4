"""The model-agnostic training loop: Adam, early stopping with best-weight restore, a checkpoint
after every epoch (atomic), exact resume, per-epoch JSON lines and a progress bar.

Each epoch: ``model.pre_epoch`` -> the sampler's shuffled batches -> ``model.loss`` -> Adam
step -> validation -> early-stopping bookkeeping -> ``metrics.jsonl`` line -> checkpoint.
The checkpoint holds the weights, optimizer, RNG states (torch, numpy sampler, python),
early-stopping state and best weights, so a resumed run continues exactly where it stopped.
Over several processes (``ranks``, ``train.distributed``) each trains on its slice of every batch
and rank 0 validates, writes and reports.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cranerec.data.dataset import Dataset
from cranerec.eval.evaluator import Evaluator
from cranerec.models.base import Model
from cranerec.train.config import RunConfig
from cranerec.train.distributed import Ranks, batch_slice, data_parallel
from cranerec.train.rundir import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    RunFileError,
    load_checkpoint,
    read_metrics,
)
from cranerec.train.sampler import InteractionSampler
from cranerec.utils.env import resolve_device
from cranerec.utils.io import torch_save_atomic, write_text_atomic

log = logging.getLogger(__name__)


class DivergedError(RuntimeError):
    """The loss became NaN or infinite; nothing of that epoch is saved."""


#: Called after every epoch (once its checkpoint is written) with that epoch's ``metrics.jsonl``
#: record: ``{"epoch", "loss", ..., "valid": {metric: value}, "epoch_seconds", ...}``. An exception
#: raised by a callback (e.g. a search pruning the trial) ends training; the checkpoint stays.
EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainState:
    """Early-stopping and timing state (saved in the checkpoint)."""

    epoch: int = 0  # epochs completed
    best_value: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    elapsed_s: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    eval_seconds: list[float] = field(default_factory=list)
    stop_reason: str = ""


def seed_everything(seed: int) -> None:
    """Seed python, numpy's legacy global RNG and torch (the sampler has its own generator)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains one model on one dataset; checkpoints into ``run_dir`` when given; calls each of
    ``callbacks`` after every epoch (see ``EpochCallback``); with ``ranks``, this process is one
    of several training together (``train.distributed``)."""

    def __init__(
        self,
        model: Model,
        dataset: Dataset,
        config: RunConfig,
        evaluator: Evaluator,
        run_dir: Path | None = None,
        callbacks: Sequence[EpochCallback] = (),
        ranks: Ranks | None = None,
    ) -> None:
        self.model = model
        self.ranks = ranks
        self.main = ranks is None or ranks.main  # validates, writes checkpoints and logs
        self.step_fn = model.loss  # the data-parallel wrapper when distributed (set in fit)
        self.callbacks = list(callbacks)
        self.dataset = dataset
        self.config = config
        self.evaluator = evaluator
        self.run_dir = Path(run_dir) if run_dir else None
        self.device = resolve_device(config.train.device)
        self.state = TrainState()
        self.rng = np.random.default_rng(config.seed)
        self.best_weights: dict[str, torch.Tensor] | None = None
        params = [p for p in model.parameters() if p.requires_grad]
        self.trainable = bool(params) and model.batch_kind != "none"
        self.optimizer = (
            torch.optim.Adam(params, lr=config.train.lr, weight_decay=config.train.weight_decay)
            if self.trainable
            else None
        )
        self.sampler = (
            InteractionSampler(dataset.train, config.train.negative_pool)
            if self.trainable
            else None
        )

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "best_weights": self.best_weights,
            "state": asdict(self.state),
            "rng": {
                "numpy": self.rng.bit_generator.state,
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
                "python": random.getstate(),
            },
            "config": self.config.to_dict(),
            "data_fingerprint": self.dataset.fingerprint,
        }

    def save_checkpoint(self) -> None:
        if self.run_dir is not None and self.main:
            torch_save_atomic(self.run_dir / CHECKPOINT_FILE, self._checkpoint())

    def load_checkpoint(self, path: Path) -> None:
        """Restore everything saved by ``save_checkpoint`` (weights, optimizer, RNGs, state)."""
        ckpt = load_checkpoint(path, map_location=self.device)  # never unpickles code
        saved = ckpt.get("config", {}).get("model", {}).get("name")
        if saved != self.config.model_name:  # BPR's tables fit LightGCN: load would not notice
            raise RunFileError(
                f"{path}: a checkpoint of a {saved} run, not of this {self.config.model_name} "
                "run; delete it to restart the run from epoch 0"
            )
        if ckpt["data_fingerprint"] != self.dataset.fingerprint:
            raise RuntimeError(
                f"{path} was trained on data with fingerprint {ckpt['data_fingerprint']}; the data "
                f"loaded now has {self.dataset.fingerprint}: refusing to resume on different data"
            )
        try:
            self.model.load_state_dict(ckpt["model"])
            if self.optimizer and ckpt["optimizer"]:
                self.optimizer.load_state_dict(ckpt["optimizer"])
            self.best_weights = ckpt["best_weights"]
            self.state = TrainState(**ckpt["state"])
            self.rng.bit_generator.state = ckpt["rng"]["numpy"]
            # RNG states are CPU byte tensors whatever map_location moved them to
            torch.set_rng_state(ckpt["rng"]["torch"].cpu())
            if ckpt["rng"]["cuda"] is not None and self.device.type == "cuda":
                for i, state in enumerate(ckpt["rng"]["cuda"][: torch.cuda.device_count()]):
                    torch.cuda.set_rng_state(state.cpu(), i)
            random.setstate(ckpt["rng"]["python"])
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as e:
            reason = str(e).splitlines()[0][:120]
            raise RunFileError(
                f"{path}: does not fit this run's model ({reason}); delete it to restart the "
                "run from epoch 0"
            ) from None

    def _trim_metrics_log(self) -> None:
        """Keep only metrics lines of epochs the checkpoint covers (a kill may leave more)."""
        path = self.run_dir / METRICS_FILE
        if not path.exists():
            return
        kept = [rec for rec in read_metrics(path) if rec["epoch"] <= self.state.epoch]
        write_text_atomic(path, "".join(json.dumps(rec) + "\n" for rec in kept))

    # ------------------------------------------------------------------ training

    def fit(self) -> TrainState:
        """Train until early stopping, ``epochs`` or the time budget; restore the best weights."""
        cfg = self.config.train
        torch.set_num_threads(cfg.n_threads)
        self.model.to(self.device)
        ckpt_path = self.run_dir / CHECKPOINT_FILE if self.run_dir else None
        if ckpt_path is not None and ckpt_path.exists():
            self.load_checkpoint(ckpt_path)
            log.info("resumed from %s after epoch %d", ckpt_path, self.state.epoch)
        if self.run_dir is not None and self.main:
            self._trim_metrics_log()  # also when a kill came before the first checkpoint
        if self.ranks is not None and self.trainable:
            self.step_fn = data_parallel(self.model, self.ranks, self.device)
        if not self.trainable:
            self.state.stop_reason = "not trainable"
            return self.state
        stop_key = cfg.stop_metric
        # No validation users (a `full` build that keeps everything for training): train every
        # epoch and keep the last weights; nothing to stop early on.
        validate = len(self.evaluator.users("valid")) > 0
        # Said as warnings (the CLI prints them as one `warning:` line each, once).
        if cfg.epochs == 0:
            warnings.warn(
                "train.epochs=0: no epoch is trained; the run keeps and scores the initial "
                "weights", stacklevel=2,
            )  # fmt: skip
        elif not validate:
            warnings.warn(
                f"{self.dataset.name}: no user to validate on; training all {cfg.epochs} epochs "
                "and keeping the last weights", stacklevel=2,
            )  # fmt: skip
        elif cfg.min_epochs >= cfg.epochs:
            warnings.warn(
                f"train.min_epochs={cfg.min_epochs} is not below train.epochs={cfg.epochs}: no "
                "epoch can be chosen as the best, so the run keeps its last epoch; raise "
                "train.epochs or lower train.min_epochs", stacklevel=2,
            )  # fmt: skip
        # A bar on a terminal; without one (a log file, a pipe), one line per epoch instead.
        on_terminal = sys.stderr.isatty()
        bar = tqdm(
            total=self._horizon(validate), initial=self.state.epoch,
            disable=not (cfg.progress and on_terminal and self.main), unit="epoch", leave=False,
            desc=f"{self.config.model_name} on {self.dataset.name}",
        )  # fmt: skip
        print_lines = cfg.progress and not on_terminal and self.main
        while self.state.epoch < cfg.epochs and not self.state.stop_reason:
            if cfg.time_budget_s is not None and self.state.elapsed_s >= cfg.time_budget_s:
                self.state.stop_reason = "time budget"
                break
            epoch = self.state.epoch
            t0 = time.perf_counter()
            losses = self._train_epoch(epoch)
            t1 = time.perf_counter()
            valid = self._validate() if validate and self.main else {}
            t2 = time.perf_counter()
            if self.ranks is not None:  # every rank takes rank 0's view, so all stop together
                valid, t0, t1, t2 = self.ranks.share((valid, t0, t1, t2))
            if validate and stop_key not in valid:
                raise ValueError(
                    f"stop_metric {stop_key!r} is not computed; computed: {sorted(valid)}"
                )
            self._update_state(epoch, valid.get(stop_key), t1 - t0, t2 - t1)
            record = self._log_epoch(epoch, losses, valid, t1 - t0, t2 - t1)
            self.save_checkpoint()
            for callback in self.callbacks:
                callback(record)
            shown = {stop_key: f"{valid[stop_key]:.4f}"} if validate else {}
            bar.total = self._horizon(validate)  # follows early stopping, not the epoch cap
            bar.update(1)
            bar.set_postfix(loss=f"{losses.get('loss', 0):.4f}", **shown)
            if print_lines:
                sys.stderr.write(self._epoch_line(record, validate) + "\n")
                sys.stderr.flush()
        bar.close()
        if not self.state.stop_reason:
            self.state.stop_reason = "max epochs"
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        return self.state

    def _validate(self) -> dict[str, float]:
        user_emb, item_emb = self.model.export_embeddings()
        return self.evaluator.evaluate(user_emb, item_emb, "valid").metrics

    def _horizon(self, validate: bool) -> int:
        """The last epoch training can reach now: the cap, or sooner if validation stays flat."""
        cfg = self.config.train
        if not validate:
            return cfg.epochs
        last = max(self.state.best_epoch, self.state.epoch, cfg.min_epochs)
        return min(cfg.epochs, last + cfg.patience)

    def _epoch_line(self, record: dict[str, Any], validate: bool) -> str:
        """One progress line (when stderr is not a terminal)."""
        cfg, s = self.config.train, self.state
        key = cfg.stop_metric
        if record["epoch"] <= cfg.min_epochs:
            best = f"no best before epoch {cfg.min_epochs + 1}: train.min_epochs={cfg.min_epochs}"
        elif math.isfinite(s.best_value):
            best = f"best {s.best_value:.4f} at epoch {s.best_epoch}"
        else:
            best = "no finite score yet"
        metric = f"  {key} {record['valid'][key]:.4f} ({best})" if validate else ""
        return (
            f"{self.config.model_name} on {self.dataset.name}: epoch {record['epoch']}/"
            f"{self._horizon(validate)}  loss {record.get('loss', 0.0):.4f}{metric}  "
            f"{record['epoch_seconds']:.1f}s + {record['eval_seconds']:.1f}s eval"
        )

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config.train
        for group in self.optimizer.param_groups:  # stateless, so resumes need nothing saved
            group["lr"] = cfg.lr * cfg.lr_decay ** (epoch / cfg.lr_decay_every)
        self.model.train()
        self.model.pre_epoch(epoch, self.rng)
        totals: dict[str, torch.Tensor] = {}
        n = 0
        for batch in self.sampler.epoch(
            self.model.batch_kind, cfg.batch_size, self.rng, self.device
        ):
            weight = 1.0
            if self.ranks is not None:  # this rank's rows, weighted so the mean over ranks is
                batch, weight = batch_slice(batch, self.ranks)  # the whole batch's loss
            self.optimizer.zero_grad(set_to_none=True)
            loss, parts = self.step_fn(batch)
            (loss * weight if weight != 1.0 else loss).backward()
            self.optimizer.step()
            for k, v in {"loss": loss.detach(), **parts}.items():
                v = v * (weight / self.ranks.world) if self.ranks is not None else v
                totals[k] = totals[k] + v if k in totals else v
            n += 1
        if self.ranks is not None and totals:  # the whole batches' losses, as one process logs
            summed = self.ranks.sum_(torch.stack([totals[k] for k in sorted(totals)]).float())
            totals = dict(zip(sorted(totals), summed, strict=True))
        means = {k: float(v) / max(n, 1) for k, v in totals.items()}  # one device sync per epoch
        if not math.isfinite(means.get("loss", 0.0)):
            raise DivergedError(
                f"the training loss became {means['loss']} in epoch {epoch + 1}: lower train.lr "
                "or the model's weights (the run directory keeps the last finite epoch)"
            )
        return means

    def _update_state(self, epoch: int, value: float | None, train_s: float, eval_s: float) -> None:
        """Record an epoch; ``value`` None (nothing validated) makes the last epoch the best."""
        s = self.state
        s.epoch = epoch + 1
        s.elapsed_s += train_s + eval_s
        s.epoch_seconds.append(train_s)
        s.eval_seconds.append(eval_s)
        if value is None or epoch + 1 <= self.config.train.min_epochs:
            # nothing validated, or still within min_epochs: the last epoch stands in as the
            # best (kept if training ends here), and neither counts nor sets a best value
            s.best_epoch, self.best_weights = epoch + 1, None
        elif value > s.best_value:
            s.best_value, s.best_epoch, s.bad_epochs = value, epoch + 1, 0
            self.best_weights = copy.deepcopy(
                {k: v.detach() for k, v in self.model.state_dict().items()}
            )
        else:
            s.bad_epochs += 1
            if s.bad_epochs >= self.config.train.patience:
                s.stop_reason = "early stopping"

    def _log_epoch(
        self,
        epoch: int,
        losses: dict[str, float],
        valid: dict[str, float],
        train_s: float,
        eval_s: float,
    ) -> dict[str, Any]:
        record = {
            "epoch": epoch + 1, **losses, "valid": valid, "epoch_seconds": train_s,
            "eval_seconds": eval_s, "best_epoch": self.state.best_epoch,
        }  # fmt: skip
        key = self.config.train.stop_metric
        log.info(
            "epoch %d loss %.5f %s %s (%.2fs + %.2fs eval)", epoch + 1, losses.get("loss", 0.0),
            key, f"{valid[key]:.5f}" if key in valid else "-", train_s, eval_s,
        )  # fmt: skip
        if self.run_dir is not None and self.main:
            with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        return record
