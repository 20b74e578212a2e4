"""From a raw interaction log to a split dataset (`cranerec data build`'s first half): LogConfig,
read_log and split_log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cranerec.data import DataError
from cranerec.data.build import LogConfig, read_log, split_log

from .builders import pairs_of, write_log


def build(tmp_path: Path, rows: list[tuple], columns=("user", "item", "time"), **settings):
    """Write ``rows`` as a CSV log and read and split it; (dataset, kept rows, report)."""
    path = write_log(tmp_path / "log.csv", rows, columns)
    config = LogConfig(**settings)
    return split_log(read_log(path, config), config, str(path))


def raw_pairs(data, split: str) -> set[tuple[str, str]]:
    """The (user, item) raw ids of a split."""
    return {(data.user_ids[u], data.item_ids[i]) for u, i in pairs_of(data.split(split))}


def test_repeated_pairs_are_counted_and_the_earliest_kept(tmp_path):
    # a/x at times 9, 1 and 6: kept at 1, so a's last two are z (4) and w (3), not x (9)
    rows = [("a", "x", 9), ("a", "y", 2), ("a", "x", 1), ("a", "w", 3), ("a", "z", 4),
            ("a", "x", 6), ("b", "x", 1)]  # fmt: skip
    data, kept, report = build(tmp_path, rows, time_col="time", split="last")
    assert report.dropped_duplicates == 2
    assert len(kept) == 5
    assert raw_pairs(data, "test") == {("a", "z")}
    assert raw_pairs(data, "valid") == {("a", "w")}
    x = data.item_ids.tolist().index("x")
    assert kept.loc[(kept["itemID"] == x) & (kept["userID"] == 0), "timestamp"].tolist() == [1]


def test_min_rating_keeps_rows_rated_at_least_the_threshold(tmp_path):
    rows = [("a", "x", 5), ("a", "y", 3), ("a", "z", 4), ("b", "x", 1), ("b", "y", 4)]
    data, _, report = build(tmp_path, rows, ("user", "item", "stars"), rating_col="stars",
                            min_rating=4, split="full")  # fmt: skip
    assert report.dropped_rating == 2
    assert raw_pairs(data, "train") == {("a", "x"), ("a", "z"), ("b", "y")}


def test_kcore_reports_what_it_dropped(tmp_path):
    # A (2 rows) and E (1 row) fall below user_min 3; then z (A's and E's) has no row left
    rows = [(u, i, 0) for u in "BCD" for i in "pqr"] + [("A", "p", 0), ("A", "z", 0), ("E", "z", 0)]
    data, _, report = build(tmp_path, rows, user_min=3, item_min=2)
    assert report.kcore == {"user_min": 3, "item_min": 2, "users": 2, "items": 1, "interactions": 3}
    assert sorted(data.user_ids.tolist()) == ["B", "C", "D"]
    assert sorted(data.item_ids.tolist()) == ["p", "q", "r"]


def test_default_settings_keep_every_user_and_item(tmp_path):
    rows = [("a", "x", 0), ("b", "y", 0), ("c", "x", 0), ("c", "y", 0), ("c", "z", 0)]
    data, _, report = build(tmp_path, rows)
    assert report.kcore["users"] == report.kcore["items"] == report.kcore["interactions"] == 0
    assert (data.n_users, data.n_items) == (3, 3)
    assert report.interactions == 5


def test_full_mode_puts_everything_in_training(tmp_path):
    rows = [(u, i, t) for t, (u, i) in enumerate((u, i) for u in "abc" for i in "vwxyz")]
    data, kept, report = build(tmp_path, rows, time_col="time", split="full")
    assert report.splits == {"train": 15, "valid": 0, "test": 0}
    assert data.valid.nnz == data.test.nnz == 0
    assert set(kept["x_label"]) == {0}


def test_dates_order_by_the_time_they_name_not_by_their_text(tmp_path):
    # in time order: w, z, y (22:00 UTC on Feb 28), x; as text y would sort last
    rows = [("a", "x", "2021-03-01T00:00:00+00:00"), ("a", "y", "2021-03-01T03:00:00+05:00"),
            ("a", "z", "2021-02-01"), ("a", "w", "2020-12-31")]  # fmt: skip
    data, _, _ = build(tmp_path, rows, time_col="time", split="last")
    assert raw_pairs(data, "test") == {("a", "x")}
    assert raw_pairs(data, "valid") == {("a", "y")}


def test_a_bad_time_value_names_the_file_line_and_column(tmp_path):
    # the first row goes below --min-rating before the times are read: the line is still the file's
    rows = [("a", "x", 1, "2021-01-01"), ("a", "y", 5, "2021-01-02"), ("b", "x", 5, "soon")]
    path = write_log(tmp_path / "log.csv", rows, ("user", "item", "stars", "when"))
    config = LogConfig(time_col="when", rating_col="stars", min_rating=3, split="last")
    with pytest.raises(DataError, match=r"log\.csv: line 4: when 'soon'"):
        split_log(read_log(path, config), config, str(path))


def test_missing_columns_are_named(tmp_path):
    path = write_log(tmp_path / "log.csv", [("a", "x")], ("uid", "item"))
    with pytest.raises(DataError, match=r"log\.csv: missing column\(s\) \['user', 'ts'\]"):
        read_log(path, LogConfig(time_col="ts", split="temporal"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"split": "temporal"}, "--split temporal .* --time-col"),
     ({"split": "last"}, "--split last .* --time-col"),
     ({"split": "chronological"}, "--split 'chronological': choose one of"),
     ({"split_ratios": (0.8, -0.1, 0.3)}, "--ratios"),
     ({"split_ratios": (0.0, 0.5, 0.5)}, "--ratios"),
     ({"split_ratios": (0.8, 0.2)}, "--ratios"),
     ({"min_rating": 3.0}, "--min-rating needs --rating-col"),
     ({"user_min": 0}, "--user-min"),
     ({"split_seed": "paper9"}, "--split-seed"),
     ({"split_ratios": (float("nan"), 1.0, 1.0)}, "--ratios"),
     ({"split_ratios": (float("inf"), 1.0, 1.0)}, "--ratios"),
     ({"split_ratios": (0.8, float("inf"), 0.1)}, "--ratios"),
     ({"item_col": "user"}, "column 'user' is named by more than one of --user-col, --item-col"),
     ({"time_col": "item"}, "column 'item' is named by more than one"),
     ({"rating_col": "r", "min_rating": float("nan")}, "--min-rating must be a finite number")],
)  # fmt: skip
def test_log_config_refuses_unusable_settings(settings, message):
    with pytest.raises(DataError, match=message):
        LogConfig(**settings)


def test_random_split_of_a_log_is_the_seeds(tmp_path):
    rows = [(u, i, 0) for u in "abcd" for i in "pqrstuvwxyz"]
    first, _, _ = build(tmp_path, rows, split_seed="paper2")
    again, _, _ = build(tmp_path, rows, split_seed="672")
    other, _, _ = build(tmp_path, rows, split_seed="9")
    assert raw_pairs(first, "test") == raw_pairs(again, "test")
    assert raw_pairs(first, "test") != raw_pairs(other, "test")
    assert first.test.nnz == 4 and first.valid.nnz == 4


def test_the_kept_rows_hold_the_codes_and_labels_of_the_dataset(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", int(rng.integers(0, 4))) for u in range(8) for i in range(u, u + 12)]
    data, kept, _ = build(tmp_path, rows, time_col="time", split="temporal")
    for label, split in enumerate(("train", "valid", "test")):
        sel = kept[kept["x_label"] == label]
        assert set(zip(sel["userID"], sel["itemID"], strict=True)) == pairs_of(data.split(split))


@pytest.mark.parametrize("odd", ["", "2014-06-01"])
def test_a_time_that_is_not_a_number_among_numbers_names_its_own_line(tmp_path, odd):
    rows = [("a", "x", 1406007071), ("a", "y", 1406007072), ("b", "x", odd), ("b", "y", 5)]
    path = write_log(tmp_path / "log.csv", rows, ("user", "item", "ts"))
    config = LogConfig(time_col="ts", split="temporal")
    with pytest.raises(DataError, match=rf"log\.csv: line 4: ts '{odd}' is not a number .*1 such"):
        split_log(read_log(path, config), config, str(path))


@pytest.mark.parametrize(
    "times", [["20140601", "20140602", "2014-06-03", "2014-06-04"], ["2014", "2015-03-01", "2016"]]
)
def test_a_date_column_whose_dates_look_like_numbers_reads_as_dates(tmp_path, times):
    rows = [("a", f"i{k}", t) for k, t in enumerate(times)][::-1]  # latest first in the file
    data, _, _ = build(tmp_path, rows, time_col="time", split="last")
    assert raw_pairs(data, "test") == {("a", f"i{len(times) - 1}")}


def test_an_epoch_among_dates_is_named_as_not_a_date(tmp_path):
    rows = [("a", "x", "2021-01-01"), ("a", "y", "2021-01-02"), ("a", "z", "x1406007071")]
    path = write_log(tmp_path / "log.csv", rows, ("user", "item", "ts"))
    config = LogConfig(time_col="ts", split="temporal")
    with pytest.raises(DataError, match=r"line 4: ts 'x1406007071' is not a date as the column"):
        split_log(read_log(path, config), config, str(path))


def test_a_rating_threshold_above_every_rating_names_min_rating(tmp_path):
    rows = [("a", "x", "1", "3"), ("b", "y", "2", "5")]
    with pytest.raises(DataError, match=r"no row has r >= 9.0 \(--min-rating; the highest is 5\)"):
        build(tmp_path, rows, ("user", "item", "time", "r"), rating_col="r", min_rating=9.0)


@pytest.mark.parametrize("bad", ["inf", "-inf"])
def test_an_infinite_time_names_its_line(tmp_path, bad):
    rows = [("a", "x", "1"), ("a", "y", bad), ("b", "x", "3")]
    with pytest.raises(DataError, match=rf"log\.csv: line 3: time '{bad}' is not a finite number"):
        build(tmp_path, rows, time_col="time", split="temporal")


def test_nulls_in_a_parquet_log_are_empty_cells_named_by_line(tmp_path):
    import pandas as pd

    pytest.importorskip("pyarrow", reason="Parquet needs pyarrow")
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user": ["a", "a", None], "item": ["x", "y", "z"]}).to_parquet(path)
    with pytest.raises(DataError, match=r"log\.parquet: line 4: empty user"):
        read_log(path, LogConfig())
    pd.DataFrame({"user": [1.0, 2.0, None], "item": [7, 8, 9]}).to_parquet(path)
    with pytest.raises(DataError, match=r"line 4: empty user"):
        read_log(path, LogConfig())
    pd.DataFrame({"user": [1.0, 2.0], "item": [7, 8]}).to_parquet(path)
    assert read_log(path, LogConfig())["user"].tolist() == ["1", "2"]  # not "1.0"
