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

import io
import json
import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cranerec.experiments.spec import ExperimentSpec, ReportSection, lookup, parse_spec
from cranerec.experiments.stats import RowRuns, compare_rows, mean_std, rank_marks
from cranerec.experiments.store import RunRow, Store
from cranerec.train.trainer import METRICS
from cranerec.utils.io import write_bytes_atomic, write_text_atomic

log = logging.getLogger(__name__)

#: Amazon-Baby's size in entities (users + items), the largest shape exact RCA is run at on CPU.
BABY_USERS, BABY_ITEMS = 19445, 7050
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


# ---------------------------------------------------------------------------------- grouping


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
        """The run's ``metrics.jsonl``: one record per trained epoch."""
        text = (self.run_path(row) / METRICS).read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

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
            results = json.loads((self.run_path(row) / "results.json").read_text(encoding="utf-8"))
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


# ---------------------------------------------------------------------------------- tables


def results_table(
    ctx: Context, section: ReportSection, groups: list[Group], extra_timing: bool = False
) -> str:
    """A Markdown table: mean ± std over seeds per metric, best bold / second underlined, the
    change of the first metric against the reference, paired-test p-values."""
    split = section.split
    metrics = section.metrics
    ref_label = ctx.reference_label(groups)
    test_metric = "recall@20"
    comps = {}
    if section.tests and ref_label is not None:
        rows = [
            RowRuns(
                g.label,
                {
                    r.seed: (ctx.run_path(r), r.results["test"].get(test_metric, math.nan))
                    for r in g.runs
                },
            )
            for g in groups
        ]
        try:
            comps = compare_rows(rows, ref_label, test_metric, "test")
        except (OSError, KeyError) as e:  # a run without per-user values
            log.warning("paired tests skipped: %s", e)
    means = {m: [mean_std(g.values(split, m))[0] for g in groups] for m in metrics}
    delta = test_metric if test_metric in metrics else metrics[0]  # the change column's metric
    marks = {m: rank_marks(means[m]) for m in metrics}
    head = ["", "seeds"] + [f"{split} {short(m)}" for m in metrics]
    if ref_label is not None:
        head.append(f"Δ {short(delta)} vs {ref_label}")
    if comps:
        head += [f"p users ({short(test_metric)}, Holm)", f"p seeds ({short(test_metric)}, Holm)"]
    timing = section.timing or extra_timing
    if timing:
        head.append("s / epoch")
    head.append("best epoch")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ref_mean = next((means[delta][i] for i, g in enumerate(groups) if g.label == ref_label), None)
    # seconds from different devices side by side say nothing unless each says which
    device_of = {r.run_id: ctx.device(r) for g in groups for r in g.runs} if timing else {}
    mixed = len(set(device_of.values())) > 1
    for i, g in enumerate(groups):
        cells = [g.label, ", ".join(str(r.seed) for r in g.runs)]
        for m in metrics:
            mu, sd = mean_std(g.values(split, m))
            text = fmt(mu) if len(g.runs) == 1 else f"{fmt(mu)} ± {fmt(sd)}"
            cells.append(mark(text, marks[m][i]))
        if ref_label is not None:
            if g.label == ref_label:
                cells.append("(reference)")
            else:
                cells.append(f"{means[delta][i] / ref_mean - 1:+.1%}" if ref_mean else "–")
        if comps:
            c = comps.get(g.label)
            cells += ["(reference)" if g.label == ref_label else fmt_p(c.p_users_holm if c else None),
                      "(reference)" if g.label == ref_label else fmt_p(c.p_seeds_holm if c else None)]  # fmt: skip
        if timing:
            by_device: dict[str, list[float]] = {}
            for r in g.runs:
                by_device.setdefault(device_of[r.run_id], []).append(ctx.epoch_seconds(r))
            cells.append(", ".join(
                f"{np.mean(secs):.3g}" + (f" ({dev})" if mixed else "")
                for dev, secs in sorted(by_device.items())
            ))  # fmt: skip
        cells.append(", ".join(str(r.results.get("best_epoch")) for r in g.runs))
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    if comps:
        notes.append(
            f"p-values: two-sided paired t-tests against {ref_label} — over users on per-user test "
            f"{short(test_metric)} averaged over the seeds both rows have, and over those seeds on "
            "the test value — Holm-corrected across the comparisons of this table (– : fewer than "
            "two seeds to pair)."
        )
    if timing:
        notes.append(
            "s / epoch: each run's median seconds per training epoch (evaluation excluded), "
            "averaged over the seeds."
        )
    notes.append("best epoch: the epoch whose weights were kept, per seed.")
    return "\n".join(lines) + ("\n\n" + " ".join(notes) if notes else "")


# ---------------------------------------------------------------------------------- figures


def figure_bars(
    ctx: Context, section: ReportSection, dataset: str, groups: list[Group], path: Path
) -> Path:
    from matplotlib.figure import Figure

    metrics = section.metrics
    fig = Figure(figsize=(max(6.0, 1.1 * len(groups) + 2), 4.2))
    ax = fig.subplots()
    width = 0.8 / len(metrics)
    x = np.arange(len(groups))
    for j, m in enumerate(metrics):
        stats_ = [mean_std(g.values(section.split, m)) for g in groups]
        mu = [s[0] for s in stats_]
        sd = [s[1] for s in stats_]
        bars = ax.bar(
            x + (j - (len(metrics) - 1) / 2) * width,
            mu,
            width,
            yerr=sd if any(sd) else None,
            capsize=3,
            label=f"{section.split} {short(m)}",
        )
        for b, v in zip(bars, mu, strict=True):
            ax.annotate(
                f"{v:.4f}",
                (b.get_x() + b.get_width() / 2, b.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
                xytext=(0, 2),
                textcoords="offset points",
            )
    ax.set_xticks(x)
    ax.set_xticklabels([g.label for g in groups], rotation=20, ha="right")
    ax.set_ylabel("metric value")
    top = max((b.get_height() for b in ax.patches), default=1.0)
    ax.set_ylim(0, top * 1.25)  # room for the legend above the bars
    ax.legend(loc="upper left", ncol=len(metrics))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(_title(ctx, section, dataset, groups))
    fig.tight_layout()
    return _save(fig, path)


def figure_heatmap(
    ctx: Context, section: ReportSection, dataset: str, groups: list[Group], path: Path
) -> Path | None:
    from matplotlib.figure import Figure

    metric = section.metrics[0]
    cells: dict[tuple[Any, Any], float] = {}
    for g in groups:
        config = g.runs[0].config
        xv, yv = lookup(config, section.x), lookup(config, section.y)
        cells[(xv, yv)] = mean_std(g.values(section.split, metric))[0]
    xs = sorted({k[0] for k in cells}, key=_sort_key)
    ys = sorted({k[1] for k in cells}, key=_sort_key)
    if not xs or not ys:
        return None
    grid = np.full((len(ys), len(xs)), np.nan)
    for (xv, yv), v in cells.items():
        grid[ys.index(yv), xs.index(xv)] = v
    fig = Figure(figsize=(1.1 * len(xs) + 3, 0.8 * len(ys) + 2.2))
    ax = fig.subplots()
    im = ax.imshow(grid, cmap="Blues", origin="lower", aspect="auto")
    finite = grid[np.isfinite(grid)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                ax.text(
                    j,
                    i,
                    f"{grid[i, j]:.4f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if grid[i, j] > mid else "black",
                )
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels([str(v) for v in xs])
    ax.set_yticks(range(len(ys)))
    ax.set_yticklabels([str(v) for v in ys])
    ax.set_xlabel(section.x)
    ax.set_ylabel(section.y)
    fig.colorbar(im, ax=ax, label=f"{section.split} {short(metric)} (darker = better)")
    ax.set_title(_title(ctx, section, dataset, groups))
    fig.tight_layout()
    return _save(fig, path)


def _sort_key(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def figure_curves(
    ctx: Context, section: ReportSection, dataset: str, groups: list[Group], path: Path
) -> Path:
    from matplotlib.figure import Figure

    metric = section.metrics[0]
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for g in groups:
        curves = []
        for r in g.runs:
            curves.append([e["valid"][metric] for e in ctx.epochs(r)])
        n = min(len(c) for c in curves)
        if n == 0:
            continue
        mean = np.mean([c[:n] for c in curves], axis=0)
        epochs = np.arange(1, n + 1)
        (line,) = ax.plot(
            epochs,
            mean,
            label=f"{g.label} (best {mean.max():.4f} at epoch {int(mean.argmax()) + 1})",
            marker="o" if n < 15 else None,
            markersize=3,
        )
        if len(curves) > 1:
            sd = np.std([c[:n] for c in curves], axis=0, ddof=1)
            ax.fill_between(epochs, mean - sd, mean + sd, color=line.get_color(), alpha=0.15)
        ax.axvline(int(mean.argmax()) + 1, color=line.get_color(), linestyle=":", alpha=0.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel(
        f"valid {short(metric)}"
        + (" (mean over seeds)" if any(len(g.runs) > 1 for g in groups) else "")
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(_title(ctx, section, dataset, groups))
    fig.tight_layout()
    return _save(fig, path)


def map_users(degree: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` users an embedding map shows (sorted, drawn with a fixed seed): users with 5-40
    training items, or, where the data has too few, the most items it has up to 40 (TikTok's users
    have 1-4 items or hundreds: 3-4 there), so that each user brings several items."""
    for low in (5, 4, 3, 2, 1):
        pool = np.flatnonzero((degree >= low) & (degree <= 40))
        if len(pool) >= n:
            break
    else:
        pool = np.flatnonzero(degree > 0)
    return np.sort(np.random.default_rng(0).choice(pool, size=min(n, len(pool)), replace=False))


def figure_embedding_map(
    ctx: Context, section: ReportSection, dataset: str, groups: list[Group], path: Path
) -> tuple[Path, list[str]]:
    """t-SNE (scikit-learn, cosine distance) of ``n_users`` users (stars) and their training
    items (dots, the user's colour), one panel per row; the same users in every panel. Returns
    the figure and one line per row with the mean cosine distance of users to their items."""
    from matplotlib.figure import Figure
    from sklearn.manifold import TSNE

    from cranerec.data.loaders import load_dataset
    from cranerec.train.config import resolve_config

    first = groups[0].runs[0]
    data = load_dataset(resolve_config(first.config).data)
    if data.fingerprint != first.fingerprint:
        raise RuntimeError(
            f"the data of {dataset} changed since the runs (fingerprint {data.fingerprint})"
        )
    degree = np.diff(data.train.indptr)
    users = map_users(degree, section.n_users)
    owner: dict[int, int] = {}
    for k, u in enumerate(users):
        for i in data.train.indices[data.train.indptr[u] : data.train.indptr[u + 1]]:
            owner.setdefault(int(i), k)  # an item two sampled users share keeps the first
    items = np.array(sorted(owner))
    colours = np.array([owner[int(i)] for i in items])
    fig = Figure(figsize=(5.2 * len(groups), 5.0))
    axes = np.atleast_1d(fig.subplots(1, len(groups)))
    notes = []
    for ax, g in zip(axes, groups, strict=True):
        with np.load(ctx.run_path(g.runs[0]) / "embeddings.npz", allow_pickle=False) as z:
            user_emb, item_emb = z["user_emb"][users], z["item_emb"][items]
        points = np.concatenate([user_emb, item_emb])
        tsne = TSNE(
            n_components=2,
            metric="cosine",
            perplexity=min(30.0, (len(points) - 1) / 3),
            init="pca",
            random_state=0,
        )
        xy = tsne.fit_transform(points)
        cmap = _cmap(len(users))
        ax.scatter(
            xy[len(users) :, 0], xy[len(users) :, 1], c=[cmap(c) for c in colours], s=14, alpha=0.7
        )
        ax.scatter(
            xy[: len(users), 0],
            xy[: len(users), 1],
            c=[cmap(k) for k in range(len(users))],
            marker="*",
            s=260,
            edgecolors="black",
            linewidths=0.8,
        )
        u = user_emb / np.linalg.norm(user_emb, axis=1, keepdims=True)
        v = item_emb / np.linalg.norm(item_emb, axis=1, keepdims=True)
        dist = float(np.mean(1 - np.sum(u[colours] * v, axis=1)))
        ax.set_title(
            f"{g.label} (seed {g.runs[0].seed})\nmean cosine distance user-item {dist:.3f}"
        )
        ax.set_xticks([])
        ax.set_yticks([])
        notes.append(f"{g.label}: mean cosine distance between a user and its items {dist:.3f}")
    synthetic = " — SYNTHETIC data" if data.synthetic else ""
    fig.suptitle(
        f"{section.title or 't-SNE of users and their training items'} on {dataset}{synthetic}"
    )
    from matplotlib.lines import Line2D

    key = dict(linestyle="none", color="grey", markeredgecolor="black")
    fig.legend(  # what the markers are, whatever the section's title says
        handles=[
            Line2D([], [], marker="*", markersize=14, **key),
            Line2D([], [], marker="o", markersize=5, markeredgewidth=0, **key),
        ],
        labels=["a user", "its training items (the user's colour)"],
        loc="lower center",
        ncol=2,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return _save(fig, path), notes


def _cmap(n: int):
    from matplotlib import colormaps

    return colormaps["tab10" if n <= 10 else "tab20"]


def figure_efficiency(ctx: Context, section: ReportSection, path: Path) -> tuple[Path, str]:
    """Seconds per epoch and peak memory against the dataset size (users + items), one line per
    model and kind of data (synthetic shapes and real data are separate series, never joined),
    with linear and quadratic reference curves through the reference model's smallest point;
    real datasets drawn as squares, synthetic ones as circles."""
    from matplotlib.figure import Figure

    # (model, synthetic) -> points; a model's synthetic shapes and real datasets are two series
    series: dict[tuple[str, bool], list[tuple[int, float, float, bool, RunRow]]] = defaultdict(list)
    for r in ctx.done:
        d = r.results.get("data") or {}
        n = int(d.get("n_users", 0)) + int(d.get("n_items", 0))
        synthetic = bool(d.get("synthetic"))
        series[(r.model, synthetic)].append(
            (
                n,
                ctx.epoch_seconds(r),
                r.results.get("peak_rss_mb") or math.nan,
                synthetic,
                r,
            )
        )
    fig = Figure(figsize=(12, 4.6))
    ax_t, ax_m = fig.subplots(1, 2)
    ref = ctx.spec.reference.model or (ctx.spec.models[0].label if ctx.spec.models else None)
    rows = [
        f"Sources: spec `{ctx.spec.name}` ({_spec_source(ctx.spec)}); per run, seed → run "
        "directory in the last column.",
        "",
        "| model | dataset | users + items | interactions | s / epoch | peak RSS MB | seed → run |",
        "|---|---|---|---|---|---|---|",
    ]
    models = list(dict.fromkeys(model for model, _ in series))
    mixed = len({syn for _, syn in series}) > 1
    colours = {m: f"C{k % 10}" for k, m in enumerate(models)}
    for (model, synthetic), pts in sorted(
        series.items(), key=lambda kv: (models.index(kv[0][0]), not kv[0][1])
    ):
        pts.sort(key=lambda p: p[0])
        label = model + ((" (synthetic)" if synthetic else " (real data)") if mixed else "")
        for ax, k in ((ax_t, 1), (ax_m, 2)):
            ax.plot(
                [p[0] for p in pts],
                [p[k] for p in pts],
                color=colours[model],
                linestyle="-" if synthetic else "-.",
                marker="o" if synthetic else "s",
                markersize=5,
                label=label,
                alpha=0.8,
            )
        for n, sec, mem, _, r in pts:
            d = r.results["data"]
            rows.append(
                f"| {model} | {r.dataset} | {n:,} | {d.get('n_interactions', 0):,} | {sec:.3f} | {mem:.0f} | {r.seed} → `{ctx.rel(r)}` |"
            )
    ref_pts = sorted(
        (p for (m, _), pts in series.items() if m == ref for p in pts), key=lambda p: p[0]
    )
    if ref_pts:
        n0, t0 = ref_pts[0][0], ref_pts[0][1]
        xs = np.geomspace(n0, ref_pts[-1][0], 50)
        ax_t.plot(xs, t0 * xs / n0, "k--", lw=1, label=f"linear (through {ref}'s smallest)")
        ax_t.plot(xs, t0 * (xs / n0) ** 2, "k:", lw=1, label="quadratic")
    baby = BABY_USERS + BABY_ITEMS
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    for ax, ylabel in (
        (ax_t, "seconds per training epoch (log)"),
        (ax_m, "peak RSS of the run (MB)"),
    ):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on a log axis
        ax.set_xlabel("dataset size: users + items (log)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.axvline(baby, color="grey", lw=0.8)
        ax.legend(loc="best", fontsize=8)
    ax_t.set_yscale("log")
    top = max((p[2] for pts in series.values() for p in pts if math.isfinite(p[2])), default=0)
    ax_m.set_ylim(0, top * 1.12 if top > 0 else None)  # the highest point inside the frame
    ax_t.set_title(  # above the frame, where no curve can hide it
        f"grey line: Amazon-Baby's shape (users + items = {baby:,});\n"
        "exact RCA beyond it is out of reach on CPU",
        fontsize=8,
    )
    ax_m.text(
        0.98,
        0.03,
        "squares, dash-dot: real data\ncircles, solid: synthetic data",
        transform=ax_m.transAxes,
        ha="right",
        va="bottom",
        fontsize=8,
    )
    all_synthetic = bool(series) and all(syn for _, syn in series)
    fig.suptitle(
        (section.title or "Cost against dataset size")
        + (" (SYNTHETIC data)" if all_synthetic else "")
    )
    fig.tight_layout()
    return _save(fig, path), "\n".join(rows)


def _title(ctx: Context, section: ReportSection, dataset: str, groups: list[Group]) -> str:
    synthetic = any(r.results.get("synthetic_data") for g in groups for r in g.runs)
    return f"{section.title or ctx.spec.name} — {dataset}" + (
        " (SYNTHETIC data)" if synthetic else ""
    )


# ---------------------------------------------------------------------------------- search


def search_section(ctx: Context, storage: str | None) -> str:
    from cranerec.experiments.search import (
        best_trial,
        load_trials,
        masked,
        storage_url,
        trial_counts,
    )

    spec = ctx.spec
    url = storage_url(spec, ctx.store, storage)
    trials = load_trials(spec, ctx.store, storage)
    if not trials:
        return (
            f"The search has not run (study `{spec.search.study or spec.name}` in {masked(url)})."
        )
    counts = trial_counts(spec, ctx.store, storage)
    best = best_trial(trials)
    metric = spec.search.metric
    lines = [
        f"Study `{spec.search.study or spec.name}` in {masked(url)}: model {spec.search.model} on "
        f"{spec.search.dataset} (preset {spec.search.preset or 'none'}, seed {spec.search.seed}); "
        + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        + ". Selection on valid "
        f"{short(metric)} only; the test columns are the chosen configuration's.",
        "",
    ]
    if best is None:
        return "\n".join(lines + ["No trial has completed yet."])
    test = best.user_attrs.get("results", {}).get("test", {})
    valid = best.user_attrs.get("results", {}).get("valid", {})
    keys = [m for m in ("recall@10", "recall@20", "ndcg@10", "ndcg@20") if m in test]
    head = (
        ["trial"]
        + list(best.params)
        + [f"valid {short(metric)}"]
        + [f"test {short(m)}" for m in keys]
        + ["best epoch", "run (host)"]
    )
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ranked = sorted(
        (t for t in trials if t.value is not None and t.state.name == "COMPLETE"),
        key=lambda t: -t.value,
    )[:5]
    for t in ranked:
        cells = (
            [str(t.number)]
            + [str(t.params.get(k)) for k in best.params]
            + [mark(fmt(t.value), "best" if t is best else "")]
        )
        res, run = t.user_attrs.get("results", {}), t.user_attrs.get("run", {})
        cells += [fmt(res.get("test", {}).get(m)) for m in keys]
        where = ctx.relative(ctx.store.root / run["dir"]) if run.get("dir") else None
        cells += [str(res.get("best_epoch")), f"`{where}` ({run.get('host')})"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Chosen: trial {best.number} ({', '.join(f'{k}={v}' for k, v in best.params.items())}), valid "
        f"{short(metric)} {fmt(valid.get(metric))}; its test metrics: "
        + ", ".join(f"{short(m)} {fmt(test[m])}" for m in keys)
        + f". Sources: spec `{spec.name}` ({_spec_source(spec)}), seed {spec.search.seed}, the five best trials by validation above."
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- the report


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
            parts += [search_section(ctx, storage), ""]
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
        out.append(parse_spec(raw, entry["source"] or "", entry["smoke"], entry["text"]))
    return out


def write_report(
    results: str | Path, out: str | Path | None = None, storage: str | None = None
) -> Path:
    """Write the report of the store ``results`` to ``out`` (default ``RESULTS/report.md``),
    its figures beside it; returns the Markdown file's path."""
    root = Path(results)
    if not (root / "index.sqlite3").exists():
        from cranerec.config import ConfigError

        raise ConfigError(f"{root} is not an experiment store (no index.sqlite3)")
    store = Store(root)
    out_path = Path(out) if out else root / "report.md"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    specs = load_store_specs(store)
    parts = ["# Experiment report", "", f"Store `{os.path.relpath(root, out_path.parent)}`; specs: {', '.join(s.name for s in specs) or 'none'}. "
             "Tables: mean ± std over seeds, the best value in **bold** and the second <u>underlined</u>. "
             "Every table and figure names the spec, seeds and run directories behind it.", ""]  # fmt: skip
    import cranerec

    parts[2] += f" cranerec {cranerec.__version__}."
    for spec in specs:
        parts.append(spec_report(spec, store, out_path.parent, storage))
    write_text_atomic(out_path, "\n".join(parts).rstrip() + "\n")
    return out_path
