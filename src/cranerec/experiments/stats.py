"""Aggregation over seeds and significance tests for the report.

- ``mean_std``: mean and sample standard deviation (ddof 1) over seeds.
- ``paired_ttest``: scipy's paired t-test; ``None`` when it is undefined (fewer than two pairs,
  or differences that do not vary), 1.0 when the two samples are identical.
- ``holm``: Holm's step-down adjustment of the p-values of one family (one table column).
- ``compare_rows``: for each row of a table, the paired tests against the reference row over
  users (per-user test Recall@20, averaged over the seeds both rows have) and over seeds (the
  seeds both have), each column Holm-corrected across the table's comparisons.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from cranerec.train.rundir import RunDir


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def paired_ttest(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value of ``x`` vs ``y`` (same length, paired by position)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired samples need the same length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        return None
    if np.array_equal(x, y):
        return 1.0
    d = x - y
    if np.allclose(d, d[0], rtol=0, atol=1e-12):  # no variance in the differences: undefined
        return None
    p = float(stats.ttest_rel(x, y).pvalue)
    return None if math.isnan(p) else p


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values, in the input order; ``None`` entries are not comparisons (they
    stay ``None`` and do not count in the family size)."""
    indexed = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(indexed)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def per_user(
    run_dir: str | Path, metric: str = "recall@20", split: str = "test"
) -> dict[str, float]:
    """{user id: value} of one run's per-user metric (``per_user.npz``, or
    ``per_user_valid.npz`` for the validation split)."""
    with np.load(RunDir(run_dir).per_user(split), allow_pickle=False) as z:
        return dict(
            zip(z["user_id"].tolist(), z[metric.replace("@", "_at_")].tolist(), strict=True)
        )


def mean_per_user(
    run_dirs: Sequence[str | Path], metric: str = "recall@20", split: str = "test"
) -> dict[str, float]:
    """Per-user values averaged over runs (the users every run evaluated)."""
    tables = [per_user(r, metric, split) for r in run_dirs]
    users = set(tables[0]).intersection(*tables[1:])
    return {u: float(np.mean([t[u] for t in tables])) for u in sorted(users)}


@dataclass
class RowRuns:
    """The finished runs of one table row: seed -> (run directory, metric value)."""

    label: str
    runs: dict[int, tuple[Path, float]] = field(default_factory=dict)


@dataclass
class Comparison:
    """A row's paired tests against the reference (raw and Holm-adjusted p-values)."""

    seeds: list[int]
    p_users: float | None
    p_seeds: float | None
    p_users_holm: float | None = None
    p_seeds_holm: float | None = None


def compare_rows(
    rows: list[RowRuns], reference: str, metric: str = "recall@20", split: str = "test"
) -> dict[str, Comparison]:
    """Paired tests of every row against the ``reference`` row (see the module docstring);
    the reference itself and rows sharing no seed with it are left out."""
    ref = next((r for r in rows if r.label == reference), None)
    out: dict[str, Comparison] = {}
    if ref is None:
        return out
    for row in rows:
        if row.label == reference:
            continue
        seeds = sorted(set(row.runs) & set(ref.runs))
        if not seeds:
            continue
        a = mean_per_user([row.runs[s][0] for s in seeds], metric, split)
        b = mean_per_user([ref.runs[s][0] for s in seeds], metric, split)
        users = sorted(set(a) & set(b))
        p_users = paired_ttest([a[u] for u in users], [b[u] for u in users])
        p_seeds = paired_ttest([row.runs[s][1] for s in seeds], [ref.runs[s][1] for s in seeds])
        out[row.label] = Comparison(seeds, p_users, p_seeds)
    labels = list(out)
    for attr in ("p_users", "p_seeds"):
        adjusted = holm([getattr(out[k], attr) for k in labels])
        for k, p in zip(labels, adjusted, strict=True):
            setattr(out[k], f"{attr}_holm", p)
    return out


def rank_marks(values: Sequence[float | None]) -> list[str]:
    """``best`` / ``second`` / ``""`` per value (higher is better; ties share the mark)."""
    distinct = sorted({v for v in values if v is not None and not math.isnan(v)}, reverse=True)
    best = distinct[0] if distinct else None
    second = distinct[1] if len(distinct) > 1 else None
    return [
        "best" if v == best and v is not None else "second" if v == second and v is not None else ""
        for v in values
    ]
