"""The report's figures (PNG, matplotlib ``Figure`` objects, never pyplot's global state): bars,
heatmaps, curves, embedding maps and the efficiency plot."""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from cranerec.experiments.report.context import Context, Group, _save, _spec_source, short
from cranerec.experiments.spec import ReportSection, lookup
from cranerec.experiments.stats import mean_std
from cranerec.experiments.store import RunRow
from cranerec.train.rundir import RunDir
from cranerec.utils.extras import require

#: Amazon-Baby's size in entities (users + items), the largest shape exact RCA is run at on CPU.
BABY_USERS, BABY_ITEMS = 19445, 7050


def figure_bars(
    ctx: Context, section: ReportSection, dataset: str, groups: list[Group], path: Path
) -> Path:
    Figure = require("matplotlib.figure", "experiments", "the report's figures").Figure  # noqa: N806

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
        for b, g in zip(bars, groups, strict=True):  # each seed's own value: the spread shows
            per_seed = g.values(section.split, m)
            if len(per_seed) > 1:
                centre = b.get_x() + b.get_width() / 2
                ax.scatter([centre] * len(per_seed), per_seed, s=9, color="black", zorder=3)
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
    ax.set_ylabel("metric value (mean ± std; dots: seeds)")
    seeds = [v for g in groups for m in metrics for v in g.values(section.split, m)]
    top = max([b.get_height() for b in ax.patches] + seeds, default=1.0)
    ax.set_ylim(0, top * 1.25)  # room for the legend above the bars
    ax.legend(loc="upper left", ncol=len(metrics))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(_title(ctx, section, dataset, groups))
    fig.tight_layout()
    return _save(fig, path)


def figure_heatmap(
    ctx: Context, section: ReportSection, dataset: str, groups: list[Group], path: Path
) -> Path | None:
    Figure = require("matplotlib.figure", "experiments", "the report's figures").Figure  # noqa: N806

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
    Figure = require("matplotlib.figure", "experiments", "the report's figures").Figure  # noqa: N806

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
        several = len(curves) > 1
        if several:  # each seed's peak (any epoch, min_epochs or not), not that of a cut mean
            bests = [max(c) for c in curves]
            at = ", ".join(str(int(np.argmax(c)) + 1) for c in curves)
            label = f"{g.label} (peak {np.mean(bests):.4f} mean over seeds, at epochs {at})"
        else:
            label = f"{g.label} (peak {mean.max():.4f} at epoch {int(mean.argmax()) + 1})"
        (line,) = ax.plot(epochs, mean, label=label, marker="o" if n < 15 else None, markersize=3)
        if several:
            sd = np.std([c[:n] for c in curves], axis=0, ddof=1)
            ax.fill_between(epochs, mean - sd, mean + sd, color=line.get_color(), alpha=0.15)
            for c in curves:  # seeds that train on past the shortest one, thin
                if len(c) > n:
                    ax.plot(np.arange(n, len(c) + 1), c[n - 1 :], color=line.get_color(),
                            linewidth=0.8, alpha=0.5)  # fmt: skip
        else:  # one run: its best epoch marked (several: their best epochs are in the label)
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
    Figure = require("matplotlib.figure", "experiments", "the report's figures").Figure  # noqa: N806
    TSNE = require("sklearn.manifold", "experiments", "the embedding map").TSNE  # noqa: N806

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
        with np.load(RunDir(ctx.run_path(g.runs[0])).embeddings, allow_pickle=False) as z:
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
    Figure = require("matplotlib.figure", "experiments", "the report's figures").Figure  # noqa: N806

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
    """The figure's title, wrapped so that a long one stays inside the figure."""
    synthetic = any(r.results.get("synthetic_data") for g in groups for r in g.runs)
    title = f"{section.title or ctx.spec.name} — {dataset}" + (
        " (SYNTHETIC data)" if synthetic else ""
    )
    return textwrap.fill(title, width=70)


def figure_search_curves(
    trials: list[Any], metric: str, min_epochs: int, chosen: Any, title: str, path: Path
) -> Path | None:
    """Every trial's validation curve as the pruner saw it (thin; pruned ones dashed), the chosen
    trial bold, and a dotted line where ``train.min_epochs`` first lets a run be judged: whether
    the trials were compared after they converged or on early snapshots shows at a glance."""
    Figure = require("matplotlib.figure", "experiments", "the report's figures").Figure  # noqa: N806

    drawn = [t for t in trials if t.intermediate_values]
    if not drawn:
        return None
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for t in drawn:
        steps = sorted(t.intermediate_values)
        values = [t.intermediate_values[s] for s in steps]
        if t is chosen:
            ax.plot(steps, values, color="black", linewidth=2, zorder=3,
                    label=f"chosen: trial {t.number} (valid {short(metric)} {t.value:.4f})")  # fmt: skip
        else:
            style = "--" if t.state.name == "PRUNED" else "-"
            ax.plot(steps, values, linestyle=style, linewidth=0.9, alpha=0.6)
    if min_epochs:
        ax.axvline(min_epochs + 0.5, color="grey", linestyle=":",
                   label=f"judged from epoch {min_epochs + 1} (train.min_epochs)")  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"valid {short(metric)}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    ax.set_title(textwrap.fill(f"{title}: {len(drawn)} trials (pruned: dashed)", width=70))
    fig.tight_layout()
    return _save(fig, path)
