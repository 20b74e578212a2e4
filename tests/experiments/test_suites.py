"""Every built-in suite's smoke version runs end to end on synthetic data, and its report holds
the tables and figures the suite promises, each with its sources."""

import re
from pathlib import Path

import pytest

from cranerec.config import deep_merge
from cranerec.experiments.report import write_report
from cranerec.experiments.runner import run_experiment
from cranerec.experiments.space import search_space
from cranerec.experiments.spec import builtin_suites, load_spec, runs_of
from cranerec.experiments.spec_runs import nested, search_base_raw
from cranerec.experiments.store import Store
from cranerec.train.config import resolve_config

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", builtin_suites())
def test_smoke_suite_end_to_end(name, tmp_path):
    spec = load_spec(name, smoke=True)
    store = Store(tmp_path / "store")
    counts = run_experiment(spec, store, progress=False)
    assert counts["failed"] == 0 and counts["pending"] == 0
    assert counts["done"] == len({r.run_id for r in store.runs(spec.name)})
    report = write_report(store.root, tmp_path / "report" / "report.md")
    text = report.read_text()
    assert f"## {spec.name}" in text and "SYNTHETIC" in text
    for section in spec.report:
        assert f"### {section.title}" in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    kinds = {s.kind for s in spec.report}
    assert bool(images) == bool(
        kinds & {"bars", "heatmap", "curves", "embedding_map", "efficiency", "search"}
    )
    for image in images:
        assert (report.parent / image).read_bytes()[:8] == PNG
    if spec.models:  # every row names its seeds and run directories
        for run in runs_of(spec):
            row = next(r for r in store.runs(spec.name) if r.position == run.position)
            assert f"`../store/runs/{row.run_id}`" in text
    if spec.search is not None:  # its trials' run directories, from the report's folder too
        assert "Chosen: trial" in text
        trial_dirs = re.findall(r"`([^`]*trial-[^`]*)`", text)
        assert trial_dirs and all((report.parent / d / "results.json").exists() for d in trial_dirs)


BENCHMARK_SPECS = sorted((Path(__file__).resolve().parents[2] / "benchmarks").glob("*.yaml"))


def _expand(spec) -> int:
    """Resolve the configuration of every run of ``spec`` (a search: every trial's at each
    dimension's first and last value); the number of configurations resolved."""
    if spec.search is None:
        runs = runs_of(spec)
        assert len({repr(r.config) for r in runs}) == len(runs)  # no run twice
        return len(runs)
    base, n = search_base_raw(spec), 0
    for key, dim in search_space(spec.search).items():
        ends = (dim.low, dim.high) if dim.values is None else (dim.values[0], dim.values[-1])
        for value in ends:
            resolve_config(deep_merge(base, nested({key: value})))
            n += 1
    return n


@pytest.mark.parametrize("path", BENCHMARK_SPECS, ids=lambda p: p.name)
def test_benchmark_specs_expand_into_valid_runs(path, monkeypatch):
    """The specs under benchmarks/ (hours-long queues) name only settings that exist: each one
    loads and every run's (or search trial's) configuration validates, so a typo fails here, not
    hours into a queue."""
    monkeypatch.setenv("CRANEREC_DATA", "/nonexistent")  # the paths need not exist to expand
    assert _expand(load_spec(str(path)))  # ConfigError names a bad setting
    if "smoke:" in path.read_text():
        assert _expand(load_spec(str(path), smoke=True))
