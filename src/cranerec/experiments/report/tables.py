"""The report's results tables: mean ± std over seeds, best marked, paired tests."""

from __future__ import annotations

import logging
import math

import numpy as np

from cranerec.experiments.report.context import Context, Group, fmt, fmt_p, mark, short
from cranerec.experiments.spec import ReportSection
from cranerec.experiments.stats import RowRuns, compare_rows, mean_std, rank_marks

log = logging.getLogger(__name__)


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
                    r.seed: (ctx.run_path(r), r.results[split].get(test_metric, math.nan))
                    for r in g.runs
                },
            )
            for g in groups
        ]
        try:
            comps = compare_rows(rows, ref_label, test_metric, split)  # the table's split only
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
            f"p-values: two-sided paired t-tests against {ref_label} — over users on per-user "
            f"{split} {short(test_metric)} averaged over the seeds both rows have, and over those "
            f"seeds on the {split} value — Holm-corrected across the comparisons of this table "
            "(– : fewer than two seeds to pair)."
        )
    if timing:
        notes.append(
            "s / epoch: each run's median seconds per training epoch (evaluation excluded), "
            "averaged over the seeds."
        )
    notes.append("best epoch: the epoch whose weights were kept, per seed.")
    return "\n".join(lines) + ("\n\n" + " ".join(notes) if notes else "")
