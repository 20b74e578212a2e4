"""The raw loader: CSV/Parquet log -> dedupe -> iterative k-core -> per-user 8:1:1 split, with
feature rows reordered to the item index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cranerec.data import DataConfig, DataError, detect_format, load_dataset, load_raw

from .builders import pairs_of, write_raw

# Random splits of a small log may leave an item only in valid/test; that warning is not the
# subject here (test_validation.py covers it).
pytestmark = pytest.mark.filterwarnings("ignore::cranerec.data.DataWarning")

# Interactions per user -> (train, valid, test) under the 8:1:1 split (valid/test: n/10 rounded,
# at least one each).
EXPECTED_SPLIT = {4: (2, 1, 1), 5: (3, 1, 1), 10: (8, 1, 1), 14: (12, 1, 1), 15: (11, 2, 2),
                  20: (16, 2, 2)}  # fmt: skip
# Raw item ids whose string order differs from their numeric order ("12" < "3").
ITEM_IDS = [str(k * k + 3) for k in range(40)]


def make_log(seed: int = 0) -> pd.DataFrame:
    """30 kept users (4..20 distinct items each), duplicate rows, and users k-core drops."""
    rng = np.random.default_rng(seed)
    rows = []
    for u, n in enumerate(list(EXPECTED_SPLIT) * 5):
        for item in rng.choice(ITEM_IDS, size=n, replace=False):
            rows.append((f"u{u:02d}", item, int(rng.integers(1, 6))))
    rows += rows[::17]  # exact duplicate rows
    rows += [("few", ITEM_IDS[0], 5), ("few", ITEM_IDS[1], 5), ("few", ITEM_IDS[2], 5)]
    # four rows but only three distinct items: dropped because duplicates are dropped first
    rows += [("dupes", ITEM_IDS[i], 5) for i in (0, 1, 1, 2)]
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def kept_pairs(log: pd.DataFrame) -> set[tuple[str, str]]:
    pairs = set(zip(log["user"], log["item"], strict=True))
    return {(u, i) for u, i in pairs if u not in ("few", "dupes")}


@pytest.fixture
def raw_dir(tmp_path):
    """interactions.csv + image/text features whose rows follow a shuffled item_ids.txt that also
    lists items nobody interacted with. Column 0 of each feature row is its raw item id."""
    rng = np.random.default_rng(1)
    feature_ids = list(rng.permutation(ITEM_IDS + ["5000", "5001", "5002"]))
    ids_col = np.array(feature_ids, dtype=np.float64)[:, None]
    image = np.hstack([ids_col, rng.normal(size=(len(feature_ids), 5))])
    text = np.hstack([-ids_col, rng.normal(size=(len(feature_ids), 2))])
    write_raw(tmp_path / "log", make_log(), {"image": image, "text": text}, feature_ids)
    return tmp_path / "log"


def interactions_of(ds) -> set[tuple[str, str]]:
    out = set()
    for split in ("train", "valid", "test"):
        out |= {(ds.user_ids[u], ds.item_ids[i]) for u, i in pairs_of(ds.split(split))}
    return out


def test_csv_loads_deduplicated_and_filtered(raw_dir):
    ds = load_dataset(path=str(raw_dir))
    assert detect_format(raw_dir) == "raw"
    assert ds.name == "log"
    assert ds.n_users == 30
    assert "few" not in ds.user_index and "dupes" not in ds.user_index
    expected = kept_pairs(make_log())
    assert interactions_of(ds) == expected
    assert sum(ds.split(s).nnz for s in ("train", "valid", "test")) == len(expected)
    # Items are those of the kept interactions only (not the extra feature rows).
    assert set(ds.item_ids.tolist()) == {i for _, i in expected}


def test_splits_are_disjoint(raw_dir):
    ds = load_dataset(path=str(raw_dir))
    train, valid, test = (pairs_of(ds.split(s)) for s in ("train", "valid", "test"))
    assert not (train & valid) and not (train & test) and not (valid & test)


def test_per_user_8_1_1_split_keeps_training_interactions(raw_dir):
    ds = load_dataset(path=str(raw_dir))
    counts = {s: np.diff(ds.split(s).indptr) for s in ("train", "valid", "test")}
    for u in range(ds.n_users):
        n = counts["train"][u] + counts["valid"][u] + counts["test"][u]
        assert (counts["train"][u], counts["valid"][u], counts["test"][u]) == EXPECTED_SPLIT[n]
    assert counts["train"].min() >= 1


def test_features_are_reordered_to_the_item_index(raw_dir):
    ds = load_dataset(path=str(raw_dir))
    assert ds.modalities == ["image", "text"]
    raw_ids = ds.item_ids.astype(np.float64)
    np.testing.assert_array_equal(ds.features["image"][:, 0], raw_ids)
    np.testing.assert_array_equal(ds.features["text"][:, 0], -raw_ids)
    assert ds.features["image"].shape == (ds.n_items, 6)
    assert ds.features["image"].dtype == np.float32


def test_item_ids_are_raw_ids_of_the_matrix_columns(raw_dir):
    ds = load_dataset(path=str(raw_dir))
    for raw in ("3", "12", "1524"):  # k = 0, 3, 39
        assert ds.item_ids[ds.item_index[raw]] == raw


def test_parquet_equals_csv(tmp_path, raw_dir):
    csv = load_dataset(path=str(raw_dir))
    pq_dir = tmp_path / "pq"
    feats = {m: np.load(raw_dir / f"{m}_feat.npy") for m in ("image", "text")}
    ids = (raw_dir / "item_ids.txt").read_text().split()
    write_raw(pq_dir, make_log(), feats, ids, fmt="parquet")
    pq = load_dataset(path=str(pq_dir))
    assert pq.fingerprint == csv.fingerprint


def test_parquet_with_integer_ids(tmp_path):
    log = make_log()
    log = log[~log["user"].isin(["few", "dupes"])]
    log = log.assign(user=log["user"].str[1:].astype(int), item=log["item"].astype(int))
    path = write_raw(tmp_path / "p", log, fmt="parquet")
    ds = load_dataset(path=str(path))  # the file itself, not its directory
    assert ds.n_users == 30
    assert interactions_of(ds) == {(f"{int(u[1:])}", i) for u, i in kept_pairs(make_log())}


def test_log_file_path_reads_features_beside_it(raw_dir):
    ds = load_dataset(path=str(raw_dir / "interactions.csv"))
    assert ds.modalities == ["image", "text"]
    assert ds.fingerprint == load_dataset(path=str(raw_dir)).fingerprint


def test_no_feature_files_means_no_modalities_and_no_item_id_file(tmp_path):
    write_raw(tmp_path / "bare", make_log())
    ds = load_dataset(path=str(tmp_path / "bare"))
    assert ds.modalities == []
    assert ds.n_users == 30


def test_custom_column_names_and_min_rating(tmp_path):
    log = make_log().rename(columns={"user": "uid", "item": "iid", "rating": "stars"})
    path = write_raw(tmp_path / "c", log)
    cfg = DataConfig(path=str(path), user_col="uid", item_col="iid", rating_col="stars",
                     min_rating=3, user_min=1)  # fmt: skip
    liked = log[log["stars"] >= 3]
    assert interactions_of(load_raw(cfg)) == set(zip(liked["uid"], liked["iid"], strict=True))


# ---------------------------------------------------------------------------- k-core


def kcore_log() -> pd.DataFrame:
    """B, C, D like items p q r s; A likes p q r and z, an item no one else likes."""
    rows = [(u, i) for u in "BCD" for i in "pqrs"] + [("A", i) for i in "pqrz"]
    return pd.DataFrame(rows, columns=["user", "item"])


def test_default_user_min_is_4_and_items_are_not_filtered(tmp_path):
    log = pd.concat([kcore_log(), pd.DataFrame({"user": ["E"] * 3, "item": ["p", "q", "r"]})])
    ds = load_dataset(path=str(write_raw(tmp_path / "k", log)))
    assert sorted(ds.user_ids.tolist()) == ["A", "B", "C", "D"]  # E has only 3
    assert "z" in ds.item_index  # item seen once is kept when item_min is 0


def test_kcore_is_iterated_until_stable(tmp_path):
    path = write_raw(tmp_path / "k", kcore_log())
    ds = load_raw(DataConfig(path=str(path), item_min=2))
    # Dropping z (1 interaction) leaves A with 3 < 4 interactions, so A goes too; one pass of
    # "users, then items" would have kept A with p, q, r.
    assert sorted(ds.user_ids.tolist()) == ["B", "C", "D"]
    assert sorted(ds.item_ids.tolist()) == ["p", "q", "r", "s"]
    assert interactions_of(ds) == {(u, i) for u in "BCD" for i in "pqrs"}


def test_kcore_removing_everything_is_an_error(tmp_path):
    path = write_raw(tmp_path / "k", kcore_log())
    with pytest.raises(DataError, match=r"interactions\.csv: no interactions left .*user_min=5"):
        load_raw(DataConfig(path=str(path), user_min=5))


# ---------------------------------------------------------------------------- split seeds


def test_split_seed_reproduces_and_changes_the_split(raw_dir):
    a = load_dataset(path=str(raw_dir), split_seed="1")
    b = load_dataset(path=str(raw_dir), split_seed="1")
    c = load_dataset(path=str(raw_dir), split_seed="2")
    assert a.fingerprint == b.fingerprint
    assert pairs_of(a.test) == pairs_of(b.test)
    assert pairs_of(a.test) != pairs_of(c.test)
    # Same interactions, same per-user counts: only which ones go where differs.
    assert interactions_of(a) == interactions_of(c)
    np.testing.assert_array_equal(np.diff(a.test.indptr), np.diff(c.test.indptr))


def test_paper1_split_seed_is_seed_9(raw_dir):
    paper1 = load_dataset(path=str(raw_dir), split_seed="paper1")
    nine = load_dataset(path=str(raw_dir), split_seed="9")
    default = load_dataset(path=str(raw_dir))
    assert paper1.fingerprint == nine.fingerprint == default.fingerprint
    assert load_dataset(path=str(raw_dir), split_seed="paper2").fingerprint != nine.fingerprint


# ---------------------------------------------------------------------------- errors


def test_item_without_feature_row(raw_dir):
    ids = (raw_dir / "item_ids.txt").read_text().split()
    ids[ids.index("12")] = "99999"  # item "12" has interactions but now no feature row
    (raw_dir / "item_ids.txt").write_text("\n".join(ids))
    with pytest.raises(DataError, match=r"interactions\.csv: \d+ interaction\(s\) name items with "
                       r"no feature row in .*item_ids\.txt \(first: '12'\)"):  # fmt: skip
        load_dataset(path=str(raw_dir))


def test_missing_item_id_file(raw_dir):
    (raw_dir / "item_ids.txt").unlink()
    with pytest.raises(DataError, match=r"missing file: .*item_ids\.txt"):
        load_dataset(path=str(raw_dir))


def test_item_id_file_length_differs_from_feature_rows(raw_dir):
    ids = (raw_dir / "item_ids.txt").read_text().split()
    (raw_dir / "item_ids.txt").write_text("\n".join(ids + ["7777"]))
    with pytest.raises(DataError, match=r"image_feat\.npy: modality 'image' has 43 rows"):
        load_dataset(path=str(raw_dir))


def test_repeated_item_id_in_item_id_file(raw_dir):
    ids = (raw_dir / "item_ids.txt").read_text().split()
    ids[-1] = ids[0]
    (raw_dir / "item_ids.txt").write_text("\n".join(ids))
    with pytest.raises(DataError, match=r"item_ids\.txt: item ids are not unique"):
        load_dataset(path=str(raw_dir))


def test_missing_column_names_file_and_column(tmp_path):
    path = write_raw(tmp_path / "r", make_log().rename(columns={"item": "product"}))
    with pytest.raises(DataError, match=r"interactions\.csv: missing column\(s\) \['item'\]"):
        load_dataset(path=str(path))


def test_non_numeric_rating_with_min_rating(tmp_path):
    log = make_log().astype({"rating": object})
    log.loc[3, "rating"] = "great"
    path = write_raw(tmp_path / "r", log)
    with pytest.raises(
        DataError, match=r"interactions\.csv: row 5: rating 'great' is not a number"
    ):
        load_raw(DataConfig(path=str(path), rating_col="rating", min_rating=3))


def test_directory_without_interaction_log(tmp_path):
    (tmp_path / "r").mkdir()
    with pytest.raises(DataError, match=r"missing file: .*interactions\.csv"):
        load_raw(DataConfig(path=str(tmp_path / "r")))


def test_na_and_nan_are_ids_like_any_other_not_empty_cells(tmp_path):
    # bug: pandas read "NA" and "nan" as missing values and the loader called them "empty"
    log = pd.DataFrame(
        {"user": ["NA", "NA", "nan", "nan", "u3", "u3"] * 2, "item": list("abcabcbcabca")}
    )
    d = write_raw(tmp_path / "raw", log)
    data = load_dataset(path=str(d), user_min=1, item_min=1)
    assert {"NA", "nan"} <= set(map(str, data.user_ids))
