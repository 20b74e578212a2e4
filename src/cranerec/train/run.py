"""Run directories: one ``cranerec train`` = one directory holding ``config.yaml``,
``metrics.jsonl``, ``checkpoint.pt`` (resume state), ``model.pt`` (best weights + config),
``embeddings.npz``, ``seen.npz`` (each user's items in every split, CSR ``indptr`` / ``indices``
and the split names: what serving excludes), ``per_user.npz`` / ``per_user_valid.npz``, ``training_curve.png`` and
``results.json``.

Rerunning the same command on an interrupted directory resumes it; a finished one is reported,
not retrained; a directory holding a run with a different configuration is refused.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from cranerec._version import __version__
from cranerec.config import ConfigError, deep_merge, from_dict, load_yaml, parse_overrides, to_dict
from cranerec.data.dataset import Dataset
from cranerec.data.loaders import load_dataset
from cranerec.eval.evaluator import Evaluator
from cranerec.models import get_model_class
from cranerec.train.config import (
    RunConfig,
    TrainConfig,
    check_seed,
    config_differences,
    replace,
    resolve_config,
    with_absolute_data_path,
    with_settings_added_since,
)
from cranerec.train.curve import plot_training_curve
from cranerec.train.distributed import Ranks
from cranerec.train.rundir import (
    CONFIG_FILE,
    EMBEDDINGS_FILE,
    LOCK_FILE,
    MODEL_FILE,
    RESULTS_FILE,
    SEEN_FILE,
    SUMMARY_FILE,
    RunDir,
    clean_temp_files,
    read_embeddings,
    read_results,
)
from cranerec.train.trainer import EpochCallback, Trainer, seed_everything
from cranerec.utils.env import git_sha, peak_rss_mb
from cranerec.utils.io import (
    exclusive_lock,
    savez_atomic,
    torch_save_atomic,
    write_json_atomic,
    write_text_atomic,
)

log = logging.getLogger(__name__)


def build_config(
    *,
    model: str | None = None,
    preset: str | None = None,
    config_file: str | None = None,
    overrides: list[str] | None = None,
    data: str | None = None,
    data_format: str | None = None,
    seed: int | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> RunConfig:
    """Resolve a ``RunConfig``: defaults < preset < YAML file < ``--set`` < explicit flags."""
    raw: dict[str, Any] = load_yaml(config_file) if config_file else {}
    for key in ("data", "train", "eval"):  # else a --set below would replace it unread
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise ConfigError(
                f"config file {config_file}: {key}: expected a mapping of settings, got "
                f"{raw[key]!r}"
            )
    raw = deep_merge(raw, parse_overrides(overrides or []))
    flags: dict[str, Any] = {}
    if model is not None:
        flags["model"] = {"name": model}
    if preset is not None:
        flags["preset"] = preset
    if data is not None:
        flags.setdefault("data", {})["path"] = data
    if data_format is not None:
        flags.setdefault("data", {})["format"] = data_format
    if seed is not None:
        flags["seed"] = seed
    if device is not None:
        flags.setdefault("train", {})["device"] = device
    if threads is not None:
        flags.setdefault("train", {})["threads"] = threads
    if isinstance(raw.get("model"), str):
        raw["model"] = {"name": raw["model"]}
    return with_absolute_data_path(resolve_config(deep_merge(raw, flags)))


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The configuration stored in a run directory."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    raw = load_yaml(str(path))
    if not isinstance(raw.get("model"), dict) or "name" not in raw["model"]:
        # an empty or hand-cut file would otherwise read as the default (LightGCN) run
        raise ConfigError(
            f"{path} does not name the run's model (model.name): it is empty or not a config "
            "cranerec wrote; restore it, or delete the run directory to train it again"
        )
    return resolve_config(with_settings_added_since(raw))


#: Settings ``extend_run`` may raise on a run trained before: how long it trains, nothing else.
EXTENDABLE = ("train.epochs", "train.time_budget_s")


def _check_run_dir(run_dir: Path, config: RunConfig, extend: bool = False) -> None:
    path = run_dir / CONFIG_FILE
    if path.exists():
        stored = read_run_config(run_dir).to_dict()
        diff = config_differences(stored, config.to_dict())
        if extend:
            diff = [d for d in diff if d not in EXTENDABLE]
        if diff:
            raise ConfigError(
                f"{run_dir} holds a run with a different configuration ({', '.join(diff)} differ); "
                f"choose another --out, or continue it as it was with --resume {run_dir}"
            )
    elif run_dir.exists() and any(
        p.name != LOCK_FILE and not _is_temp(p) for p in run_dir.iterdir()
    ):
        raise ConfigError(
            f"{run_dir} exists and is not an empty run directory; choose another --out"
        )


def _is_temp(path: Path) -> bool:
    """A file an atomic write left behind when it was killed (removed on start)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def extend_run(run_dir: str | Path, epochs: int | None = None, time_budget_s: float | None = None):
    """``cranerec train --resume RUN_DIR --set train.epochs=N``: the run's config with a higher
    epoch cap or time budget. A finished run that stopped at its cap or budget trains on from
    its checkpoint; one that stopped early would not train another epoch, so it is refused."""
    config = read_run_config(run_dir)
    changes = {
        k: v for k, v in (("epochs", epochs), ("time_budget_s", time_budget_s)) if v is not None
    }
    new_train = from_dict(TrainConfig, {**to_dict(config.train), **changes}, "train")
    results_path = Path(run_dir) / RESULTS_FILE
    if results_path.exists():
        results = read_results(results_path)
        reason = results.get("stop_reason")
        if reason == "early stopping":
            raise ConfigError(
                f"{run_dir} stopped early at epoch {results.get('epochs_run')} ({config.train.patience} "
                "epochs without a better validation score): more epochs would not train; train a "
                "new run with a higher train.patience instead"
            )
        if epochs is not None and epochs <= results.get("epochs_run", 0):
            raise ConfigError(
                f"{run_dir} already trained {results.get('epochs_run')} epochs; give train.epochs "
                "above that to extend it"
            )
    return replace(config, train=new_train)


def train_run(
    config: RunConfig,
    run_dir: str | Path,
    dataset: Dataset | None = None,
    callbacks: list[EpochCallback] | None = None,
    extend: bool = False,
    ranks: Ranks | None = None,
) -> dict[str, Any]:
    """Train (or resume, or report) the run in ``run_dir``; returns the results dict.
    ``callbacks`` are called after every epoch trained (``trainer.EpochCallback``). ``extend``
    (a config from ``extend_run``): train a finished run on to its new epoch cap or budget.
    ``ranks``: this process is one of several training the run together (``train.distributed``);
    rank 0 holds the directory and writes everything, the others train beside it."""
    run_dir = Path(run_dir)
    _check_run_dir(run_dir, config, extend)
    results_path = run_dir / RESULTS_FILE
    if dataset is None:
        dataset = load_dataset(config.data)
    if results_path.exists():
        results = read_results(results_path)
        stored = results["data_fingerprint"]
        if stored != dataset.fingerprint:  # never report results of other data as this data's
            raise ConfigError(
                f"{run_dir} finished on data with fingerprint {stored}, but {config.data.path} "
                f"now has fingerprint {dataset.fingerprint} (the data changed): train into "
                "another --out, or delete the run directory to retrain it"
            )
        if not extend:
            log.info("%s is finished; reporting its results", run_dir)
            return results
    torch.set_num_threads(config.train.n_threads)
    seed_everything(config.seed)
    model = get_model_class(config.model_name)(dataset, config.model)
    evaluator = Evaluator(dataset, config.eval)
    if ranks is not None and not ranks.main:
        if not ranks.share(None):  # rank 0 found the run finished: nothing to train
            ranks.barrier()
            return read_results(results_path)
        Trainer(model, dataset, config, evaluator, run_dir, callbacks or (), ranks).fit()
        ranks.barrier()  # rank 0 has written the outputs
        return read_results(results_path)
    results = _train_main(config, run_dir, dataset, model, evaluator, callbacks, extend, ranks)
    if ranks is not None:
        ranks.barrier()
    return results


def _train_main(config, run_dir, dataset, model, evaluator, callbacks, extend, ranks):
    """``train_run`` in the process that holds the run directory (the only one, or rank 0)."""
    results_path = run_dir / RESULTS_FILE
    # Written once data and model are known to load: a failed start does not claim the directory.
    run_dir.mkdir(parents=True, exist_ok=True)
    # One process per run directory: a second `cranerec train --out DIR` would write every epoch
    # twice into metrics.jsonl.
    with exclusive_lock(run_dir / LOCK_FILE, f"run directory {run_dir}"):
        if results_path.exists() and extend:
            # no longer finished: it trains on from its checkpoint (a kill now leaves an
            # interrupted run that the same command resumes)
            results_path.unlink()
        finished = results_path.exists()  # by the process that held the lock before us
        if ranks is not None:
            ranks.share(not finished)  # the other ranks train only if this one does
        if finished:
            return read_results(results_path)
        for tmp in clean_temp_files(run_dir):  # left by a kill during an atomic write
            log.info("removed %s, a write cut short by a kill", tmp)
        write_text_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
        trainer = Trainer(model, dataset, config, evaluator, run_dir, callbacks or (), ranks)
        state = trainer.fit()

        t0 = time.perf_counter()
        user_emb, item_emb = model.export_embeddings()
        valid = evaluator.evaluate(user_emb, item_emb, "valid")
        test = evaluator.evaluate(user_emb, item_emb, "test")
        final_eval_s = time.perf_counter() - t0
        _write_outputs(run_dir, config, dataset, model, (user_emb, item_emb), valid, test)
        eval_times = state.eval_seconds or [final_eval_s / 2]
        results = {
            "model": config.model_name,
            "dataset": dataset.name,
            "synthetic_data": dataset.synthetic,
            "data_fingerprint": dataset.fingerprint,
            "seed": config.seed,
            "best_epoch": state.best_epoch,
            "epochs_run": state.epoch,
            "stop_reason": state.stop_reason,
            # an empty split (a `full` build) has no metrics, not zeros that read as scores
            "valid": valid.metrics if len(valid.users) else {},
            "test": test.metrics if len(test.users) else {},
            "n_eval_users": {"valid": len(valid.users), "test": len(test.users)},
            "epoch_seconds_mean": float(np.mean(state.epoch_seconds))
            if state.epoch_seconds
            else 0.0,
            # the median is what tables quote: one epoch stretched by a paused or busy machine
            # moves the mean, not the median
            "epoch_seconds_median": (
                float(np.median(state.epoch_seconds)) if state.epoch_seconds else 0.0
            ),
            "eval_seconds_mean": float(np.mean(eval_times)),
            "peak_rss_mb": peak_rss_mb(),
            "torch_threads": torch.get_num_threads(),
            "device": str(config.train.device),
            "git_sha": git_sha(),
            "cranerec_version": __version__,
        }
        if state.epoch:  # drawn before results.json, which marks the run finished
            synthetic = " (SYNTHETIC data)" if dataset.synthetic else ""
            try:
                plot_training_curve(
                    RunDir(run_dir).metrics, RunDir(run_dir).curve, config.train.stop_metric,
                    title=f"{config.model_name} on {dataset.name}{synthetic}, seed {config.seed}",
                )  # fmt: skip
            except Exception as e:  # a plot must never cost a finished run its results
                log.warning(
                    "could not draw the training curve from %s (%s: %s); the results are kept",
                    RunDir(run_dir).metrics, type(e).__name__, e,
                )  # fmt: skip
        write_json_atomic(results_path, results)
        return results


def _write_outputs(run_dir: Path, config: RunConfig, dataset: Dataset, model, embeddings,
                   valid, test) -> None:  # fmt: skip
    """What a finished run leaves for serving and statistics: ``model.pt``, ``per_user.npz``
    per split, ``embeddings.npz`` and ``seen.npz`` (results.json is written after them)."""
    user_emb, item_emb = embeddings
    # The restored best weights with the arguments that built the model (loadable with
    # torch.load(weights_only=True)): what serving needs beside embeddings.npz.
    torch_save_atomic(
        run_dir / MODEL_FILE,
        {"model_name": config.model_name, "config": config.to_dict(),
         "data_fingerprint": dataset.fingerprint, "state_dict": model.state_dict()},
    )  # fmt: skip
    test.save_per_user(str(RunDir(run_dir).per_user("test")), dataset.user_ids)
    valid.save_per_user(str(RunDir(run_dir).per_user("valid")), dataset.user_ids)
    savez_atomic(
        run_dir / EMBEDDINGS_FILE,
        user_emb=user_emb.float().cpu().numpy(), item_emb=item_emb.float().cpu().numpy(),
        user_ids=np.asarray(dataset.user_ids).astype(str), item_ids=np.asarray(dataset.item_ids).astype(str),
        synthetic_data=np.array(dataset.synthetic),
    )  # fmt: skip
    # everything the run saw, so serving never recommends an item a user already has
    seen = (dataset.train + dataset.valid + dataset.test).tocsr()
    seen.sum_duplicates()
    seen.sort_indices()
    savez_atomic(
        run_dir / SEEN_FILE, indptr=seen.indptr.astype(np.int64),
        indices=seen.indices.astype(np.int64), shape=np.array(seen.shape, np.int64),
        splits=np.array(["train", "valid", "test"]),
    )  # fmt: skip


def train_seeds(
    config: RunConfig, seeds: list[int], out: str | Path, dataset: Dataset | None = None
) -> dict[str, Any]:
    """One run directory per seed (``out/seed-N``), then ``out/summary.json`` with the mean and
    standard deviation of every metric. Finished seeds are reported, interrupted ones resumed."""
    out = Path(out)
    for seed in seeds:
        check_seed(seed)
    if len(set(seeds)) != len(seeds):  # one seed counted twice would shrink the spread
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        raise ConfigError(f"--seeds lists seed(s) {dup} more than once; give each seed once")
    if (out / CONFIG_FILE).exists():
        raise ConfigError(
            f"--out {out}: holds a training run ({CONFIG_FILE}); --seeds writes "
            f"{out}/seed-N/ and {SUMMARY_FILE} into a folder of their own: give another --out"
        )
    if dataset is None:
        dataset = load_dataset(config.data)
    runs = []
    for seed in seeds:
        log.info("seed %d", seed)
        runs.append(train_run(replace(config, seed=seed), out / f"seed-{seed}", dataset))
    summary = summarize(runs)
    write_json_atomic(out / SUMMARY_FILE, summary)
    return summary


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation over runs of every valid/test metric and timing."""

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        }

    out: dict[str, Any] = {
        "model": runs[0]["model"], "dataset": runs[0]["dataset"],
        "data_fingerprint": runs[0]["data_fingerprint"], "seeds": [r["seed"] for r in runs],
        "synthetic_data": bool(runs[0].get("synthetic_data", False)),
    }  # fmt: skip
    for split in ("valid", "test"):
        out[split] = {k: stats([r[split][k] for r in runs]) for k in runs[0][split]}
    for key in (
        "best_epoch",
        "epochs_run",
        "epoch_seconds_mean",
        "epoch_seconds_median",
        "eval_seconds_mean",
        "peak_rss_mb",
    ):
        out[key] = stats([float(r[key]) for r in runs if key in r])
    return out


def evaluate_run(
    run_dir: str | Path, split: str = "test", with_flag: bool = False
) -> dict[str, float] | tuple[dict[str, float], bool]:
    """Re-evaluate a finished run from its ``embeddings.npz`` on the data its config names.
    With ``with_flag``, also return whether that data is synthetic."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    emb_path = run_dir / EMBEDDINGS_FILE
    if not emb_path.exists():
        raise ConfigError(f"{run_dir} has no {EMBEDDINGS_FILE}: the run has not finished")
    dataset = load_dataset(config.data)
    results_path = run_dir / RESULTS_FILE
    if results_path.exists():
        stored = read_results(results_path)["data_fingerprint"]
        if stored != dataset.fingerprint:
            raise ConfigError(
                f"{config.data.path} has changed since the run (fingerprint {dataset.fingerprint}, "
                f"run trained on {stored})"
            )
    user_emb, item_emb = read_embeddings(emb_path, dataset.n_users, dataset.n_items)
    evaluator = Evaluator(dataset, config.eval)
    if not len(evaluator.users(split)):
        raise ValueError(
            f"{run_dir}: no user of the {split} split of its data has a training interaction "
            f"(an empty split, as in a `full` build): nothing to evaluate"
        )
    metrics = evaluator.evaluate(user_emb, item_emb, split).metrics
    return (metrics, dataset.synthetic) if with_flag else metrics
