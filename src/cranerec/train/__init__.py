"""Training: the model-agnostic loop, batch sampling, run directories and multi-seed runs."""

from cranerec.train.config import RunConfig, TrainConfig, resolve_config
from cranerec.train.run import build_config, evaluate_run, train_run, train_seeds
from cranerec.train.trainer import Trainer

__all__ = [
    "RunConfig", "TrainConfig", "Trainer", "build_config", "evaluate_run", "resolve_config",
    "train_run", "train_seeds",
]  # fmt: skip
