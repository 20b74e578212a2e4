"""``cranerec report RESULTS``: one Markdown file with every table and figure of a store.

For each spec registered in the store (in the order they were run) the report has a section
with what the spec is, its epoch caps, and the sections its ``report`` list asks for (a plain
results table when it asks for none). Tables give mean ± std over seeds with the best value in
bold and the second underlined, paired-test p-values against the reference (Holm-corrected
across the comparisons of the table), and under each table the spec and, per row, the seeds
and run directories its numbers come from. Figures are PNGs written beside the Markdown file
(matplotlib ``Figure`` objects, never pyplot's global state), each with the same sources.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import yaml

from cranerec.config import ConfigError
from cranerec.experiments.report.context import Context, Group, _slug, _spec_source, short
from cranerec.experiments.report.figures import (
    figure_bars,
    figure_curves,
    figure_efficiency,
    figure_embedding_map,
    figure_heatmap,
    map_users,
)
from cranerec.experiments.report.search import search_section
from cranerec.experiments.report.tables import results_table
from cranerec.experiments.spec import ExperimentSpec, ReportSection, parse_spec
from cranerec.experiments.store import Store
from cranerec.utils.io import write_text_atomic

__all__ = [
    "Context", "Group", "figure_efficiency", "figure_embedding_map", "load_store_specs",
    "map_users", "results_table", "spec_report", "write_report",
]  # fmt: skip


def default_sections(spec: ExperimentSpec) -> list[ReportSection]:
    rows = "setting" if len(spec.settings) > 1 and len(spec.models) == 1 else "model"
    out = (
        [
            ReportSection(
                kind="table", rows=rows, metrics=["recall@10", "recall@20", "ndcg@10", "ndcg@20"]
            )
        ]
        if spec.models
        else []
    )
    if spec.search is not None:
        out.append(ReportSection(kind="search"))
    return out


def _caps(ctx: Context) -> str:
    """The epoch caps of the spec's runs (and of its search's trials)."""
    configs = [r.config["train"] for r in ctx.rows]
    if ctx.spec.search is not None:
        from cranerec.experiments.spec import search_base_raw
        from cranerec.train.config import resolve_config

        configs.append(resolve_config(search_base_raw(ctx.spec)).to_dict()["train"])
    caps = sorted({(c["epochs"], c["patience"], c["stop_metric"]) for c in configs})

    def epochs(n: int) -> str:
        return f"{n} epoch{'s' if n != 1 else ''}"

    return "; ".join(
        f"up to {epochs(e)}, early stopping after {epochs(p)} without a better valid {short(m)}"
        for e, p, m in caps
    )


def _synthetic_search(spec: ExperimentSpec) -> bool:
    """Whether the spec's search (which has trials, not runs) trains on synthetic data."""
    if spec.search is None:
        return False
    data = spec.datasets.get(spec.search.dataset) or {}
    return data.get("path") == "synthetic" or data.get("format") == "synthetic"


def spec_report(
    spec: ExperimentSpec, store: Store, out_dir: Path, storage: str | None = None
) -> str:
    """The Markdown of one spec's section (figures written into ``out_dir``)."""
    ctx = Context(spec, store, out_dir)
    parts = [f"## {spec.name}", ""]
    if spec.description:
        parts += [" ".join(spec.description.split()), ""]
    counts = store.counts(spec.name)
    flags = [bool(r.results.get("synthetic_data")) for r in ctx.done]
    synthetic = (bool(flags) and all(flags)) or _synthetic_search(spec)
    partly_synthetic = any(flags) and not all(flags)
    facts = [
        f"Spec: {_spec_source(spec)}.",
        f"Runs: {', '.join(f'{k} {v}' for k, v in counts.items() if v) or 'none'}.",
    ]
    if ctx.rows or spec.search is not None:
        facts.append(f"Epoch caps: {_caps(ctx)}.")
    parts += [" ".join(facts), ""]
    if synthetic:
        parts += [
            "**These results are on SYNTHETIC data (generated, not real): they show the machinery, not the model's quality.**",
            "",
        ]
    elif partly_synthetic:
        parts += [
            "**Some of these runs are on SYNTHETIC data (generated, not real; marked as such): their figures are costs, not model quality.**",
            "",
        ]
    failed = [r for r in ctx.rows if r.status == "failed"]
    if failed:
        parts.append("Failed runs (left out of the tables):")
        parts += [
            f"- {r.model} / {r.setting} on {r.dataset}, seed {r.seed} (`{ctx.rel(r)}`): {(r.error or '').splitlines()[0] if r.error else ''}"
            for r in failed
        ]
        parts.append("")
    for idx, section in enumerate(spec.report or default_sections(spec)):
        title = (
            section.title
            or {
                "table": "Results",
                "bars": "Results",
                "heatmap": "Sensitivity",
                "curves": "Convergence",
                "embedding_map": "Embedding map",
                "efficiency": "Efficiency",
                "search": "Hyper-parameter search",
            }[section.kind]
        )
        parts += [f"### {title}", ""]
        if section.kind == "search":
            png = out_dir / f"{_slug(spec.name)}-{idx}-search-curves.png"
            parts += [search_section(ctx, storage, png), ""]
            continue
        if section.kind == "efficiency":
            if not ctx.done:
                parts += ["No finished runs yet.", ""]
                continue
            png, table = figure_efficiency(
                ctx, section, out_dir / f"{_slug(spec.name)}-{idx}-efficiency.png"
            )
            parts += [f"![{title}]({png.name})", "", table, ""]
            continue
        groups_by_data = ctx.groups(section)
        if not groups_by_data:
            parts += ["No finished runs yet.", ""]
            continue
        for dataset, groups in groups_by_data.items():
            if len(groups_by_data) > 1 or section.kind != "table":
                parts += [f"**{dataset}**", ""]
            stem = f"{_slug(spec.name)}-{idx}-{section.kind}-{_slug(dataset)}"
            if section.kind in ("table", "bars"):
                if section.kind == "bars":
                    png = figure_bars(ctx, section, dataset, groups, out_dir / f"{stem}.png")
                    parts += [f"![{title}, {dataset}]({png.name})", ""]
                parts += [results_table(ctx, section, groups), ""]
            elif section.kind == "heatmap":
                png = figure_heatmap(ctx, section, dataset, groups, out_dir / f"{stem}.png")
                if png is not None:
                    parts += [f"![{title}, {dataset}]({png.name})", ""]
                parts += [results_table(ctx, section, groups), ""]
            elif section.kind == "curves":
                png = figure_curves(ctx, section, dataset, groups, out_dir / f"{stem}.png")
                parts += [
                    f"![{title}, {dataset}]({png.name})",
                    "",
                    results_table(ctx, section, groups, extra_timing=True),
                    "",
                ]
            elif section.kind == "embedding_map":
                png, notes = figure_embedding_map(
                    ctx, section, dataset, groups, out_dir / f"{stem}.png"
                )
                parts += [
                    f"![{title}, {dataset}]({png.name})",
                    "",
                    "t-SNE with cosine distance (scikit-learn), perplexity min(30, n/3), PCA start, seed 0; users sampled with seed 0 among those with 5-40 training items. "
                    + "; ".join(notes)
                    + ".",
                    "",
                ]
            parts += [ctx.sources(groups), ""]
    return "\n".join(parts)


def load_store_specs(store: Store) -> list[ExperimentSpec]:
    """The specs registered in a store, parsed again from the text stored with them."""
    out = []
    for entry in store.specs():
        raw = yaml.safe_load(entry["text"]) if entry["text"] else None
        if not isinstance(raw, dict):
            continue
        try:
            spec = parse_spec(
                raw, entry["source"] or "", entry["smoke"], entry["text"], strict=False
            )
        except ConfigError as e:  # one spec this code cannot read again blocks no other's report
            warnings.warn(
                f"{store.path}: spec {entry['name']!r} cannot be read again ({e}); it is left "
                "out of the report", stacklevel=2,
            )  # fmt: skip
            continue
        out.append(spec)
    return out


def write_report(
    results: str | Path,
    out: str | Path | None = None,
    storage: str | None = None,
    only: list[str] | None = None,
) -> Path:
    """Write the report of the store ``results`` to ``out`` (default ``RESULTS/report.md``),
    its figures beside it; returns the Markdown file's path. ``only``: report just these of
    the store's specs (by name; a name the store lacks is an error listing what it has)."""

    root = Path(results)
    if not (root / "index.sqlite3").exists():
        raise ConfigError(f"{root} is not an experiment store (no index.sqlite3)")
    store = Store(root)
    specs = load_store_specs(store)
    if only:
        names = [s.name for s in specs]
        missing = [n for n in only if n not in names]
        if missing:
            raise ConfigError(
                f"--specs: {', '.join(missing)} not in the store {root} "
                f"(it has: {', '.join(names) or 'no spec'})"
            )
        specs = [s for s in specs if s.name in only]
    out_path = Path(out) if out else root / "report.md"
    if out_path.is_dir():
        raise ConfigError(f"--out {out_path}: is a folder; give the report's file, e.g. "
                          f"{out_path / 'report.md'}")  # fmt: skip
    out_path.parent.mkdir(parents=True, exist_ok=True)
    parts = ["# Experiment report", "", f"Store `{os.path.relpath(root, out_path.parent)}`; specs: {', '.join(s.name for s in specs) or 'none'}. "
             "Tables: mean ± std over seeds, the best value in **bold** and the second <u>underlined</u>. "
             "Every table and figure names the spec, seeds and run directories behind it.", ""]  # fmt: skip
    from cranerec._version import __version__

    parts[2] += f" cranerec {__version__}."
    for spec in specs:
        parts.append(spec_report(spec, store, out_path.parent, storage))
    write_text_atomic(out_path, "\n".join(parts).rstrip() + "\n")
    return out_path
