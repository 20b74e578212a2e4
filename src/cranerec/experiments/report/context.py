"""What every part of the report shares: number formats, the run groups of a table or figure
(``Group``), and one spec's runs in a store (``Context``)."""

from __future__ import annotations

import io
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cranerec.experiments.spec import ExperimentSpec, ReportSection
from cranerec.experiments.store import RunRow, Store
from cranerec.train.rundir import RunDir, read_metrics
from cranerec.utils.io import write_bytes_atomic

log = logging.getLogger(__name__)


SHORT = {"recall": "R", "ndcg": "N", "precision": "P", "map": "MAP", "hit": "HR"}


def short(metric: str) -> str:
    name, _, k = metric.partition("@")
    return f"{SHORT.get(name, name)}@{k}"


def fmt(value: float | None, digits: int = 4) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def mark(text: str, how: str) -> str:
    return f"**{text}**" if how == "best" else f"<u>{text}</u>" if how == "second" else text


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_bytes_atomic(path, buf.getvalue())
    return path


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-").lower()


@dataclass
class Group:
    """The finished runs of one (dataset, row) cell of a table or figure."""

    dataset: str
    label: str
    model: str
    setting: str
    runs: list[RunRow]

    def values(self, split: str, metric: str) -> list[float]:
        return [r.results[split][metric] for r in self.runs]


class Context:
    """One spec's runs in a store, grouped the way its report sections ask."""

    def __init__(self, spec: ExperimentSpec, store: Store, out_dir: Path) -> None:
        self.spec, self.store, self.out_dir = spec, store, out_dir
        self.rows = store.runs(spec.name)
        self.done = [r for r in self.rows if r.status == "done" and r.results]
        self.model_labels = {m.label: m for m in spec.models}
        self.setting_labels = {s.name: s.label for s in spec.settings}

    def run_path(self, row: RunRow) -> Path:
        return self.store.run_dir(row.run_id)

    def epochs(self, row: RunRow) -> list[dict[str, Any]]:
        """The run's ``metrics.jsonl``: one record per trained epoch; none for a model that
        trains no epochs (pop), whose run writes no such file."""
        path = RunDir(self.run_path(row)).metrics
        return read_metrics(path) if path.exists() else []

    def epoch_seconds(self, row: RunRow) -> float:
        """A run's median seconds per training epoch (robust to an epoch stretched by a paused
        or busy machine): from its results, else from its ``metrics.jsonl`` (runs finished
        before the median was recorded), else its mean."""
        if row.results.get("epoch_seconds_median") is not None:
            return float(row.results["epoch_seconds_median"])
        try:
            times = [e["epoch_seconds"] for e in self.epochs(row)]
        except (OSError, KeyError, ValueError):
            times = []
        return float(np.median(times)) if times else float(row.results["epoch_seconds_mean"])

    def device(self, row: RunRow) -> str:
        """The device a run trained on (its summary, else its ``results.json``; ``?`` if
        neither says)."""
        if row.results.get("device"):
            return str(row.results["device"])
        try:
            results = json.loads(RunDir(self.run_path(row)).results.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "?"
        return str(results.get("device") or "?")

    def rel(self, row: RunRow) -> str:
        return self.relative(self.run_path(row))

    def relative(self, path: Path) -> str:
        """``path`` as the report links it: relative to the report's folder."""
        return os.path.relpath(path, self.out_dir)

    def groups(self, section: ReportSection) -> dict[str, list[Group]]:
        """dataset -> groups in the spec's order (models x settings)."""
        settings = section.settings or [s.name for s in self.spec.settings]
        several_settings = len(settings) > 1
        several_models = len(self.spec.models) > 1
        out: dict[str, list[Group]] = {}
        for dataset in self.spec.datasets:
            cells: dict[tuple[str, str], list[RunRow]] = {}
            order = []
            ordered = (
                [(m.label, s) for m in self.spec.models for s in settings]
                if section.rows == "model"
                else [(m.label, s) for s in settings for m in self.spec.models]
            )
            for key in ordered:
                cells[key] = []
            for r in self.done:
                if r.dataset == dataset and (r.model, r.setting) in cells:
                    cells[(r.model, r.setting)].append(r)
            for (model, setting), runs in cells.items():
                if not runs:
                    continue
                if section.rows == "model":
                    label = model + (
                        f" ({self.setting_labels[setting]})" if several_settings else ""
                    )
                else:
                    label = self.setting_labels[setting] + (f" ({model})" if several_models else "")
                order.append(
                    Group(dataset, label, model, setting, sorted(runs, key=lambda r: r.seed))
                )
            if order:
                out[dataset] = order
        return out

    def reference_label(self, groups: list[Group]) -> str | None:
        ref = self.spec.reference
        for g in groups:
            if (
                (ref.model is None or g.model == ref.model)
                and (ref.setting is None or g.setting == ref.setting)
                and (ref.model or ref.setting)
            ):
                return g.label
        return None

    def sources(self, groups: list[Group]) -> str:
        """Where every number of a table or figure comes from: spec, and per row its seeds
        and run directories."""
        lines = [
            f"Sources: spec `{self.spec.name}` ({_spec_source(self.spec)}); per row, seed → run directory:"
        ]
        for g in groups:
            cells = ", ".join(f"{r.seed} → `{self.rel(r)}`" for r in g.runs)
            lines.append(f"- {g.label}: {cells}")
        return "\n".join(lines)


def _spec_source(spec: ExperimentSpec) -> str:
    src = spec.source
    if "cranerec/experiments/suites/" in src.replace(os.sep, "/"):
        src = "built-in suite " + Path(src).stem
    return f"{src}, smoke version" if spec.smoke else src
