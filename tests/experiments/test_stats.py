"""Aggregation and significance: checked against hand computations and scipy."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from cranerec.experiments.stats import (
    RowRuns,
    compare_rows,
    holm,
    mean_std,
    paired_ttest,
    rank_marks,
)


def test_holm_on_known_p_values():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.06, 0.04*1) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([None, 0.02, None]) == [None, 0.02, None]  # no comparison, not in the family


def test_paired_ttest_equals_scipy_and_the_formula():
    x = [0.30, 0.25, 0.40, 0.10, 0.55]
    y = [0.20, 0.25, 0.30, 0.05, 0.50]
    d = np.subtract(x, y)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    p_hand = 2 * sps.t.sf(abs(t), df=len(d) - 1)
    assert paired_ttest(x, y) == pytest.approx(sps.ttest_rel(x, y).pvalue)
    assert paired_ttest(x, y) == pytest.approx(p_hand)
    assert paired_ttest([0.1], [0.2]) is None  # undefined with one pair
    assert paired_ttest(x, x) == 1.0
    assert paired_ttest([0.3, 0.5], [0.2, 0.4]) is None  # constant differences: undefined


def test_mean_std_is_the_sample_std():
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([0.5]) == (0.5, 0.0)


def test_rank_marks_best_and_second_with_ties():
    assert rank_marks([0.1, 0.3, 0.2, 0.3]) == ["", "best", "second", "best"]


def _per_user(path, values):
    np.savez(path / "per_user.npz", user_id=np.array(["a", "b", "c", "d"]), user_idx=np.arange(4),
             recall_at_20=np.asarray(values, dtype=np.float64))  # fmt: skip


def test_compare_rows_pairs_users_over_common_seeds_and_applies_holm(tmp_path):
    vals = {
        ("ref", 1): [0.5, 0.4, 0.6, 0.3], ("ref", 2): [0.7, 0.4, 0.4, 0.5],
        ("a", 1): [0.1, 0.2, 0.3, 0.2], ("a", 2): [0.3, 0.2, 0.1, 0.3],
        ("b", 1): [0.5, 0.5, 0.5, 0.2],
    }  # fmt: skip
    rows = {}
    for (label, seed), v in vals.items():
        d = tmp_path / f"{label}{seed}"
        d.mkdir()
        _per_user(d, v)
        rows.setdefault(label, RowRuns(label)).runs[seed] = (d, float(np.mean(v)))
    out = compare_rows(list(rows.values()), "ref")
    ref_users = np.mean([vals[("ref", 1)], vals[("ref", 2)]], axis=0)
    a_users = np.mean([vals[("a", 1)], vals[("a", 2)]], axis=0)
    p_a = sps.ttest_rel(a_users, ref_users).pvalue
    p_b = sps.ttest_rel(vals[("b", 1)], vals[("ref", 1)]).pvalue  # b shares seed 1 only
    assert out["a"].seeds == [1, 2] and out["b"].seeds == [1]
    assert out["a"].p_users == pytest.approx(p_a) and out["b"].p_users == pytest.approx(p_b)
    assert [out["a"].p_users_holm, out["b"].p_users_holm] == pytest.approx(holm([p_a, p_b]))
    seeds_p = sps.ttest_rel(
        [np.mean(vals[("a", s)]) for s in (1, 2)], [np.mean(vals[("ref", s)]) for s in (1, 2)]
    ).pvalue
    assert out["a"].p_seeds == pytest.approx(seeds_p) and out["b"].p_seeds is None
    assert "ref" not in out
