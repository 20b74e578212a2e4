"""The typed form of an experiment spec: ``ExperimentSpec`` and its parts (``ModelEntry``,
``Setting``, ``Reference``, ``ReportSection``, ``SearchSpec``), each checking its own fields and
the spec checking that its names agree (unique labels, references and report settings that
exist). Reading the YAML is ``spec_load``'s job; turning a spec into runs is ``spec_runs``'s."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cranerec.config import ConfigError

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
    """A validated spec (see ``cranerec.experiments.spec``'s docstring). ``isolate``: run every
    run in a fresh process (peak memory per run, as the efficiency suite measures it)."""

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
