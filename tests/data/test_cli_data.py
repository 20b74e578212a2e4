"""`cranerec data describe`, `cranerec data convert` and `cranerec data build`, run in-process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cranerec.cli import SYNTHETIC_BANNER, main
from cranerec.data import load_dataset

from .builders import N_ITEMS, N_USERS, pairs_of, toy_rows, write_inter, write_log

pytestmark = pytest.mark.filterwarnings("error::cranerec.data.DataWarning")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_describe_prints_counts_splits_sparsity_and_modalities(capsys, mmrec_dir):
    code, out, _ = run(capsys, "data", "describe", str(mmrec_dir))
    assert code == 0
    lines = out.splitlines()
    assert f"users        {N_USERS}" in lines
    assert f"items        {N_ITEMS}" in lines
    assert "interactions 20" in lines
    assert "sparsity     16.6667%" in lines  # 1 - 20 / (4 * 6)
    split_rows = {ln.split()[0]: ln.split()[1:] for ln in lines if ln.split()[:1] in (
        ["train"], ["valid"], ["test"])}  # fmt: skip
    assert split_rows["train"][:3] == ["12", "4", "6"]  # interactions, users, items
    assert split_rows["valid"][:3] == ["4", "4", "4"]
    assert split_rows["test"][:3] == ["4", "4", "4"]
    assert "modalities   image (8-d), text (5-d)" in lines
    assert SYNTHETIC_BANNER not in out
    fingerprint = load_dataset(path=str(mmrec_dir)).fingerprint
    assert f"fingerprint {fingerprint}" in out


def test_describe_without_modalities_says_none(capsys, tmp_path):
    write_inter(tmp_path / "plain", toy_rows())
    code, out, _ = run(capsys, "data", "describe", str(tmp_path / "plain"))
    assert code == 0
    assert "modalities   none" in out.splitlines()


def test_describe_json_parses(capsys, matrices_dir):
    code, out, _ = run(capsys, "data", "describe", str(matrices_dir), "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["users"], summary["items"], summary["interactions"]) == (N_USERS, N_ITEMS, 20)
    assert summary["modalities"] == {"audio": 3}
    assert summary["splits"]["test"]["interactions"] == 4
    assert summary["synthetic"] is False
    assert summary["sparsity"] == pytest.approx(1 - 20 / 24)


def test_describe_synthetic_shows_banner(capsys):
    code, out, _ = run(capsys, "data", "describe", "synthetic")
    assert code == 0
    assert out.splitlines()[0] == SYNTHETIC_BANNER
    assert "users        1,500" in out


def test_describe_bad_data_is_an_error_exit_not_a_traceback(capsys, mmrec_dir):
    (mmrec_dir / "image_feat.npy").write_bytes(b"junk")
    code, out, err = run(capsys, "data", "describe", str(mmrec_dir))
    assert code == 2
    assert err.startswith("cranerec: error:") and "image_feat.npy" in err
    assert out == ""


def test_convert_round_trip_matrices_mmrec_matrices(capsys, tmp_path, matrices_dir):
    mm, back = tmp_path / "as_mmrec", tmp_path / "back"
    code, out, _ = run(capsys, "data", "convert", str(matrices_dir), str(mm), "--to", "mmrec")
    assert code == 0 and "as mmrec" in out
    assert (mm / "mats.inter").is_file() and (mm / "audio_feat.npy").is_file()
    # MMRec would skip audio_feat.npy silently unless its dataset config names it
    assert "vision_feature_file: 'audio_feat.npy'" in out
    code, _, _ = run(capsys, "data", "convert", str(mm), str(back), "--to", "matrices")
    assert code == 0

    src, via, dst = (load_dataset(path=str(p)) for p in (matrices_dir, mm, back))
    for ds in (via, dst):
        for split in ("train", "valid", "test"):
            assert (ds.split(split) != src.split(split)).nnz == 0
            assert ds.split(split).shape == src.split(split).shape
        assert ds.features.keys() == src.features.keys()
        np.testing.assert_array_equal(ds.features["audio"], src.features["audio"])
    # The name may change, the content may not.
    assert via.fingerprint == dst.fingerprint == src.fingerprint


def test_convert_mmrec_with_name(capsys, tmp_path, mmrec_dir):
    out_dir = tmp_path / "renamed"
    args = ["data", "convert", str(mmrec_dir), str(out_dir), "--to", "mmrec", "--name", "baby"]
    code, _, _ = run(capsys, *args)
    assert code == 0
    ds = load_dataset(path=str(out_dir))
    assert ds.name == "baby"
    assert ds.fingerprint == load_dataset(path=str(mmrec_dir)).fingerprint


@pytest.mark.filterwarnings("ignore::cranerec.data.DataWarning")  # cold test items: a tiny log
@pytest.mark.parametrize("via", ["mmrec", "matrices"])
def test_convert_keeps_raw_ids(capsys, tmp_path, via):
    # bug: `data convert` wrote indices only, so a built folder's raw ids were lost on the way
    built = tmp_path / "shop"
    assert run(capsys, *build_args(tmp_path, built, "--split", "last", "--user-min", "3"))[0] == 0
    original = load_dataset(path=str(built))
    assert run(capsys, "data", "convert", str(built), str(tmp_path / via), "--to", via)[0] == 0
    again = load_dataset(path=str(tmp_path / via))
    assert again.user_ids.astype(str).tolist() == original.user_ids.astype(str).tolist()
    assert again.item_ids.astype(str).tolist() == original.item_ids.astype(str).tolist()
    assert (again.train != original.train).nnz == 0


@pytest.mark.parametrize("name", ["../../x", "a/b", ".."])
def test_convert_name_cannot_write_outside_the_target(capsys, tmp_path, mmrec_dir, name):
    # bug: --name ../../x wrote x.inter two folders above DST
    code, _, err = run(
        capsys, "data", "convert", str(mmrec_dir), str(tmp_path / "a" / "b" / "dst"),
        "--to", "mmrec", "--name", name,
    )  # fmt: skip
    assert code == 2 and "plain file name" in err
    assert [p for p in tmp_path.rglob("*.inter") if p.parent != mmrec_dir] == []


def test_set_does_not_swallow_the_positional_arguments_after_it(capsys, tmp_path, mmrec_dir):
    # bug: `--set k=v SRC DST` took SRC and DST as settings ("required: src, dst")
    out = tmp_path / "out"
    args = ["data", "convert", "--set", "split_seed=3", "user_min=1", str(mmrec_dir), str(out)]
    code, _, err = run(capsys, *args, "--to", "mmrec")
    assert code == 0, err
    assert load_dataset(path=str(out)).n_users == N_USERS


def test_convert_name_is_refused_where_it_would_be_ignored(capsys, tmp_path, mmrec_dir):
    code, _, err = run(
        capsys, "data", "convert", str(mmrec_dir), str(tmp_path / "m"), "--to", "matrices",
        "--name", "x",
    )  # fmt: skip
    assert code == 2 and "--name names the .inter file" in err and not (tmp_path / "m").exists()


def test_convert_requires_target_format(capsys, tmp_path, mmrec_dir):
    with pytest.raises(SystemExit):
        main(["data", "convert", str(mmrec_dir), str(tmp_path / "x")])
    assert "--to" in capsys.readouterr().err


def test_converted_synthetic_data_stays_marked_synthetic(tmp_path, capsys):
    from cranerec.cli import SYNTHETIC_BANNER, main
    from cranerec.data import load_dataset

    assert main(["data", "convert", "synthetic", str(tmp_path / "m"), "--to", "mmrec"]) == 0
    assert load_dataset(path=str(tmp_path / "m")).synthetic
    capsys.readouterr()
    main(["data", "describe", str(tmp_path / "m")])
    assert SYNTHETIC_BANNER in capsys.readouterr().out


def test_convert_to_mmrec_says_which_feature_files_mmrec_must_be_told_about(tmp_path):
    from cranerec.data.loaders import mmrec_feature_settings

    ds = load_dataset(path="synthetic", synthetic_users=60, synthetic_items=40)
    three = dataclasses.replace(
        ds, features={"audio": ds.features["image"], "image": ds.features["image"],
                      "text": ds.features["text"]},
    )  # fmt: skip
    assert mmrec_feature_settings(three) == [
        "vision_feature_file: 'image_feat.npy'",
        "text_feature_file: 'audio_feat.npy'",
        "# not read by MMRec (two feature files at most): text",
    ]


# ---------------------------------------------------------------------------- cranerec data build


def shop_log(path: Path) -> dict[str, str]:
    """A log of 12 users (4-8 items each, day k of January = their k-th item, rows shuffled), one
    later repeat of u1's first item, and a user "solo" with one item nobody else has. Returns each
    user's latest item (solo excluded)."""
    rng = np.random.default_rng(0)
    rows, latest = [], {}
    for u in range(1, 13):
        items = rng.choice(np.arange(1, 12), size=int(rng.integers(4, 9)), replace=False)
        rows += [(f"u{u}", f"i{i}", f"2021-01-{k + 1:02d}") for k, i in enumerate(items)]
        latest[f"u{u}"] = f"i{items[-1]}"
    rows.append(("u1", rows[0][1], "2023-06-30"))  # a repeat, later than any other row
    rows.append(("solo", "i-solo", "2021-01-15"))
    write_log(path, [rows[k] for k in rng.permutation(len(rows))])
    return latest


def build_args(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    log = tmp_path / "log.csv"
    if not log.exists():
        shop_log(log)
    return ["data", "build", str(log), "--out", str(out), "--time-col", "time", "--quiet", *extra]


@pytest.mark.filterwarnings("ignore::cranerec.data.DataWarning")  # cold test items: a tiny log
def test_build_writes_an_mmrec_folder_with_raw_ids(capsys, tmp_path):
    latest = shop_log(tmp_path / "log.csv")
    out = tmp_path / "shop"
    code, _, err = run(capsys, *build_args(tmp_path, out, "--split", "last", "--user-min", "3"))
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"shop.inter", "user_ids.txt", "item_ids.txt",
                                               "build.json"}  # fmt: skip
    ds = load_dataset(path=str(out))
    assert sorted(ds.user_ids.tolist()) == sorted(latest)
    test = {(ds.user_ids[u], ds.item_ids[i]) for u, i in pairs_of(ds.test)}
    assert test == set(latest.items())  # the last item, by date, the repeat not counted


def test_build_prints_what_it_dropped(capsys, tmp_path):
    out = tmp_path / "shop"
    code, stdout, _ = run(capsys, *build_args(tmp_path, out, "--user-min", "3"))
    assert code == 0
    lines = stdout.splitlines()
    assert "dropped 1 repeated (user, item) rows" in lines
    assert "k-core (user_min 3, item_min 0) dropped 1 users, 1 items, 1 interactions" in lines
    report = json.loads((out / "build.json").read_text())["report"]
    assert (report["dropped_duplicates"], report["kcore"]["users"]) == (1, 1)


def test_build_into_an_existing_empty_folder(capsys, tmp_path):
    out = tmp_path / "shop"
    out.mkdir()
    code, _, err = run(capsys, *build_args(tmp_path, out))
    assert code == 0, err
    assert (out / "shop.inter").is_file()


def test_build_refuses_a_folder_with_files_and_leaves_them_untouched(capsys, tmp_path):
    out = tmp_path / "shop"
    write_inter(out, toy_rows(), name="shop")
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, stdout, err = run(capsys, *build_args(tmp_path, out))
    assert code == 2
    assert "already exists and is not empty" in err and stdout == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_failed_build_leaves_no_folder_behind(capsys, tmp_path):
    items = tmp_path / "items.csv"
    write_log(items, [(f"i{i}", f"item {i}") for i in range(1, 11)], ("item", "title"))  # no i11
    out = tmp_path / "shop"
    args = build_args(tmp_path, out, "--items", str(items), "--text-cols", "title")
    code, _, err = run(capsys, *args)
    assert code == 2
    assert "i11" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.csv", "log.csv"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [(("--text-model", "not-a-model"), "--text-model not-a-model: no such directory"),
     (("--device", "cuda:7"), "--device: device 'cuda:7' requested but")],
)  # fmt: skip
def test_build_names_its_own_flag_for_a_bad_model_or_device(capsys, tmp_path, flags, message):
    items = tmp_path / "items.csv"
    write_log(items, [(f"i{i}", f"item {i}") for i in range(1, 12)], ("item", "title"))
    args = build_args(tmp_path, tmp_path / "shop", "--items", str(items), "--text-cols", "title")
    code, _, err = run(capsys, *args, "--user-min", "3", *flags)  # the k-core drops i-solo
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "shop").exists()


def test_the_built_folder_has_the_permissions_of_any_new_folder(capsys, tmp_path):
    (tmp_path / "plain").mkdir()
    assert run(capsys, *build_args(tmp_path, tmp_path / "shop"))[0] == 0
    assert (tmp_path / "shop").stat().st_mode == (tmp_path / "plain").stat().st_mode


@pytest.mark.filterwarnings("ignore::cranerec.data.DataWarning")
def test_build_with_text_features_then_train_and_recommend_raw_ids(capsys, tmp_path):
    from cranerec.features.text import load_text_model

    latest = shop_log(tmp_path / "log.csv")
    ids = [f"i{i}" for i in range(1, 12)] + ["i-solo", "i-unused"]
    titles = {i: f"{i}: a {['ball', 'racket', 'shoe', 'tent'][k % 4]} in size {k}"
              for k, i in enumerate(ids)}  # fmt: skip
    table = [(i, titles[i]) for i in np.random.default_rng(1).permutation(ids)]
    write_log(tmp_path / "items.csv", table, ("item", "title"))
    out = tmp_path / "shop"
    args = build_args(tmp_path, out, "--items", str(tmp_path / "items.csv"), "--text-cols",
                      "title", "--user-min", "3")  # fmt: skip
    code, _, err = run(capsys, *args)
    assert code == 0, err
    item_ids = (out / "item_ids.txt").read_text().split()
    assert sorted(item_ids) == sorted(ids[:11])  # solo's item went with the k-core
    feat = np.load(out / "text_feat.npy")
    expected = load_text_model().encode([titles[i] for i in item_ids], convert_to_numpy=True)
    np.testing.assert_allclose(feat, expected, atol=1e-4)  # row r is item_ids.txt's line r

    run_dir = tmp_path / "run"
    code, _, err = run(capsys, "train", "--data", str(out), "--set", "train.epochs=2",
                       "train.progress=false", "--out", str(run_dir))  # fmt: skip
    assert code == 0, err
    recs_file = tmp_path / "recs.csv"
    code, _, err = run(capsys, "recommend", str(run_dir), "--k", "3", "--out", str(recs_file),
                       "--quiet")  # fmt: skip
    assert code == 0, err
    recs = pd.read_csv(recs_file, dtype=str)
    assert set(recs["user_id"]) == set(latest)
    assert set(recs["item_id"]) <= set(ids[:11])


@pytest.mark.parametrize(
    ("flags", "message"),
    [(("--split", "last", "--ratios", "1", "1", "1"), "--ratios: --split last takes no ratios"),
     (("--split", "temporal", "--split-seed", "3"), "--split-seed: --split temporal is not random")],
)  # fmt: skip
def test_a_setting_the_split_would_ignore_is_one_line_not_silence(capsys, tmp_path, flags, message):
    code, stdout, err = run(capsys, *build_args(tmp_path, tmp_path / "shop", *flags))
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert stdout == "" and not (tmp_path / "shop").exists()


def test_build_into_a_file_says_it_is_a_file_and_keeps_it(capsys, tmp_path):
    out = tmp_path / "shop"
    out.write_text("mine")
    code, _, err = run(capsys, *build_args(tmp_path, out))
    assert code == 2 and "--out" in err and "is a file" in err
    assert out.read_text() == "mine"


def test_a_usage_error_is_one_line_naming_the_option_and_the_help(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(build_args(tmp_path, tmp_path / "shop", "--split", "bogus"))
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert (
        "argument --split: invalid choice: 'bogus'" in err and "cranerec data build --help" in err
    )
