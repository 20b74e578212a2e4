"""Hyper-parameter search with Optuna: the paper's grid as a preset, TPE for other spaces, a
trial budget, pruning on the per-epoch validation curve, selection on validation only.

A spec's ``search`` section (``cranerec.experiments.spec.SearchSpec``) names the model, dataset,
preset, seed and base overrides of every trial, and the space: dotted config keys, each
``{values: [...]}`` (a grid / categorical dimension) or ``{low, high, log, step}`` (a range)::

    search:
      model: crane
      dataset: tiktok
      preset: tiktok
      space: paper_grid            # the paper's Sec. 4.3.2 grid, 4 x 3 x 10 x 9 = 1,080 points
      trials: 60                   # the budget (default for a grid: all of it)
      pruner: median

Every trial trains one run (``cranerec.train.train_run``) into ``STORE/search/<study>/trial-N``;
after each epoch its validation ``metric`` is reported to Optuna and a hopeless trial (below the
median of earlier trials at that epoch) is pruned. The objective is the best validation value
(the run restores its best weights); the test metrics are kept as trial attributes for the
report and never read by the search.

The study lives in Optuna's storage: SQLite in the store by default, or any database URL Optuna
accepts (``--storage postgresql://user@host/db``) so that workers on several machines share one
study. Trials are numbered by the storage, and a grid's trial number n evaluates the grid's
point n (every worker shuffles the grid with the same seed), so two workers never train the same
point; a trial started past the budget by a race between workers is recorded failed with the
user attribute ``surplus`` and trains nothing. A worker that dies leaves its trial running; with
the heartbeat (RDB storages), another worker marks it failed and retries it once.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from cranerec.config import ConfigError, deep_merge
from cranerec.experiments.space import (
    Dimension,
    grid_size,
    is_grid,
    search_space,
)
from cranerec.experiments.spec import (
    ExperimentSpec,
    SearchSpec,
    nested,
    run_id,
    search_base_raw,
)
from cranerec.experiments.store import Store
from cranerec.utils.extras import require

log = logging.getLogger(__name__)

STORAGE_ENV = "CRANEREC_STORAGE"
STUDIES_FILE = "studies.json"


def sampler_kind(search: SearchSpec, space: dict[str, Dimension]) -> str:
    if search.sampler == "grid" and not is_grid(space):
        raise ConfigError("search.sampler grid: every dimension needs a list of values")
    if search.sampler == "auto":
        return "grid" if is_grid(space) else "tpe"
    return search.sampler


def budget(search: SearchSpec, space: dict[str, Dimension]) -> int:
    """The number of trials: ``trials``, at most the grid's size for a grid."""
    if sampler_kind(search, space) == "grid":
        size = grid_size(space)
        return min(search.trials or size, size)
    if search.trials is None:
        raise ConfigError("search.trials: a TPE search needs a trial budget")
    return search.trials


def study_name(spec: ExperimentSpec) -> str:
    return spec.search.study or spec.name


# ---------------------------------------------------------------------------------- storage


def storage_url(spec: ExperimentSpec, store: Store, storage: str | None = None) -> str:
    """``storage`` (the CLI's), else $CRANEREC_STORAGE, else the spec's, else SQLite in the store."""
    url = storage or os.environ.get(STORAGE_ENV) or spec.search.storage
    return url or f"sqlite:///{(store.root / 'optuna.sqlite3').resolve()}"


def masked(url: str) -> str:
    """A storage URL with its password hidden (what reports and status print)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` names psycopg2 in SQLAlchemy; use psycopg 3 (the ``postgres`` extra)
    when that is what is installed."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
            return f"postgresql+psycopg://{rest}"
    return url


def make_storage(url: str):
    """An Optuna RDB storage with heartbeats: a trial whose worker died is failed and retried."""
    import optuna

    url = sqlalchemy_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    else:
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
    with warnings.catch_warnings():  # heartbeats are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=60, grace_period=300,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
            **kwargs,
        )  # fmt: skip
    if url.startswith("sqlite"):
        _sqlite_wal(storage.engine)
    return storage


def _sqlite_wal(engine) -> None:
    """WAL journal (readers never block the writer) and commits without a disk flush each
    (safe against a crashed process; the last trials may be lost to a power cut)."""
    from sqlalchemy import event

    def pragmas(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(engine, "connect", pragmas)
    with engine.connect() as con:
        con.exec_driver_sql("PRAGMA journal_mode=WAL")
    engine.dispose()  # pooled connections made before the listener reconnect with it


def open_study(spec: ExperimentSpec, url: str, worker: int = 0):
    """Create or load the spec's study with its sampler and pruner."""
    optuna = require("optuna", "experiments", "a hyper-parameter search")

    search = spec.search
    space = search_space(search)
    if sampler_kind(search, space) == "grid":
        sampler = optuna.samplers.GridSampler({k: d.values for k, d in space.items()}, seed=0)
    else:  # distinct seeds per worker, and pending trials count as taken (constant liar)
        sampler = optuna.samplers.TPESampler(seed=search.seed + worker, constant_liar=True)
    if search.pruner == "median":
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=search.pruner_startup_trials,
            n_warmup_steps=search.pruner_warmup_epochs,
        )
    else:
        pruner = optuna.pruners.NopPruner()
    for attempt in range(5):  # workers starting together race to create the tables
        try:
            return optuna.create_study(
                study_name=study_name(spec), storage=make_storage(url), sampler=sampler,
                pruner=pruner, direction="maximize", load_if_exists=True,
            )  # fmt: skip
        except Exception as e:  # sqlalchemy's IntegrityError / OperationalError
            if attempt == 4 or type(e).__name__ not in ("IntegrityError", "OperationalError"):
                raise
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------- trials


class SurplusTrialError(Exception):
    """A trial started after the budget was taken (a race between workers): trains nothing."""


def _counts_toward_budget(t) -> bool:
    return "failed_trial" not in t.system_attrs and not t.user_attrs.get("surplus")


def _budget_left(study, n: int) -> bool:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    waiting = any(t.state == TrialState.WAITING for t in trials)
    return waiting or sum(_counts_toward_budget(t) for t in trials) < n


class Objective:
    """Train one trial's run; report the validation curve; return the best validation value."""

    def __init__(
        self, spec: ExperimentSpec, store: Store, threads: int, device: str | None = None,
        lines: bool = False,
    ) -> None:  # fmt: skip
        from cranerec.experiments.workers import DataCache

        self.spec, self.store, self.threads, self.device = spec, store, threads, device
        self.lines = lines  # say each trial's start, epochs and end (no bar on stderr)
        self.space = search_space(spec.search)
        self.n = budget(spec.search, self.space)
        self.base = search_base_raw(spec)
        self.cache = DataCache()

    def __call__(self, trial) -> float:
        import optuna

        from cranerec.experiments.workers import RunLines, dataset_info, place
        from cranerec.train.config import resolve_config
        from cranerec.train.run import train_run
        from cranerec.train.rundir import RunDir

        system_attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
        if "failed_trial" not in system_attrs:
            earlier = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number]
            if sum(_counts_toward_budget(t) for t in earlier) >= self.n:
                trial.set_user_attr("surplus", True)
                raise SurplusTrialError(
                    f"trial {trial.number}: the budget of {self.n} trials was already taken"
                )
        params = {key: dim.suggest(trial, key) for key, dim in self.space.items()}
        config = resolve_config(deep_merge(self.base, nested(params)))
        config = place(config, self.threads, self.device)
        dataset = self.cache.get(config.data)
        metric = self.spec.search.metric
        if metric not in _valid_keys(config):
            raise ConfigError(f"search.metric {metric!r} is not computed by the evaluator")
        # A retry (same number, same config) resumes its run; anything else gets its own dir.
        number = system_attrs.get("failed_trial", trial.number)
        rid = run_id(config, dataset.fingerprint)
        run_dir = self.store.root / "search" / study_name(self.spec) / f"trial-{number}-{rid}"
        where = {"dir": str(run_dir.relative_to(self.store.root)), "host": socket.gethostname()}
        trial.set_user_attr("run", where)
        lines = RunLines(
            f"{self.spec.name}: trial {trial.number}", metric, self.lines,
            config.train.min_epochs,
        )  # fmt: skip
        began = "resumed" if RunDir(run_dir).checkpoint.exists() else "started"
        lines.say(f"{began}: " + ", ".join(f"{k}={v}" for k, v in params.items()))

        def report(record: dict[str, Any]) -> None:
            lines.epoch(record)
            trial.report(record["valid"][metric], step=record["epoch"])
            if trial.should_prune():
                why = f"pruned after epoch {record['epoch']}: valid {metric} {record['valid'][metric]:.4f}"
                lines.say(why)
                raise optuna.TrialPruned(why)

        try:
            results = train_run(config, run_dir, dataset, callbacks=[report])
        except optuna.TrialPruned:
            raise
        except Exception as e:
            lines.say(f"failed: {type(e).__name__}: {' '.join(str(e).split())}")
            raise
        lines.done(results)
        keys = ("valid", "test", "best_epoch", "epochs_run", "epoch_seconds_mean")
        trial.set_user_attr(
            "results", {**{k: results[k] for k in keys}, "data": dataset_info(dataset)}
        )
        return float(results["valid"][metric])


def _valid_keys(config) -> set[str]:
    return {f"{m}@{k}" for m in config.eval.metrics for k in config.eval.ks}


def search_worker(
    spec: ExperimentSpec,
    store: Store,
    url: str,
    threads: int,
    worker: int = 0,
    device: str | None = None,
    lines: bool = False,
) -> int:
    """Run trials of the spec's study until its budget is spent, saying how each goes in lines
    when ``lines``; returns how many it ran."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(spec, url, worker)
    objective = Objective(spec, store, threads, device, lines)
    done = 0
    while _budget_left(study, objective.n):
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
        done += 1
    return done


def _search_worker_main(
    spec: ExperimentSpec,
    store_root: str,
    url: str,
    threads: int,
    worker: int,
    device: str | None = None,
    lines: bool = False,
) -> None:
    from cranerec.experiments.workers import configure_child

    configure_child(threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    search_worker(spec, Store(store_root), url, threads, worker, device, lines)


def run_search(
    spec: ExperimentSpec,
    store: Store,
    workers: int = 1,
    storage: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    lines: bool = False,
) -> dict[str, int]:
    """Run the spec's search with ``workers`` local processes (training on ``device`` when
    given, with ``threads`` torch threads each when given; each trial said in lines when
    ``lines``); returns trial counts by state."""
    import json

    from cranerec.experiments.workers import plan_workers, start_workers, wait_for

    url = storage_url(spec, store, storage)
    studies_path = store.root / STUDIES_FILE
    studies = json.loads(studies_path.read_text()) if studies_path.exists() else {}
    studies[spec.name] = {"study": study_name(spec), "storage": masked(url)}
    studies_path.write_text(json.dumps(studies, indent=2, sort_keys=True))
    raw_threads = (
        spec.base.get("train", {}).get("threads", 0)
        if isinstance(spec.base.get("train"), dict)
        else 0
    )
    n_workers, planned = plan_workers(workers, max_threads=raw_threads)
    threads = threads or planned
    open_study(spec, url)  # tables and study created once, before the workers start
    if n_workers == 1:
        search_worker(spec, store, url, threads, device=device, lines=lines)
    else:
        procs = start_workers(
            _search_worker_main,
            lambda i: (spec, str(store.root), url, threads, i, device, lines),
            n_workers,
            threads,
        )
        wait_for(procs)
    return trial_counts(spec, store, storage)


# ---------------------------------------------------------------------------------- reading


def load_trials(spec: ExperimentSpec, store: Store, storage: str | None = None):
    """The study's trials (``None`` when the study does not exist yet)."""
    optuna = require("optuna", "experiments", "a hyper-parameter search")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage_url(spec, store, storage)
    try:
        study = optuna.load_study(study_name=study_name(spec), storage=make_storage(url))
    except KeyError:
        return None
    return study.get_trials(deepcopy=False)


def trial_counts(spec: ExperimentSpec, store: Store, storage: str | None = None) -> dict[str, int]:
    """Trials per state: complete, pruned, failed, running, waiting, surplus."""
    trials = load_trials(spec, store, storage) or []
    out = dict.fromkeys(("complete", "pruned", "failed", "running", "waiting", "surplus"), 0)
    for t in trials:
        key = "surplus" if t.user_attrs.get("surplus") else t.state.name.lower()
        out[key] = out.get(key, 0) + 1
    return out


def best_trial(trials) -> Any:
    """The complete trial with the best validation value (ties: the earlier trial)."""
    from optuna.trial import TrialState

    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def search_status(
    spec: ExperimentSpec, store: Store, storage: str | None = None, width: int = 40
) -> str:
    from tqdm import tqdm

    space = search_space(spec.search)
    n = budget(spec.search, space)
    url = storage_url(spec, store, storage)
    trials = load_trials(spec, store, storage)
    head = f"search {study_name(spec)} ({sampler_kind(spec.search, space)}, budget {n} trials) in {masked(url)}"
    if trials is None:
        return head + "\n  not started"
    counts = trial_counts(spec, store, storage)
    finished = counts["complete"] + counts["pruned"] + counts["failed"]
    lines = [
        head,
        tqdm.format_meter(
            min(finished, n),
            n,
            0,
            ncols=width + 30,
            bar_format="{percentage:3.0f}% |{bar}| {n_fmt}/{total_fmt} trials finished",
        ),
    ]
    lines.append("  ".join(f"{k} {v}" for k, v in counts.items()))
    best = best_trial(trials)
    if best is not None:
        params = ", ".join(f"{k}={v}" for k, v in best.params.items())
        lines.append(
            f"  best so far: trial {best.number}, valid {spec.search.metric} {best.value:.4f} ({params})"
        )
    return "\n".join(lines)


def read_studies(root: Path) -> dict[str, Any]:
    import json

    path = Path(root) / STUDIES_FILE
    return json.loads(path.read_text()) if path.exists() else {}
