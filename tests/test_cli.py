"""The command line: what a user types and what they see."""

import json

import pytest

from cranerec.cli import SYNTHETIC_BANNER, main

FAST = ["--set", "train.epochs=2", "train.progress=false"]


def test_train_on_default_data_says_it_is_synthetic_and_prints_metrics(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), *FAST]) == 0
    out = capsys.readouterr().out
    assert SYNTHETIC_BANNER in out
    assert "valid: recall@10" in out and "test:  recall@10" in out
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["model"] == "lightgcn" and res["dataset"] == "synthetic"
    assert (tmp_path / "r" / "training_curve.png").stat().st_size > 1000


def test_evaluate_prints_the_same_test_metrics(tmp_path, capsys):
    main(["train", "--model", "bpr", "--out", str(tmp_path / "r"), *FAST])
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"recall@20 {res['test']['recall@20']:.4f}" in out


def test_seeds_write_one_directory_each_and_a_summary(tmp_path, capsys):
    assert (
        main(["train", "--model", "bpr", "--seeds", "1", "2", "--out", str(tmp_path), *FAST]) == 0
    )
    assert (tmp_path / "seed-1" / "results.json").exists()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seeds"] == [1, 2] and "±" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--set", "train.lr=-1"], "lr must be > 0"),
        (["train", "--set", "trian.lr=1"], "valid top-level keys"),
        (["train", "--model", "nope"], "registered models"),
        (["train", "--data", "/no/such/dir"], "data path not found"),
        (["evaluate", "/no/such/run"], "not a run directory"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(argv, message, capsys, tmp_path):
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r" / "results.json").exists()


def test_models_lists_every_model_with_settings(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    starts = {line.split()[0] for line in out.splitlines() if not line.startswith(" ")}
    assert {"pop", "bpr", "lightgcn"} <= starts
    assert "model.n_layers: int = 2" in out


def test_resume_refuses_flags_that_would_be_ignored(tmp_path, capsys):
    main(["train", "--model", "bpr", "--out", str(tmp_path / "r"), *FAST])
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "r"), "--set", "train.lr=0.1"]) == 2
    assert "drop --set" in capsys.readouterr().err


def test_non_mapping_config_section_is_a_clear_error(capsys, tmp_path):
    assert main(["train", "--set", "train=5", "--out", str(tmp_path / "r")]) == 2
    assert "train: expected a mapping" in capsys.readouterr().err


def test_evaluate_says_synthetic(tmp_path, capsys):
    main(["train", "--model", "bpr", "--out", str(tmp_path / "r"), *FAST])
    capsys.readouterr()
    main(["evaluate", str(tmp_path / "r")])
    assert SYNTHETIC_BANNER in capsys.readouterr().out


def test_describe_takes_raw_column_names(tmp_path, capsys):
    rows = "\n".join(f"u{u},i{(u + j) % 7}" for u in range(6) for j in range(5))
    (tmp_path / "interactions.csv").write_text("uid,asin\n" + rows + "\n")
    assert main(["data", "describe", str(tmp_path), "--set", "user_col=uid", "item_col=asin"]) == 0
    assert "users        6" in capsys.readouterr().out


def test_written_results_are_readable_by_others(tmp_path):
    import os
    import stat

    main(["train", "--model", "pop", "--out", str(tmp_path / "r"), *FAST])
    mode = stat.S_IMODE(os.stat(tmp_path / "r" / "results.json").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_repeated_set_flags_accumulate():
    from cranerec.cli import build_parser

    args = build_parser().parse_args(
        ["train", "--set", "train.epochs=2", "--set", "model.n_layers=1", "train.lr=0.01"]
    )
    assert args.set == ["train.epochs=2", "model.n_layers=1", "train.lr=0.01"]


def test_model_given_as_a_bare_name_in_a_config():
    from cranerec.train.config import resolve_config

    assert resolve_config({"model": "bpr"}).model_name == "bpr"
