"""Experiment specs: models x datasets x seeds x settings, typed and validated on load.

A spec is a YAML file (the built-in suites live in ``cranerec/experiments/suites/``)::

    name: ablation
    description: what it reproduces; its epoch caps
    base: {train: {epochs: 1000, patience: 20}}      # every run (RunConfig layout)
    datasets:                                        # name -> data section
      tiktok: {path: "${CRANEREC_DATA:-../shared/datasets}/tiktok"}
    models:                                          # names, or mappings
      - {name: crane, preset: {tiktok: tiktok}}      # preset: one name, or per dataset
    seeds: [1]
    settings:                                        # an explicit list of named override sets
      - {name: full}
      - {name: no_item_graph, label: w/o item graph, overrides: {model: {item_graph: false}}}
    reference: {setting: full}                       # what the paired tests compare against
    report: [{kind: table, rows: setting, metrics: [recall@20, ndcg@20]}]
    search: {...}                                    # optional: see cranerec.experiments.search
    smoke: {...}                                     # the CI version: replaces top-level keys
                                                     # (base and search are deep-merged)

Every (dataset, model, setting, seed) is one run: defaults < model preset < ``base`` < the
model's ``overrides`` < the setting's ``overrides`` < the dataset section and the seed, resolved
to a ``RunConfig``. Its id hashes that resolved config (less the settings that do not change
results: threads, progress bars, device, evaluation batch, where the data lies), the data
fingerprint and the package version. Settings never hold list-valued sweeps: a sweep is written
out as one named setting per point, so every run has a name a reader can find in the report.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cranerec.config import ConfigError, deep_merge, from_dict
from cranerec.data.loaders import DataConfig
from cranerec.experiments.space import search_space
from cranerec.train.config import RESUME_FREE_KEYS, RunConfig, resolve_config

#: Keys of a resolved config left out of the run id: they do not change results (the first
#: four may change between a run and its resume), and the data's content is in the fingerprint.
# Where the data and its features are read from is not part of a run's id: the data fingerprint
# (interactions, ids and feature values) is.
ID_FREE_KEYS = RESUME_FREE_KEYS | {("data", "path"), ("data", "format"), ("data", "features_dir")}

REPORT_KINDS = ("table", "bars", "heatmap", "curves", "embedding_map", "efficiency", "search")


@dataclass
class ModelEntry:
    """One model of a spec. ``label`` names it in tables (default: ``name``); ``preset`` is one
    preset name or a mapping dataset name -> preset name (datasets not named get none)."""

    name: str
    label: str = ""
    preset: Any = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.label:
            self.label = self.name
        if self.preset is not None and not isinstance(self.preset, (str, dict)):
            raise ConfigError(
                f"preset must be a name or a mapping dataset -> name, got {self.preset!r}"
            )

    def preset_for(self, dataset: str) -> str | None:
        if isinstance(self.preset, dict):
            return self.preset.get(dataset)
        return self.preset


@dataclass
class Setting:
    """A named set of overrides (RunConfig layout). ``models``: the model labels it applies to
    (default: all)."""

    name: str
    label: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    models: list[str] | None = None

    def validate(self) -> None:
        if not self.label:
            self.label = self.name


@dataclass
class Reference:
    """What paired tests compare against: a model label and/or a setting name."""

    model: str | None = None
    setting: str | None = None


@dataclass
class ReportSection:
    """One table or figure of the report.

    ``kind``: ``table`` (rows = models or settings, mean ± std over seeds, p-values against the
    reference), ``bars`` (a bar chart of ``metrics`` per row, with its table), ``heatmap``
    (``x`` and ``y`` are dotted config keys read from each run's resolved config), ``curves``
    (validation ``metrics[0]`` per epoch), ``embedding_map`` (t-SNE of ``n_users`` users and their
    training items), ``efficiency`` (seconds per epoch and peak memory against dataset size),
    ``search`` (the hyper-parameter search: the chosen configuration's test metrics)."""

    kind: str
    title: str = ""
    rows: str = "model"  # "model" or "setting"
    metrics: list[str] = field(default_factory=lambda: ["recall@20", "ndcg@20"])
    split: str = "test"
    tests: bool = True
    timing: bool = False
    settings: list[str] | None = None  # restrict to these settings (in this order)
    x: str | None = None
    y: str | None = None
    n_users: int = 8

    def validate(self) -> None:
        if self.kind not in REPORT_KINDS:
            raise ConfigError(f"kind {self.kind!r} is not one of {list(REPORT_KINDS)}")
        if self.rows not in ("model", "setting"):
            raise ConfigError(f"rows must be 'model' or 'setting', got {self.rows!r}")
        if self.split not in ("valid", "test"):
            raise ConfigError(f"split must be 'valid' or 'test', got {self.split!r}")
        if self.kind == "heatmap" and not (self.x and self.y):
            raise ConfigError("a heatmap needs x and y (dotted config keys, e.g. model.knn_k)")
        for m in self.metrics:
            if "@" not in m:
                raise ConfigError(f"metrics: {m!r} does not look like recall@20")


@dataclass
class SearchSpec:
    """A hyper-parameter search (run with Optuna; see ``cranerec.experiments.search``).

    ``space``: a built-in space name (``paper_grid``) or a mapping dotted key -> ``{values:
    [...]}`` (a grid/categorical dimension) or ``{low, high, log, step}`` (a range).
    ``sampler``: ``auto`` (grid when every dimension is a list of values, else TPE), ``grid``,
    ``tpe``. ``trials``: the budget (default: the grid's size; required for TPE). ``metric``:
    the validation metric maximised (selection never reads the test split). ``pruner``:
    ``median`` prunes a trial whose validation curve falls below the median of earlier trials
    at the same epoch (after ``pruner_startup_trials`` trials and ``pruner_warmup_epochs``
    epochs), ``none`` keeps every trial. ``storage``: an Optuna storage URL (default: SQLite in
    the store; PostgreSQL for several machines). ``study``: the study name (default: the spec's)."""

    model: str
    dataset: str
    preset: str | None = None
    seed: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)
    space: Any = "paper_grid"
    sampler: str = "auto"
    trials: int | None = None
    metric: str = "recall@20"
    pruner: str = "median"
    pruner_startup_trials: int = 5
    pruner_warmup_epochs: int = 10
    storage: str | None = None
    study: str | None = None

    def validate(self) -> None:
        if self.sampler not in ("auto", "grid", "tpe"):
            raise ConfigError(f"sampler {self.sampler!r} is not one of ['auto', 'grid', 'tpe']")
        if self.pruner not in ("median", "none"):
            raise ConfigError(f"pruner {self.pruner!r} is not one of ['median', 'none']")
        if self.trials is not None and self.trials < 1:
            raise ConfigError(f"trials must be >= 1, got {self.trials}")
        if "@" not in self.metric:
            raise ConfigError(f"metric must look like recall@20, got {self.metric!r}")


@dataclass
class ExperimentSpec:
    """A validated spec (see the module docstring). ``isolate``: run every run in a fresh
    process (peak memory per run, as the efficiency suite measures it)."""

    name: str
    description: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: list[ModelEntry] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [1])
    settings: list[Setting] = field(default_factory=lambda: [Setting("default")])
    reference: Reference = field(default_factory=Reference)
    report: list[ReportSection] = field(default_factory=list)
    search: SearchSpec | None = None
    isolate: bool = False
    source: str = ""  # where the spec was read from (set by load_spec)
    smoke: bool = False  # the smoke version (set by load_spec)
    text: str = ""  # the spec as written, smoke section included (stored with the results)

    def validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ConfigError(f"name {self.name!r} may hold letters, digits, '_', '.', '-' only")
        _unique("models", [m.label for m in self.models])
        _unique("settings", [s.name for s in self.settings])
        _unique("seeds", [str(s) for s in self.seeds])
        if self.models and not self.datasets:
            raise ConfigError("datasets: a spec with models needs at least one dataset")
        if self.models and not self.seeds:
            raise ConfigError("seeds: a spec with models needs at least one seed")
        if not self.models and self.search is None:
            raise ConfigError("a spec needs models (a grid of runs) or a search section")
        labels = {m.label for m in self.models}
        for i, s in enumerate(self.settings):
            bad = sorted(set(s.models or []) - labels)
            if bad:
                raise ConfigError(
                    f"settings[{i}] ({s.name}).models: {bad} are not model labels of this spec ({sorted(labels)})"
                )
        if self.reference.model is not None and self.reference.model not in labels:
            raise ConfigError(
                f"reference.model {self.reference.model!r} is not a model label of this spec ({sorted(labels)})"
            )
        names = {s.name for s in self.settings}
        if self.reference.setting is not None and self.reference.setting not in names:
            raise ConfigError(
                f"reference.setting {self.reference.setting!r} is not a setting of this spec ({sorted(names)})"
            )
        for i, r in enumerate(self.report):
            bad = sorted(set(r.settings or []) - names)
            if bad:
                raise ConfigError(f"report[{i}].settings: {bad} are not settings of this spec")
            if r.kind == "search" and self.search is None:
                raise ConfigError(f"report[{i}]: kind 'search' needs a search section")


def _unique(key: str, values: list[str]) -> None:
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        raise ConfigError(f"{key}: {dup} appear more than once (names must be unique)")


# ---------------------------------------------------------------------------------- loading

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str) -> str:
    """``${NAME}`` / ``${NAME:-default}`` from the environment (data paths in shipped suites)."""

    def sub(m: re.Match) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            if m.group(2) is None:
                raise ConfigError(f"environment variable {m.group(1)} is not set (in {text!r})")
            return m.group(2)
        return value

    return _ENV.sub(sub, text)


def builtin_suites() -> list[str]:
    """Names of the suites shipped with the package."""
    folder = resources.files("cranerec.experiments") / "suites"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def suite_path(name: str) -> Path:
    """The YAML file of a built-in suite."""
    path = Path(str(resources.files("cranerec.experiments") / "suites" / f"{name}.yaml"))
    if not path.exists():
        raise ConfigError(
            f"no built-in suite {name!r}; built-in suites: {', '.join(builtin_suites())}"
        )
    return path


def read_spec_text(spec: str | Path) -> tuple[str, str]:
    """(YAML text, source) of a spec file, or of a built-in suite given by name."""
    path = Path(spec)
    if not path.exists() and path.suffix not in (".yaml", ".yml") and "/" not in str(spec):
        path = suite_path(str(spec))
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise ConfigError(f"spec file not found: {spec}") from None


def load_spec(spec: str | Path, smoke: bool = False) -> ExperimentSpec:
    """Read and validate a spec file (or built-in suite name); ``smoke`` applies its smoke
    section (and fails when there is none)."""
    text, source = read_spec_text(spec)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"spec {source} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"spec {source} must hold a mapping at the top level")
    return parse_spec(raw, source=source, smoke=smoke, text=text)


def parse_spec(
    raw: dict[str, Any], source: str = "", smoke: bool = False, text: str | None = None
) -> ExperimentSpec:
    """Validate a spec given as a dict (the YAML layout); ``text`` is its YAML as written."""
    if text is None:
        text = yaml.safe_dump(raw, sort_keys=False)
    raw = copy.deepcopy(raw)
    smoke_section = raw.pop("smoke", None)
    if smoke:
        if not isinstance(smoke_section, dict):
            raise ConfigError(f"spec {source or raw.get('name')} has no smoke section")
        for key, value in smoke_section.items():
            if key in ("base", "search") and isinstance(raw.get(key), dict):
                raw[key] = deep_merge(raw[key], value)
            else:
                raw[key] = value
        raw["name"] = f"{raw.get('name', '')}-smoke"
    if "name" not in raw:
        raise ConfigError(f"spec {source}: missing key 'name'")
    models = raw.get("models") or []
    if not isinstance(models, list):
        raise ConfigError(f"models: expected a list of model names or mappings, got {models!r}")
    raw["models"] = [{"name": m} if isinstance(m, str) else m for m in models]
    settings = raw.get("settings")
    if settings is not None:
        if not isinstance(settings, list) or not settings:
            raise ConfigError("settings: expected a non-empty list of {name, overrides} mappings")
        raw["settings"] = [{"name": s} if isinstance(s, str) else s for s in settings]
    datasets = raw.get("datasets") or {}
    if not isinstance(datasets, dict):
        raise ConfigError("datasets: expected a mapping name -> data section (path, ...)")
    for name, section in datasets.items():
        if isinstance(section, str):
            section = {"path": section}
        if not isinstance(section, dict):
            raise ConfigError(
                f"datasets.{name}: expected a data section (path, ...), got {section!r}"
            )
        for key in ("path", "features_dir"):
            if isinstance(section.get(key), str):
                section[key] = expand_env(section[key])
        from_dict(DataConfig, section, f"datasets.{name}")  # names the bad key
        datasets[name] = section
    raw["datasets"] = datasets
    if isinstance(raw.get("report"), dict):
        raw["report"] = [raw["report"]]
    if raw.get("search") is not None:  # parsed first so that errors name the key inside it
        raw["search"] = from_dict(SearchSpec, raw["search"], "search")
    spec = from_dict(ExperimentSpec, {**raw, "source": source, "smoke": smoke, "text": text})
    _check_models_and_settings(spec)
    return spec


def _check_models_and_settings(spec: ExperimentSpec) -> None:
    """Every model registered, every preset known, every run resolvable (errors name the run)."""
    from cranerec.models import MODELS

    for i, m in enumerate(spec.models):
        if m.name not in MODELS:
            raise ConfigError(
                f"models[{i}]: {m.name!r} is not a registered model; registered: {', '.join(sorted(MODELS))}"
            )
    for run in runs_of(spec):
        run.config  # noqa: B018  (resolving validates)
    if spec.search is not None:
        if spec.search.dataset not in spec.datasets:
            raise ConfigError(
                f"search.dataset {spec.search.dataset!r} is not one of datasets ({sorted(spec.datasets)})"
            )
        if spec.search.model not in MODELS:
            raise ConfigError(f"search.model {spec.search.model!r} is not a registered model")
        space = search_space(spec.search)  # names a bad dimension
        raw = search_base_raw(spec)
        for key, dim in space.items():  # every dimension must be a valid setting
            value = dim.values[0] if dim.values else dim.low
            try:
                resolve_config(deep_merge(raw, nested({key: value})))
            except ConfigError as e:
                raise ConfigError(f"search.space.{key}: {e}") from None


# ---------------------------------------------------------------------------------- runs


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
    """The resolved config less the keys that do not change results (``ID_FREE_KEYS``)."""
    d = config.to_dict()
    for section, key in ID_FREE_KEYS:
        if isinstance(d.get(section), dict):
            d[section].pop(key, None)
    return d


def run_id(config: RunConfig, fingerprint: str, version: str | None = None) -> str:
    """The id of a run: a hash of its resolved config, the data fingerprint and the version."""
    if version is None:
        import cranerec

        version = cranerec.__version__
    blob = json.dumps(
        {"config": identity_dict(config), "data": fingerprint, "version": version},
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
