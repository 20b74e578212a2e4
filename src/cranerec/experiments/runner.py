"""Run a spec into a store: resumable, several local worker processes, crash-isolated.

``run_experiment(spec, store, workers=N)`` registers the spec's runs in the store's index, then
N workers (processes, or this process when N is 1) claim runs one at a time until none is left:
each trains with ``cranerec.train.train_run`` into ``STORE/runs/<run id>`` and records the run
done with a results summary, or failed with its error, and goes on to the next. A second call
skips done runs and resumes interrupted ones from their checkpoints. Torch threads are divided
between the workers so that workers x threads never exceeds the cores this process may use.
Then the spec's search, if any, runs with the same workers (``cranerec.experiments.search``).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cranerec.config import ConfigError, to_dict
from cranerec.experiments.spec import ExperimentSpec, Selection, run_id, runs_of
from cranerec.experiments.store import Store, count_states
from cranerec.experiments.workers import (
    DataCache,
    RunLines,
    _data_key,
    available_cores,
    configure_child,
    dataset_info,
    place,
    plan_workers,
    start_workers,
    wait_for,
)
from cranerec.train.rundir import RunDir
from cranerec.utils.env import current_peak_rss_mb, reset_peak_rss
from cranerec.utils.progress import progress_mode

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 30.0


# ---------------------------------------------------------------------------------- data


def _data_signature(path: str) -> str:
    """Sizes and modification times of the files under a data path (``synthetic``: itself)."""
    p = Path(path)
    if path == "synthetic" or not p.exists():
        return path
    files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
    return json.dumps([(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files])


def _fingerprint(store: Store, config, cache: DataCache) -> tuple[str, dict[str, Any]]:
    data = to_dict(config)
    key, signature = _data_key(data), _data_signature(config.path)
    hit = store.cached_fingerprint(key, signature)
    if hit is not None:
        return hit
    dataset = cache.get(config)
    info = dataset_info(dataset)
    store.cache_fingerprint(key, signature, dataset.fingerprint, info)
    return dataset.fingerprint, info


# ---------------------------------------------------------------------------------- registering


def register(spec: ExperimentSpec, store: Store) -> list[dict[str, Any]]:
    """Resolve every run of ``spec``, compute its id and record the spec and its runs in the
    store (new runs pending; known ones keep their status). The spec's name is its identity:
    its run list replaces the one registered under that name before, which workers already
    running under the name then follow; a warning says so when another file registered it."""
    previous = next((s for s in store.specs() if s["name"] == spec.name), None)
    if previous is not None and previous["source"] != spec.source:
        log.warning(
            "%s: the spec name %r was registered from %s; this file's run list replaces that "
            "one (workers running it now train these runs). Give this file its own `name:` "
            "to keep both",
            spec.source,
            spec.name,
            previous["source"],
        )
    rows = resolve(spec, store)
    store.register_spec(spec.name, spec.source, spec.text, spec.smoke)
    store.add_runs(spec.name, rows)
    return rows


def selected_positions(spec: ExperimentSpec, selection: Selection | None) -> list[int] | None:
    """The positions in ``runs_of(spec)`` of the runs ``selection`` keeps (None: every run);
    checked before anything is written, so a bad selection leaves the store as it was."""
    if selection is None:
        return None
    return [r.position for r in selection.select(spec, runs_of(spec))]


def resolve(spec: ExperimentSpec, store: Store) -> list[dict[str, Any]]:
    """Every run of ``spec`` with its id, as ``register`` records them, without changing what
    the store lists under the spec's name (the data fingerprints are cached)."""
    from cranerec.train.config import with_absolute_data_path

    cache = DataCache()
    rows = []
    for run in runs_of(spec):
        config = with_absolute_data_path(run.config)
        fingerprint, info = _fingerprint(store, config.data, cache)
        rows.append({
            "run_id": run_id(config, fingerprint), "model": run.model, "dataset": run.dataset,
            "setting": run.setting, "seed": run.seed, "fingerprint": fingerprint,
            "config": config.to_dict(), "position": run.position, "data": info,
        })  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------- adopting


def _run_dir_fingerprint(run_dir: Path) -> str:
    """The data fingerprint a run directory was trained on (results.json, else checkpoint.pt)."""
    from cranerec.config import ConfigError

    run = RunDir(run_dir)
    if run.finished:
        return run.read_results()["data_fingerprint"]
    if run.checkpoint.exists():
        return run.load_checkpoint()["data_fingerprint"]
    raise ConfigError(f"{run_dir} has neither results.json nor checkpoint.pt: nothing to adopt")


def adopt(spec: ExperimentSpec, store: Store, run_dirs: list[str | Path]) -> list[str]:
    """Take run directories trained outside the store (``cranerec train --out DIR``) into it,
    so that a spec does not train them again. A directory is adopted when its resolved config
    and data fingerprint give the id of one of the spec's runs (the same id the runner computes)
    and the store has no result for that run yet: it is copied to ``STORE/runs/<id>`` (through a
    temporary directory, renamed at the end) and recorded done if it finished; an interrupted
    one stays pending and resumes from its checkpoint. Returns one line per directory."""
    import shutil

    from cranerec.train.run import read_run_config

    rows = {r["run_id"]: r for r in register(spec, store)}
    lines = []
    for src in map(Path, run_dirs):
        config = read_run_config(src)
        rid = run_id(config, _run_dir_fingerprint(src))
        if rid not in rows:
            lines.append(f"{src}: matches no run of {spec.name} (config or data differ); skipped")
            continue
        row, target = store.get(rid), store.run_dir(rid)
        finished = RunDir(src).finished
        if row.status in ("done", "running") or (target.exists() and not finished):
            lines.append(f"{src}: run {rid} is already {row.status} in the store; skipped")
            continue
        tmp = target.with_name(f".{rid}.adopting")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        if target.exists():  # an unfinished copy, replaced by a finished run
            shutil.rmtree(target)
        tmp.rename(target)
        if finished:
            results = RunDir(target).read_results()
            summary = summarize_results(results, rows[rid]["data"], results.get("peak_rss_mb"))
            store.finish(rid, summary)
        lines.append(f"{src}: adopted as run {rid} ({'done' if finished else 'to resume'})")
    return lines


# ---------------------------------------------------------------------------------- one run


def summarize_results(
    results: dict[str, Any], data: dict[str, Any], peak_mb: float | None
) -> dict[str, Any]:
    """The part of results.json kept in the index (what status and reports read)."""
    keys = ("valid", "test", "best_epoch", "epochs_run", "stop_reason", "epoch_seconds_mean",
            "epoch_seconds_median", "eval_seconds_mean", "torch_threads", "device", "synthetic_data",
            "dataset")  # fmt: skip
    out = {k: results.get(k) for k in keys}
    out["peak_rss_mb"] = peak_mb if peak_mb is not None else results.get("peak_rss_mb")
    out["data"] = data
    out["pid"] = os.getpid()  # the process that trained it (isolated runs: a fresh one)
    return out


def execute(
    store: Store,
    run_id_: str,
    threads: int,
    cache: DataCache | None = None,
    device: str | None = None,
    lines: RunLines | None = None,
) -> str:
    """Train one claimed run (on ``device`` when given, else the device its config names; the
    device, like the threads, is no part of a run's id); record it done or failed, saying so
    (and each epoch) with ``lines`` when given. Returns the final status."""
    from cranerec.train.config import resolve_config
    from cranerec.train.run import train_run

    lines = RunLines("", enabled=False) if lines is None else lines
    row = store.get(run_id_)
    run_dir = store.run_dir(run_id_)
    try:
        config = resolve_config(row.config)
        config = place(config, threads, device)
        dataset = (cache or DataCache()).get(config.data)
        if dataset.fingerprint != row.fingerprint:
            raise RuntimeError(
                f"the data at {config.data.path} has changed since the run was registered "
                f"(fingerprint {dataset.fingerprint}, registered {row.fingerprint})"
            )
        last = [time.monotonic()]
        lines = replace(lines, metric=config.train.stop_metric, min_epochs=config.train.min_epochs)
        resuming = RunDir(run_dir).checkpoint.exists()
        lines.say(f"{'resumed' if resuming else 'started'} (run {run_id_})")

        def heartbeat(record: dict[str, Any]) -> None:
            lines.epoch(record)
            if time.monotonic() - last[0] > HEARTBEAT_EVERY_S:
                store.heartbeat(run_id_)
                last[0] = time.monotonic()

        measured = reset_peak_rss()
        results = train_run(config, run_dir, dataset, callbacks=[heartbeat])
        peak = current_peak_rss_mb() if measured else None
        store.finish(run_id_, summarize_results(results, dataset_info(dataset), peak))
        lines.done(results)
        return "done"
    except (KeyboardInterrupt, SystemExit):
        store.release(run_id_)
        lines.say("stopped: given back to the store; rerun the command to resume it")
        raise
    except Exception as e:
        text = traceback.format_exc()
        log.error("run %s failed: %s", run_id_, e)
        if run_dir.exists():
            RunDir(run_dir).error.write_text(text, encoding="utf-8")
        store.fail(run_id_, f"{type(e).__name__}: {e}\n\n{text[-4000:]}")
        lines.say(f"failed: {type(e).__name__}: {' '.join(str(e).split())}")
        return "failed"


def _execute_isolated(
    store_root: str, run_id_: str, threads: int, device: str | None, lines: RunLines | None
) -> None:
    """Process target of an isolated run (a fresh process: its peak memory is its own)."""
    configure_child(threads)
    execute(Store(store_root), run_id_, threads, device=device, lines=lines)


def _run_lines(store: Store, spec_name: str, row, enabled: bool) -> RunLines:
    """The lines a run's progress is said in, labelled as its spec labels it."""
    setting = next((r.setting for r in store.runs(spec_name) if r.run_id == row.run_id), "")
    on = f" / {setting}" if setting else ""
    return RunLines(
        f"{spec_name}: {row.model}{on} on {row.dataset}, seed {row.seed}", enabled=enabled
    )


# ---------------------------------------------------------------------------------- workers


def work(
    store: Store,
    spec_name: str,
    threads: int,
    isolate: bool = False,
    on_run=None,
    device: str | None = None,
    only: set[str] | None = None,
    lines: bool = False,
) -> int:
    """Claim and train runs of ``spec_name`` (those of ``only`` when given) until none is left,
    saying how each goes in lines when ``lines``; returns how many were taken."""
    cache = DataCache()
    n = 0
    while True:
        row = store.claim(spec_name, only=only)
        if row is None:
            return n
        n += 1
        log.info(
            "run %s: %s / %s on %s, seed %s",
            row.run_id,
            row.model,
            row.config["model"]["name"],
            row.dataset,
            row.seed,
        )
        say = _run_lines(store, spec_name, row, lines) if lines else None
        if isolate:
            proc = mp.get_context("spawn").Process(
                target=_execute_isolated, args=(str(store.root), row.run_id, threads, device, say)
            )
            proc.start()
            try:
                proc.join()
            except BaseException:
                proc.terminate()
                proc.join()
                raise
            if store.get(row.run_id).status == "running":  # died without recording
                why = f"its process exited with code {proc.exitcode} (killed, or out of memory?)"
                store.fail(row.run_id, why)
                if say is not None:
                    say.say(f"failed: {why}")
        else:
            execute(store, row.run_id, threads, cache, device, say)
        if on_run is not None:
            on_run()


def _worker_main(
    store_root: str,
    spec_name: str,
    threads: int,
    isolate: bool,
    device: str | None = None,
    only: set[str] | None = None,
    lines: bool = False,
) -> None:
    configure_child(threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    work(Store(store_root), spec_name, threads, isolate, device=device, only=only, lines=lines)


@dataclass
class Progress:
    """A tqdm bar of done (+ failed) runs out of the spec's total (or of the runs ``only``),
    redrawn from the index."""

    store: Store
    spec: str
    enabled: bool = True
    only: set[str] | None = None

    def counts(self) -> dict[str, int]:
        if self.only is None:
            return self.store.counts(self.spec)
        return count_states(list(self.store.lookup(sorted(self.only)).values()))

    def __post_init__(self) -> None:
        from tqdm.auto import tqdm

        counts = self.counts()
        self.total = sum(counts.values())
        self.bar = tqdm(
            total=self.total, desc=self.spec, unit="run", disable=None if self.enabled else True
        )
        self.update()

    def update(self) -> None:
        counts = self.counts()
        self.bar.n = counts["done"] + counts["failed"]
        self.bar.set_postfix_str(
            f"done {counts['done']}, running {counts['running']}, failed {counts['failed']}",
            refresh=False,
        )
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def run_experiment(
    spec: ExperimentSpec,
    store: Store,
    workers: int = 1,
    retry_failed: bool = False,
    progress: bool = True,
    storage: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    selection: Selection | None = None,
) -> dict[str, int]:
    """Register and run every run of ``spec`` (then its search); returns the final counts.
    ``device`` (``cpu``, ``cuda[:N]``) trains every run there instead of where its config says;
    several workers on one GPU share it. ``threads``: torch threads per worker (default: the
    physical cores shared between the workers); like the device, no part of a run's id.
    ``selection``: train only the runs it keeps (the whole spec is registered all the same, so
    its report and status stay whole) and leave the search out; the counts are of those runs."""
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    if device is not None:
        from cranerec.utils.env import resolve_device

        resolve_device(device)  # a clear error now, not one failed run after another
    keep = selected_positions(spec, selection)
    rows = register(spec, store)
    only = None if keep is None else {rows[p]["run_id"] for p in keep}
    if retry_failed:
        store.retry_failed(spec.name, only)
    caps = [r["config"]["train"]["threads"] for r in rows if only is None or r["run_id"] in only]
    max_threads = 0 if not caps or 0 in caps else max(caps)
    n_workers, planned = plan_workers(workers, max_threads=max_threads)
    threads = threads or planned
    if n_workers < workers:
        log.warning(
            "%d workers asked for, %d cores: running %d", workers, available_cores(), n_workers
        )
    bar = Progress(store, spec.name, progress, only)
    lines = progress_mode(progress) == "lines"  # no bar on stderr: a line per epoch instead
    try:
        if n_workers == 1:
            work(store, spec.name, threads, spec.isolate, bar.update, device, only, lines)
        else:
            procs = start_workers(
                _worker_main,
                lambda i: (str(store.root), spec.name, threads, spec.isolate, device, only, lines),
                n_workers,
                threads,
            )
            wait_for(procs, bar.update)
    finally:
        bar.close()
    if spec.search is not None and only is None:
        from cranerec.experiments.search import run_search

        run_search(
            spec, store, workers=workers, storage=storage, device=device, threads=threads,
            lines=lines,
        )  # fmt: skip
    return bar.counts()


# ---------------------------------------------------------------------------------- status


def status_text(
    spec: ExperimentSpec,
    store: Store,
    storage: str | None = None,
    width: int = 40,
    selection: Selection | None = None,
) -> str:
    """Counts, a progress bar and one line per run that is not done (its error when failed),
    of the runs ``selection`` keeps (and no search) when given. Read-only: the runs are this
    file's, looked up by id, and what the store lists under the spec's name (which workers
    running it follow) is left as it is."""
    from tqdm import tqdm

    keep = selected_positions(spec, selection)
    resolved = resolve(spec, store)
    only = None if keep is None else {resolved[p]["run_id"] for p in keep}
    resolved = [r for r in resolved if only is None or r["run_id"] in only]
    known = store.lookup([r["run_id"] for r in resolved])
    rows = [  # one row per run of the spec, labelled as the spec labels it
        replace(
            known.get(r["run_id"]) or store.unregistered_row(r),
            setting=r["setting"],
            spec=spec.name,
            position=r["position"],
            model=r["model"],
            dataset=r["dataset"],
            seed=r["seed"],
        )  # fmt: skip
        for r in resolved
    ]
    counts = count_states(rows)
    total = sum(counts.values())
    done = counts["done"]
    lines = [f"{spec.name}: {total} runs ({spec.source})"] if total else [f"{spec.name}: no runs"]
    if total:
        lines.append(
            tqdm.format_meter(
                done,
                total,
                0,
                ncols=width + 30,
                bar_format="{percentage:3.0f}% |{bar}| {n_fmt}/{total_fmt} done",
            )
        )
        lines.append("  ".join(f"{k} {v}" for k, v in counts.items()))
    for row in rows:
        state = row.state
        if state == "done":
            continue
        line = f"  {state:<11} {row.run_id}  {row.model} / {row.setting} on {row.dataset}, seed {row.seed}"
        if state in ("running", "interrupted"):
            line += f"  ({row.owner}, attempt {row.attempts})"
        if state == "failed" and row.error:
            line += f"\n{'':14}{row.error.splitlines()[0]}"
        lines.append(line)
    if spec.search is not None and only is None:
        from cranerec.experiments.search import search_status

        lines.append(search_status(spec, store, storage, width))
    return "\n".join(lines)
