"""`cranerec data describe` and `cranerec data convert`, run in-process."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from cranerec.cli import SYNTHETIC_BANNER, main
from cranerec.data import load_dataset

from .builders import N_ITEMS, N_USERS, toy_rows, write_inter

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
