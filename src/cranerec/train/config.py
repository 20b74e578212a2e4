"""The run configuration: data, model, training and evaluation settings, with named presets.

Resolution order (later wins): defaults < model preset < YAML file < ``--set`` < explicit CLI
flags. The ``model`` section holds ``name`` plus that model's own typed settings.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cranerec.config import ConfigError, Settings, deep_merge, from_dict, to_dict
from cranerec.data.loaders import DataConfig
from cranerec.eval.evaluator import EvalConfig
from cranerec.models import get_model_class
from cranerec.train.sampler import NegativePool
from cranerec.utils.env import usable_physical_cores

DEFAULT_MODEL = "lightgcn"


@dataclass(frozen=True)
class TrainConfig(Settings):
    """Training-loop settings (model-agnostic; MMRec's defaults).

    ``negative_pool``: ``all`` (uniform over every item) or ``seen`` (MMRec's items-seen-in-
    training pool). ``weight_decay``: Adam's L2 on all parameters (off by default; models apply
    L2 to the batch's embeddings through their own ``reg_weight``). ``time_budget_s``: stop
    after this much training time (accumulated across resumes). ``threads``: torch threads
    (0 = the physical cores this process may use). ``progress``: show a progress bar when writing to a terminal.
    ``min_epochs``: the first ``min_epochs`` epochs are validated and logged but can neither be
    the best epoch nor count towards ``patience`` (a model whose loss stalls at the start, e.g. a
    contrastive term that dominates BPR, is not judged by an early snapshot); 0 = off.
    ``lr_decay`` / ``lr_decay_every``: epoch e (0-based) trains with
    ``lr * lr_decay ** (e / lr_decay_every)`` (MMRec's ``learning_rate_scheduler``; 1.0 = off).
    """

    epochs: int = 1000
    batch_size: int = 2048
    lr: float = 1e-3
    lr_decay: float = 1.0
    lr_decay_every: int = 50
    weight_decay: float = 0.0
    patience: int = 20
    stop_metric: str = "recall@20"
    time_budget_s: float | None = None
    negative_pool: NegativePool = "all"
    threads: int = 0
    device: str = "cpu"
    progress: bool = True
    min_epochs: int = 0

    ADDED: ClassVar[dict[str, Any]] = {"min_epochs": 0}

    def validate(self) -> None:
        for key, low in (("epochs", 0), ("batch_size", 1), ("patience", 1), ("threads", 0)):
            if getattr(self, key) < low:
                raise ConfigError(f"{key} must be >= {low}, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.lr_decay <= 1 or self.lr_decay_every < 1:
            raise ConfigError("lr_decay must be in (0, 1] and lr_decay_every >= 1")
        if "@" not in self.stop_metric:
            raise ConfigError(f"stop_metric must look like recall@20, got {self.stop_metric!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"device must be cpu or cuda[:N], got {self.device!r}")

    @property
    def n_threads(self) -> int:
        """Torch threads: ``threads``, or the physical cores this process may run on."""
        return self.threads or usable_physical_cores()


@dataclass(frozen=True)
class RunConfig(Settings):
    """Everything one training run needs. ``model`` is the model's own config dataclass."""

    model_name: str = DEFAULT_MODEL
    seed: int = 999
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    model: Settings | None = None  # the model's own config (its class's Config)

    def to_dict(self) -> dict[str, Any]:
        """The YAML-able form: ``{"model": {"name": ..., **settings}, "seed", "data", ...}``."""
        return {
            "model": {"name": self.model_name, **to_dict(self.model)},
            "seed": self.seed,
            "data": to_dict(self.data),
            "train": to_dict(self.train),
            "eval": to_dict(self.eval),
        }


def check_seed(seed: Any) -> None:
    """A training seed is an integer numpy and torch both accept."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")


TOP_KEYS = ("model", "seed", "data", "train", "eval", "preset")


def with_settings_added_since(raw: dict[str, Any]) -> dict[str, Any]:
    """A stored config (a run directory's ``config.yaml``) with each setting added after it was
    written (``ADDED``) at the value the run had then, not at today's default: a default that
    changes later must not change what an old run computes when it is served or resumed."""
    sections: dict[str, Any] = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig}
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("name"), str):
        with contextlib.suppress(ValueError):  # an unknown model: resolve_config names it
            sections["model"] = get_model_class(model["name"]).Config
    out = dict(raw)
    for section, cls in sections.items():
        if isinstance(out.get(section), dict):
            out[section] = {**cls.ADDED, **out[section]}
    return out


def resolve_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a nested dict (YAML layout) into a ``RunConfig``, applying the model preset
    named by ``preset`` underneath the given values."""
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {unknown}; valid top-level keys: {list(TOP_KEYS)}"
        )
    model_raw = raw.get("model")
    if model_raw is not None and not isinstance(model_raw, (str, dict)):
        raise ConfigError(
            f"model: expected a model name or a mapping with name and settings, got {model_raw!r}"
        )
    model_section = {"name": model_raw} if isinstance(model_raw, str) else dict(model_raw or {})
    name = model_section.pop("name", DEFAULT_MODEL)
    if not isinstance(name, str):
        raise ConfigError(f"model.name: expected a model name, got {name!r}")
    try:
        cls = get_model_class(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    preset = raw.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"preset: expected one preset name, got {preset!r}")
    if preset:
        if preset not in cls.presets:
            valid = ", ".join(sorted(cls.presets)) or "none"
            raise ConfigError(f"model {name!r} has no preset {preset!r}; its presets: {valid}")
        base = cls.presets[preset]
        raw = deep_merge(base, {k: v for k, v in raw.items() if k != "preset"})
        model_section = deep_merge(base.get("model", {}), model_section)
        model_section.pop("name", None)
    seed = raw.get("seed", 999)
    check_seed(seed)
    config = RunConfig(
        model_name=name,
        seed=seed,
        data=from_dict(DataConfig, raw.get("data"), "data"),
        train=from_dict(TrainConfig, raw.get("train"), "train"),
        eval=from_dict(EvalConfig, raw.get("eval"), "eval"),
        model=from_dict(cls.Config, model_section, "model"),
    )
    metric, _, k = config.train.stop_metric.partition("@")
    if metric not in config.eval.metrics or not k.isdigit() or int(k) not in config.eval.ks:
        raise ConfigError(
            f"train.stop_metric {config.train.stop_metric!r} is not computed by the evaluator "
            f"(eval.metrics {config.eval.metrics}, eval.ks {config.eval.ks})"
        )
    return config


#: Settings that may differ when a run is resumed. Threads, progress and the evaluation batch do
#: not change results; moving a run to another device is allowed but gives up bit-exactness.
RESUME_FREE_KEYS = {
    ("train", "device"), ("train", "threads"), ("train", "progress"), ("eval", "user_batch_size"),
}  # fmt: skip


def runtime_keys(model_name: str) -> set[tuple[str, str]]:
    """``RESUME_FREE_KEYS`` and the model's own speed-only settings (its config's ``RUNTIME``,
    e.g. ``("model", "rca_block_size")``): what may change between a run and its resume."""
    try:
        runtime = get_model_class(model_name).Config.RUNTIME
    except (KeyError, ValueError, AttributeError):  # an unknown model: its own error comes later
        runtime = frozenset()
    return RESUME_FREE_KEYS | {("model", key) for key in runtime}


def with_settings(config: RunConfig, changes: dict[str, dict[str, Any]]) -> RunConfig:
    """``config`` with the settings in ``changes`` (``{"train": {"threads": 2}, "model":
    {...}}``) changed, each section checked again as it is built."""
    sections = {}
    for section, values in changes.items():
        if not values:
            continue
        current = getattr(config, section)
        sections[section] = from_dict(type(current), {**to_dict(current), **values}, section)
    return dataclasses.replace(config, **sections) if sections else config


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two ``RunConfig.to_dict()`` forms, ignoring
    settings that do not affect results (``runtime_keys``)."""
    free = runtime_keys(str((a.get("model") or {}).get("name", "")))
    out = []
    for section in sorted(set(a) | set(b)):
        va, vb = a.get(section), b.get(section)
        if isinstance(va, dict) and isinstance(vb, dict):
            for key in sorted(set(va) | set(vb)):
                if (section, key) in free or va.get(key) == vb.get(key):
                    continue
                if (section, key) == ("data", "path") and _same_path(va.get(key), vb.get(key)):
                    continue
                out.append(f"{section}.{key}")
        elif va != vb:
            out.append(section)
    return out


def _same_path(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def with_absolute_data_path(config: RunConfig) -> RunConfig:
    """``config`` with its data path absolute when it names an existing file or folder, so that
    a stored run (``cranerec evaluate RUN_DIR``) reads its data from any directory."""
    path = config.data.path
    if path == "synthetic" or not Path(path).exists():
        return config
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, path=str(Path(path).resolve()))
    )


def replace(config: RunConfig, **changes: Any) -> RunConfig:
    """A deep copy of ``config`` with top-level fields replaced (runs never share sections)."""
    return dataclasses.replace(copy.deepcopy(config), **changes)
