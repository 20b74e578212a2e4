"""From a validated spec to its runs: every (dataset, model, setting, seed) becomes a ``RunSpec``
whose raw config is defaults < model preset < ``base`` < the model's ``overrides`` < the
setting's ``overrides`` < the dataset section and the seed (``build_raw``), resolved to a
``RunConfig`` on first use; and each run's id (``run_id``), a hash of that resolved config less
``ID_FREE_KEYS``, the data fingerprint and the package version. Also the dotted-key helpers
(``nested``, ``lookup``) that searches and reports use on raw configs."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cranerec.config import ConfigError, deep_merge
from cranerec.experiments.spec_schema import ExperimentSpec
from cranerec.train.config import RESUME_FREE_KEYS, RunConfig, resolve_config

#: Keys of a resolved config left out of the run id: they do not change results (the first
#: four may change between a run and its resume), and the data's content is in the fingerprint.
# Where the data and its features are read from is not part of a run's id: the data fingerprint
# (interactions, ids and feature values) is.
ID_FREE_KEYS = RESUME_FREE_KEYS | {("data", "path"), ("data", "format"), ("data", "features_dir")}


@dataclass
class RunSpec:
    """One run of a spec: where it comes from and its raw (unresolved) configuration."""

    spec: str
    position: int
    dataset: str
    model: str  # the model's label
    setting: str
    seed: int
    raw: dict[str, Any]
    _config: RunConfig | None = None

    @property
    def config(self) -> RunConfig:
        if self._config is None:
            try:
                self._config = resolve_config(self.raw)
            except ConfigError as e:
                raise ConfigError(f"run {self.describe()}: {e}") from None
        return self._config

    def describe(self) -> str:
        return f"{self.model} / {self.setting} on {self.dataset}, seed {self.seed}"


def build_raw(
    base: dict[str, Any],
    model: str,
    preset: str | None,
    data: dict[str, Any],
    seed: int,
    *overrides: dict[str, Any],
) -> dict[str, Any]:
    """A run's raw config: ``base`` < each of ``overrides`` < data and seed (preset underneath)."""
    raw = copy.deepcopy(base)
    for o in overrides:
        raw = deep_merge(raw, o)
    raw = deep_merge(raw, {"data": data, "seed": seed})
    model_section = raw.get("model") or {}
    if isinstance(model_section, str):
        model_section = {"name": model_section}
    raw["model"] = {**model_section, "name": model}
    if preset:
        raw["preset"] = preset
    return raw


def search_base_raw(spec: ExperimentSpec) -> dict[str, Any]:
    """The raw config every trial starts from (spec base < search overrides < data, seed)."""
    s = spec.search
    return build_raw(spec.base, s.model, s.preset, spec.datasets[s.dataset], s.seed, s.overrides)


def runs_of(spec: ExperimentSpec) -> list[RunSpec]:
    """Every run of the spec, in order: datasets, then models, then settings, then seeds."""
    out = []
    for dataset, data in spec.datasets.items():
        for m in spec.models:
            for s in spec.settings:
                if s.models is not None and m.label not in s.models:
                    continue
                for seed in spec.seeds:
                    raw = build_raw(
                        spec.base,
                        m.name,
                        m.preset_for(dataset),
                        data,
                        seed,
                        m.overrides,
                        s.overrides,
                    )
                    out.append(RunSpec(spec.name, len(out), dataset, m.label, s.name, seed, raw))
    return out


@dataclass(frozen=True)
class Selection:
    """Which of a spec's runs to train or show (``cranerec experiment --models/--settings/
    --seeds/--datasets``); a field left ``None`` keeps all. Models match by label or by
    registered name. The runs keep the ids they have in the whole spec."""

    models: tuple[str, ...] | None = None
    settings: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    datasets: tuple[str, ...] | None = None

    def select(self, spec: ExperimentSpec, runs: list[RunSpec]) -> list[RunSpec]:
        """The runs this selection keeps; a value the spec does not have, or a selection that
        keeps nothing, is a ``ConfigError`` naming what the spec has."""
        known = {
            "models": sorted({m.label for m in spec.models} | {m.name for m in spec.models}),
            "settings": [s.name for s in spec.settings],
            "seeds": list(spec.seeds),
            "datasets": list(spec.datasets),
        }
        for field_name, have in known.items():
            for value in getattr(self, field_name) or ():
                if value not in have:
                    raise ConfigError(
                        f"--{field_name} {value}: not one of the {field_name} of spec {spec.name!r} "
                        f"({', '.join(map(str, have)) or 'none'})"
                    )
        kept = [
            r for r in runs
            if (self.models is None or r.model in self.models
                or r.raw["model"]["name"] in self.models)
            and (self.settings is None or r.setting in self.settings)
            and (self.seeds is None or r.seed in self.seeds)
            and (self.datasets is None or r.dataset in self.datasets)
        ]  # fmt: skip
        if not kept:
            raise ConfigError(f"the selection keeps none of the runs of spec {spec.name!r}")
        return kept


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"train.lr": 1e-3}`` -> ``{"train": {"lr": 1e-3}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def lookup(d: dict[str, Any], key: str) -> Any:
    """The value of a dotted key in a nested dict (``None`` when absent)."""
    node: Any = d
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def identity_dict(config: RunConfig) -> dict[str, Any]:
    """The resolved config less the keys that do not change results (``ID_FREE_KEYS``), with
    the model's speed-only settings (its config's ``RUNTIME``) at their defaults: a run keeps
    its id whatever block size it ran with, and ids made before these settings left the id
    (when every run used the defaults) stay valid. Settings a config lists in ``ADDED`` (added
    after stores existed) are left out while at the value runs had before them, for the same
    reason."""
    d = config.to_dict()
    for section, key in ID_FREE_KEYS:
        if isinstance(d.get(section), dict):
            d[section].pop(key, None)
    defaults = type(config.model)()
    for key in type(config.model).RUNTIME:
        d["model"][key] = getattr(defaults, key)
    for section in ("data", "train", "eval", "model"):  # added later, at their earlier value
        for key, before in type(getattr(config, section)).ADDED.items():
            if d[section].get(key) == before:
                d[section].pop(key, None)
    return d


def run_id(config: RunConfig, fingerprint: str, version: str | None = None) -> str:
    """The id of a run: a hash of its resolved config, the data fingerprint and the version."""
    if version is None:
        from cranerec._version import __version__

        version = __version__
    blob = json.dumps(
        {"config": identity_dict(config), "data": fingerprint, "version": version},
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
