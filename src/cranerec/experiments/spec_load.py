"""Reading a spec: finding a built-in suite by name (``builtin_suites``, ``suite_path``),
reading its YAML, expanding ``${NAME:-default}`` in data paths (``expand_env``), applying the
``smoke`` section, and validating the whole (``parse_spec``): every key typed, every model
registered, every run and every search dimension resolvable, with errors that name the key."""

from __future__ import annotations

import copy
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cranerec.config import ConfigError, deep_merge, from_dict
from cranerec.data.config import DataConfig
from cranerec.experiments.space import search_space
from cranerec.experiments.spec_runs import nested, runs_of, search_base_raw
from cranerec.experiments.spec_schema import ExperimentSpec, SearchSpec
from cranerec.train.config import resolve_config

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
    raw: dict[str, Any],
    source: str = "",
    smoke: bool = False,
    text: str | None = None,
    strict: bool = True,
) -> ExperimentSpec:
    """Validate a spec given as a dict (the YAML layout); ``text`` is its YAML as written.
    ``strict=False`` (a spec already registered in a store, read again for its report) leaves
    out the checks added after stores existed: a dataset's path given, report metrics the
    runs compute."""
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
        if strict and "path" not in section:  # DataConfig's default is the synthetic data
            raise ConfigError(
                f"datasets.{name}: no path; give the dataset's folder (or path: synthetic for "
                "the built-in data)"
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
    _check_models_and_settings(spec, strict)
    return spec


def _check_models_and_settings(spec: ExperimentSpec, strict: bool = True) -> None:
    """Every model registered, every preset known, every run resolvable (errors name the run)."""
    from cranerec.models import MODELS

    for i, m in enumerate(spec.models):
        if m.name not in MODELS:
            raise ConfigError(
                f"models[{i}]: {m.name!r} is not a registered model; registered: {', '.join(sorted(MODELS))}"
            )
    runs = runs_of(spec)
    for run in runs:
        run.config  # noqa: B018  (resolving validates)
    if strict:
        _check_report_metrics(spec, runs)
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


def _check_report_metrics(spec: ExperimentSpec, runs: list) -> None:
    """Every metric a report section names is one the evaluator computes, at a cutoff every run
    of the spec evaluates (else the report would fail after the training)."""
    from cranerec.eval.metrics import METRICS

    for i, section in enumerate(spec.report):
        if section.kind not in ("table", "bars", "heatmap", "curves"):
            continue  # efficiency, search and embedding_map read no metric
        own = [r for r in runs if section.settings is None or r.setting in section.settings]
        for metric in section.metrics:
            name, _, k = metric.partition("@")
            if name not in METRICS or not k.isdigit():
                raise ConfigError(
                    f"report[{i}].metrics: {metric!r} is not a metric; name one of "
                    f"{list(METRICS)} at a cutoff, e.g. recall@20"
                )
            for run in own:
                ev = run.config.eval
                if name not in ev.metrics or int(k) not in ev.ks:
                    raise ConfigError(
                        f"report[{i}].metrics: run {run.describe()} does not compute {metric} "
                        f"(its eval: metrics {list(ev.metrics)} at ks {list(ev.ks)}); add "
                        "it to base.eval or name another"
                    )
