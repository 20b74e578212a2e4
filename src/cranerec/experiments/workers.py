"""What the experiment runner and the search share: how many worker processes and threads, the
datasets a worker keeps loaded, and starting and stopping worker processes. Both import this
module; neither imports the other's internals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing as mp
import os
import signal
import sys
import warnings
from dataclasses import dataclass
from typing import Any

from cranerec.config import to_dict
from cranerec.data.dataset import Dataset
from cranerec.utils.env import usable_physical_cores
from cranerec.utils.warn import one_line_warnings

log = logging.getLogger(__name__)


def available_cores() -> int:
    """The physical cores this process may run on (its CPU affinity where the OS tells it)."""
    return usable_physical_cores()


def plan_workers(workers: int, cores: int | None = None, max_threads: int = 0) -> tuple[int, int]:
    """(workers, torch threads per worker) with workers x threads <= cores: at most one worker
    per core, the cores shared evenly; ``max_threads`` (a run's ``train.threads``, 0 = no cap)
    caps the threads."""
    cores = max(1, cores or available_cores())
    workers = max(1, min(workers, cores))
    threads = max(1, cores // workers)
    if max_threads:
        threads = min(threads, max_threads)
    return workers, threads


def _data_key(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dataset_info(data: Dataset) -> dict[str, Any]:
    """Sizes recorded with every run (the efficiency plot's x axis)."""
    return {
        "name": data.name,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_train": int(data.train.nnz),
        "n_interactions": int(data.train.nnz + data.valid.nnz + data.test.nnz),
        "modalities": {m: int(f.shape[1]) for m, f in data.features.items()},
        "synthetic": bool(data.synthetic),
    }


class DataCache:
    """Datasets loaded once per process, by data section."""

    def __init__(self) -> None:
        self._data: dict[str, Dataset] = {}

    def get(self, config) -> Dataset:
        from cranerec.data.loaders import load_dataset

        key = _data_key(to_dict(config))
        if key not in self._data:
            self._data.clear()  # one dataset at a time: runs are ordered by dataset
            self._data[key] = load_dataset(config)
        return self._data[key]


def place(config, threads: int, device: str | None = None):
    """``config`` with what this worker decides about a run, none of it part of the run's id:
    its torch threads, no progress bar, and ``device`` when given (else the one it names)."""
    device = config.train.device if device is None else device
    train = dataclasses.replace(config.train, threads=threads, progress=False, device=device)
    return dataclasses.replace(config, train=train)


def configure_child(threads: int) -> None:
    """In a worker process: its torch threads, warnings as the CLI prints them (one line, each
    once per process), and SIGTERM as an exit that gives its run back."""
    import torch

    torch.set_num_threads(threads)
    one_line_warnings()
    warnings.filterwarnings("once", append=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stop releases the claimed run


def start_workers(target, args_of, n: int, threads: int) -> list[mp.Process]:
    """Start ``n`` spawned processes ``target(*args_of(i))`` with BLAS/OpenMP pools of
    ``threads`` threads each."""
    ctx = mp.get_context("spawn")
    saved = {
        k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    }
    os.environ.update(dict.fromkeys(saved, str(threads)))
    try:
        procs = [ctx.Process(target=target, args=args_of(i), daemon=False) for i in range(n)]
        for p in procs:
            p.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return procs


def wait_for(procs: list[mp.Process], poll=None, every_s: float = 1.0) -> None:
    """Join ``procs``, calling ``poll()`` meanwhile; on an interrupt, stop them (SIGTERM: each
    gives its run back) and re-raise."""
    try:
        while any(p.is_alive() for p in procs):
            if poll is not None:
                poll()
            for p in procs:
                p.join(timeout=every_s / max(len(procs), 1))
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
        raise
    if poll is not None:
        poll()
    for p in procs:
        if p.exitcode:
            log.warning(
                "worker %s exited with code %s (its run, if any, resumes next time)",
                p.pid,
                p.exitcode,
            )


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


@dataclass(frozen=True)
class RunLines:
    """What a worker says of the run it trains where no bar is drawn (stderr a log file or a
    pipe): a line when it starts, one an epoch, one when it ends, each led by ``label``; nothing
    when not ``enabled``. Plain strings, so it travels to a spawned process."""

    label: str
    metric: str = "recall@20"
    enabled: bool = True
    min_epochs: int = 0  # train.min_epochs: no best epoch before it

    def say(self, text: str) -> None:
        """One line on stderr; a stderr that cannot be written (a closed pipe) is ignored, as
        Python's warnings and logging do, so a progress line never fails a run."""
        if not self.enabled:
            return
        try:
            sys.stderr.write(f"{self.label}: {text}\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # ValueError: a closed file
            pass

    def epoch(self, record: dict[str, Any]) -> None:
        valid = record.get("valid") or {}
        score = f"  valid {self.metric} {_fmt(valid[self.metric])}" if self.metric in valid else ""
        if isinstance(record.get("epoch"), int) and record["epoch"] <= self.min_epochs:
            best = f" (no best before epoch {self.min_epochs + 1})"
        else:
            best = f" (best epoch {record['best_epoch']})" if record.get("best_epoch") else ""
        seconds = record.get("epoch_seconds")
        took = f"  {seconds:.1f}s" if isinstance(seconds, int | float) else ""
        self.say(f"epoch {record.get('epoch')}{score}{best}{took}")

    def done(self, results: dict[str, Any]) -> None:
        valid, test = results.get("valid") or {}, results.get("test") or {}
        self.say(
            f"done: best epoch {results.get('best_epoch')} of {results.get('epochs_run')}, "
            f"valid {self.metric} {_fmt(valid.get(self.metric))}, "
            f"test {self.metric} {_fmt(test.get(self.metric))}"
        )
