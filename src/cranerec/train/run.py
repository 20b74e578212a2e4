"""Run directories: one ``cranerec train`` = one directory holding ``config.yaml``,
``metrics.jsonl``, ``checkpoint.pt`` (resume state), ``model.pt`` (best weights + config),
``embeddings.npz``, ``seen.npz`` (each user's training items, CSR ``indptr`` / ``indices``: what
serving excludes), ``per_user.npz`` / ``per_user_valid.npz``, ``training_curve.png`` and
``results.json``.

Rerunning the same command on an interrupted directory resumes it; a finished one is reported,
not retrained; a directory holding a run with a different configuration is refused.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import cranerec
from cranerec.config import ConfigError, deep_merge, load_yaml, parse_overrides
from cranerec.data.dataset import Dataset
from cranerec.data.loaders import load_dataset
from cranerec.eval.evaluator import Evaluator
from cranerec.experiments.plots import plot_training_curve
from cranerec.models import get_model_class
from cranerec.train.config import RunConfig, config_differences, replace, resolve_config
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

CONFIG_FILE = "config.yaml"
RESULTS_FILE = "results.json"
EMBEDDINGS_FILE = "embeddings.npz"
MODEL_FILE = "model.pt"
SEEN_FILE = "seen.npz"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".lock"  # held (flock) by the process training the run


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
) -> RunConfig:
    """Resolve a ``RunConfig``: defaults < preset < YAML file < ``--set`` < explicit flags."""
    raw: dict[str, Any] = load_yaml(config_file) if config_file else {}
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
    if isinstance(raw.get("model"), str):
        raw["model"] = {"name": raw["model"]}
    config = resolve_config(deep_merge(raw, flags))
    if config.data.path != "synthetic" and Path(config.data.path).exists():
        # Stored absolute so that `cranerec evaluate RUN_DIR` works from any directory.
        config.data.path = str(Path(config.data.path).resolve())
    return config


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The configuration stored in a run directory."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    return resolve_config(load_yaml(str(path)))


def _check_run_dir(run_dir: Path, config: RunConfig) -> None:
    path = run_dir / CONFIG_FILE
    if path.exists():
        stored = read_run_config(run_dir).to_dict()
        diff = config_differences(stored, config.to_dict())
        if diff:
            raise ConfigError(
                f"{run_dir} holds a run with a different configuration ({', '.join(diff)} differ); "
                f"choose another --out, or continue it as it was with --resume {run_dir}"
            )
    elif run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        raise ConfigError(
            f"{run_dir} exists and is not an empty run directory; choose another --out"
        )


def train_run(
    config: RunConfig,
    run_dir: str | Path,
    dataset: Dataset | None = None,
    callbacks: list[EpochCallback] | None = None,
) -> dict[str, Any]:
    """Train (or resume, or report) the run in ``run_dir``; returns the results dict.
    ``callbacks`` are called after every epoch trained (``trainer.EpochCallback``)."""
    run_dir = Path(run_dir)
    _check_run_dir(run_dir, config)
    results_path = run_dir / RESULTS_FILE
    if dataset is None:
        dataset = load_dataset(config.data)
    if results_path.exists():
        results = json.loads(results_path.read_text(encoding="utf-8"))
        stored = results.get("data_fingerprint")
        if stored != dataset.fingerprint:  # never report results of other data as this data's
            raise ConfigError(
                f"{run_dir} finished on data with fingerprint {stored}, but {config.data.path} "
                f"now has fingerprint {dataset.fingerprint} (the data changed): train into "
                "another --out, or delete the run directory to retrain it"
            )
        log.info("%s is finished; reporting its results", run_dir)
        return results
    torch.set_num_threads(config.train.n_threads)
    seed_everything(config.seed)
    model = get_model_class(config.model_name)(dataset, config.model)
    evaluator = Evaluator(dataset, config.eval)
    # Written once data and model are known to load: a failed start does not claim the directory.
    run_dir.mkdir(parents=True, exist_ok=True)
    # One process per run directory: a second `cranerec train --out DIR` would write every epoch
    # twice into metrics.jsonl.
    with exclusive_lock(run_dir / LOCK_FILE, f"run directory {run_dir}"):
        if results_path.exists():  # finished by the process that held the lock before us
            return json.loads(results_path.read_text(encoding="utf-8"))
        write_text_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
        trainer = Trainer(model, dataset, config, evaluator, run_dir, callbacks or ())
        state = trainer.fit()

        t0 = time.perf_counter()
        user_emb, item_emb = model.export_embeddings()
        valid = evaluator.evaluate(user_emb, item_emb, "valid")
        test = evaluator.evaluate(user_emb, item_emb, "test")
        final_eval_s = time.perf_counter() - t0
        # The restored best weights with the arguments that built the model (loadable with
        # torch.load(weights_only=True)): what serving needs beside embeddings.npz.
        torch_save_atomic(
            run_dir / MODEL_FILE,
            {"model_name": config.model_name, "config": config.to_dict(),
             "data_fingerprint": dataset.fingerprint, "state_dict": model.state_dict()},
        )  # fmt: skip
        test.save_per_user(str(run_dir / "per_user.npz"), dataset.user_ids)
        valid.save_per_user(str(run_dir / "per_user_valid.npz"), dataset.user_ids)
        savez_atomic(
            run_dir / EMBEDDINGS_FILE,
            user_emb=user_emb.float().cpu().numpy(), item_emb=item_emb.float().cpu().numpy(),
            user_ids=np.asarray(dataset.user_ids).astype(str), item_ids=np.asarray(dataset.item_ids).astype(str),
            synthetic_data=np.array(dataset.synthetic),
        )  # fmt: skip
        savez_atomic(
            run_dir / SEEN_FILE, indptr=dataset.train.indptr.astype(np.int64),
            indices=dataset.train.indices.astype(np.int64), shape=np.array(dataset.train.shape, np.int64),
        )  # fmt: skip
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
            "cranerec_version": cranerec.__version__,
        }
        write_json_atomic(results_path, results)
        if state.epoch:
            synthetic = " (SYNTHETIC data)" if dataset.synthetic else ""
            try:
                plot_training_curve(
                    run_dir / "metrics.jsonl", run_dir / "training_curve.png", config.train.stop_metric,
                    title=f"{config.model_name} on {dataset.name}{synthetic}, seed {config.seed}",
                )  # fmt: skip
            except Exception as e:  # a plot must never cost a finished run its results
                log.warning("could not draw the training curve: %s", e)
        return results


def train_seeds(
    config: RunConfig, seeds: list[int], out: str | Path, dataset: Dataset | None = None
) -> dict[str, Any]:
    """One run directory per seed (``out/seed-N``), then ``out/summary.json`` with the mean and
    standard deviation of every metric. Finished seeds are reported, interrupted ones resumed."""
    out = Path(out)
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
        stored = json.loads(results_path.read_text(encoding="utf-8"))["data_fingerprint"]
        if stored != dataset.fingerprint:
            raise ConfigError(
                f"{config.data.path} has changed since the run (fingerprint {dataset.fingerprint}, "
                f"run trained on {stored})"
            )
    with np.load(emb_path, allow_pickle=False) as z:
        user_emb, item_emb = torch.from_numpy(z["user_emb"]), torch.from_numpy(z["item_emb"])
    evaluator = Evaluator(dataset, config.eval)
    if not len(evaluator.users(split)):
        raise ValueError(
            f"{run_dir}: no user of the {split} split of its data has a training interaction "
            f"(an empty split, as in a `full` build): nothing to evaluate"
        )
    metrics = evaluator.evaluate(user_emb, item_emb, split).metrics
    return (metrics, dataset.synthetic) if with_flag else metrics
