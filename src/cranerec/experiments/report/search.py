"""The report's section of a spec's hyper-parameter search (the study's best trials)."""

from __future__ import annotations

from pathlib import Path

from cranerec.experiments.report.context import Context, _spec_source, fmt, mark, short
from cranerec.experiments.report.figures import figure_search_curves


def search_section(ctx: Context, storage: str | None, png: Path) -> str:
    """The study's five best trials by validation, the chosen one's test metrics, and a figure
    of every trial's validation curve (written to ``png``)."""
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
    from cranerec.experiments.spec_runs import search_base_raw
    from cranerec.train.config import resolve_config

    min_epochs = resolve_config(search_base_raw(spec)).train.min_epochs
    title = f"{spec.name}: every trial's validation curve"
    if figure_search_curves(trials, metric, min_epochs, best, title, png) is not None:
        lines += [f"![{title}]({png.name})", ""]
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
