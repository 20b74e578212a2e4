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
        # the hardening probe: each was a traceback or a late failure
        (["train", "--set", "model=5"], "expected a model name"),
        (["train", "--set", "train.lr=inf"], "train.lr: expected a finite number"),
        (["train", "--set", "model.reg_weight=nan"], "model.reg_weight: expected a finite"),
        (["train", "--set", "model.reg_weight=-1"], "model.reg_weight must be >= 0"),
        (["train", "--set", "train.time_budget_s=nan"], "train.time_budget_s: expected a finite"),
        (["train", "--set", "data.split_ratios=[nan, 0.1, 0.1]"], "split_ratios[0]: expected a"),
        (["train", "--model", "crane", "--set", "model.temperature=0"], "temperature must be > 0"),
        (["train", "--seed", "-1"], "seed must be an integer in [0, 2**32)"),
        (["train", "--seed", "100000000000000000000"], "seed must be an integer in [0, 2**32)"),
        (["train", "--seeds", "1", "1"], "seed(s) [1] more than once"),
        (["train", "--format", "synthetic", "--data", "/tmp"], "reads no files"),
        (["train", "--set", "train.lr"], "--set expects key=value"),
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
    starts = {line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")}
    assert {"pop", "bpr", "lightgcn"} <= starts
    assert "model.n_layers: int = 2" in out
    # every run's settings, and what a preset changes (not a copy of the defaults)
    assert "train.patience: int = 20" in out and "data.user_min: int = 4" in out
    assert "eval.protocol: 'mmrec' | 'strict' = 'mmrec'" in out
    assert "preset tiktok changes: model.rca_width=64, model.rca_keys=0" in out


def test_models_name_prints_the_whole_description(capsys):
    from cranerec.models import get_model_class

    assert main(["models", "crane"]) == 0
    out = capsys.readouterr().out
    last_doc_line = get_model_class("crane").__doc__.strip().splitlines()[-1].strip()
    assert last_doc_line in out and "bpr  (" not in out


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
    from cranerec.cli import _split_set_pairs, build_parser

    argv = ["train", "--set", "train.epochs=2", "--set", "model.n_layers=1", "train.lr=0.01"]
    args = build_parser().parse_args(_split_set_pairs(argv))
    assert args.set == ["train.epochs=2", "model.n_layers=1", "train.lr=0.01"]


def test_model_given_as_a_bare_name_in_a_config():
    from cranerec.train.config import resolve_config

    assert resolve_config({"model": "bpr"}).model_name == "bpr"


def test_a_yaml_preset_list_is_a_clear_error(tmp_path, capsys):
    # bug: `preset: [a]` was a TypeError (unhashable type: 'list')
    f = tmp_path / "c.yaml"
    f.write_text("preset: [a]\n")
    assert main(["train", "--config", str(f), "--out", str(tmp_path / "r")]) == 2
    assert "preset: expected one preset name" in capsys.readouterr().err


def test_broken_yaml_is_one_line_with_its_position(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("model: {name: [\n")
    assert main(["train", "--config", str(f), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid YAML (line 2, column 1)" in err


def test_serve_port_out_of_range_is_a_usage_error(capsys):
    # bug: OverflowError from bind() after loading the run
    with pytest.raises(SystemExit) as e:
        main(["serve", "/no/run", "--port", "99999"])
    assert e.value.code == 2 and "not a TCP port" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_and_v_shows_the_traceback(monkeypatch, capsys):
    import cranerec.cli.models as models_command

    def broken(args):
        raise TypeError("boom")

    monkeypatch.setattr(models_command, "_cmd_models", broken)
    assert main(["models"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: TypeError: boom" in err and "-v" in err
    assert main(["-v", "models"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_a_diverged_loss_is_one_line_and_keeps_the_last_good_epoch(tmp_path, capsys, monkeypatch):
    from cranerec.models.bpr import BPR

    real = BPR.loss

    def nan_after_epoch_1(self, batch):
        loss, parts = real(self, batch)
        return (loss * float("nan") if self.calls_ > 3 else loss), parts

    def counting(self, batch):
        self.calls_ = getattr(self, "calls_", 0) + 1
        return nan_after_epoch_1(self, batch)

    monkeypatch.setattr(BPR, "loss", counting)
    out = tmp_path / "r"
    args = ["train", "--model", "bpr", "--out", str(out), *FAST, "--set", "train.batch_size=2048"]
    args += ["data.synthetic_users=200", "data.synthetic_items=100"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the training loss became nan" in err and "lower train.lr" in err
    assert err.count("\n") == 1
    assert (out / "checkpoint.pt").exists() and not (out / "results.json").exists()


def test_progress_without_a_terminal_is_one_line_per_epoch(tmp_path, capsys):
    args = ["train", "--model", "bpr", "--out", str(tmp_path / "r"), "--set", "train.epochs=3"]
    assert main([*args, "train.patience=1", "data.synthetic_users=200"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "epoch" in ln]
    assert len(lines) >= 2 and lines[0].startswith("bpr on synthetic: epoch 1/")
    assert "recall@20" in lines[0] and "s eval" in lines[0]


def test_progress_within_min_epochs_says_when_a_best_starts_to_count(tmp_path, capsys):
    args = ["train", "--model", "bpr", "--out", str(tmp_path / "r"), "--set", "train.epochs=3"]
    assert main([*args, "train.min_epochs=2", "data.synthetic_users=200"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if " epoch " in ln]
    assert "no best before epoch 3: train.min_epochs=2" in lines[0] and "inf" not in lines[0]
    assert "(best 0." in lines[2] and "at epoch 3)" in lines[2]


def test_min_epochs_not_below_epochs_warns_that_the_last_epoch_is_kept(tmp_path, recwarn):
    args = ["train", "--model", "bpr", "--set", "train.epochs=2", "data.synthetic_users=200"]
    assert main([*args, "train.min_epochs=2", "--out", str(tmp_path / "a")]) == 0
    said = " ".join(str(w.message) for w in recwarn)
    assert "train.min_epochs=2 is not below train.epochs=2" in said and "last epoch" in said
    recwarn.clear()
    assert main([*args, "train.min_epochs=1", "--out", str(tmp_path / "b")]) == 0
    assert "is not below" not in " ".join(str(w.message) for w in recwarn)


def test_zero_epochs_says_the_initial_weights_are_kept(tmp_path, recwarn):
    args = ["train", "--model", "bpr", "--set", "train.epochs=0", "data.synthetic_users=200"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    said = " ".join(str(w.message) for w in recwarn)
    assert "train.epochs=0: no epoch is trained" in said and "min_epochs" not in said


def test_train_says_which_item_features_it_found_and_whether_the_model_uses_them(tmp_path, capsys):
    """Feature files beside the data are picked up without being asked for: the first line
    names them, so a user sees what a run trained on."""
    base = ["train", "--set", "train.epochs=1", "data.synthetic_users=200"]
    assert main([*base, "--model", "vbpr", "--out", str(tmp_path / "v")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("data: "))
    assert "synthetic, 200 users" in line and "image [" in line and "text [" in line
    assert line.endswith("(used by vbpr)")
    assert main([*base, "--model", "bpr", "--out", str(tmp_path / "b")]) == 0
    assert "(not used by bpr)" in capsys.readouterr().out
    assert main(["train", "--resume", str(tmp_path / "v")]) == 0  # and on --resume
    assert "(used by vbpr)" in capsys.readouterr().out


def test_epochs_flag_caps_the_run(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["train", "--model", "bpr", "--out", str(out), "--epochs", "2"]
    assert main([*args, "--set", "train.patience=50", "data.synthetic_users=200"]) == 0
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 2
    assert main(["train", "--resume", str(out), "--epochs", "3"]) == 0
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 3


def test_resume_can_extend_the_epochs_of_a_run_that_hit_its_cap(tmp_path, capsys):
    out = tmp_path / "r"
    base = ["train", "--model", "bpr", "--out", str(out), *FAST]
    assert main(base) == 0
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 2
    assert main(["train", "--resume", str(out), "--set", "train.epochs=4"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["epochs_run"] == 4
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]  # trained on, not from scratch
    assert main(["train", "--resume", str(out), "--set", "model.reg_weight=1"]) == 2
    assert "drop --set model.reg_weight" in capsys.readouterr().err


def test_threads_flag_sets_torch_threads_without_changing_the_run(tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--model", "bpr", "--out", str(out), *FAST, "--threads", "1"]) == 0
    assert json.loads((out / "results.json").read_text())["torch_threads"] == 1
    assert main(["train", "--resume", str(out), "--threads", "2"]) == 0  # no config clash


def test_default_threads_are_the_physical_cores():
    from cranerec.train.config import TrainConfig
    from cranerec.utils.env import usable_physical_cores

    assert TrainConfig().n_threads == usable_physical_cores() >= 1


def test_a_warning_is_printed_once_per_command():
    # in a fresh process: pytest's own warning capture would override the filter under test
    import subprocess
    import sys

    code = (
        "import warnings, cranerec.cli as cli, cranerec.cli.models as models_command\n"
        "def warns(args):\n"
        "    for _ in range(3): warnings.warn('the same thing', UserWarning, stacklevel=1)\n"
        "    return 0\n"
        "models_command._cmd_models = warns\n"
        "assert cli.main(['models']) == 0 and cli.main(['models']) == 0\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("the same thing") == 2  # once per command, two commands


def test_crane_at_its_defaults_on_real_data_says_what_they_are_and_where_the_papers_are(
    tmp_path, capsys
):
    # the defaults are the model validated on Amazon Sports with text, not the paper's Table 3:
    # a user who gives no preset is told so (not with a preset, nor for another model)
    from cranerec.data import make_synthetic
    from cranerec.data.mmrec import save_mmrec

    save_mmrec(make_synthetic(n_users=60, n_items=40, seed=1), tmp_path / "shop", "shop")
    (tmp_path / "shop" / "SYNTHETIC.txt").unlink()  # as a user's own folder
    base = [
        "train",
        "--data",
        str(tmp_path / "shop"),
        "--set",
        "train.epochs=1",
        "train.progress=false",
    ]
    crane = [*base, "model.knn_k=3", "--model", "crane"]
    assert main([*crane, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "note: CRANE's defaults are the sports_text preset's model" in err
    assert "baby, sports, clothing, electronics" in err and "--preset tiktok" in err
    for argv in ([*crane, "--preset", "tiktok"], [*base, "--model", "lightgcn"]):
        assert main([*argv, "--out", str(tmp_path / argv[-1])]) == 0
        assert "note:" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "encoding", "message"),
    [("train: [1, 2]\n", "utf-8", "train: expected a mapping of settings, got [1, 2]"),
     ("train: {epochs: 1}\n", "utf-16", "is not UTF-8 text; save it as UTF-8")],
)  # fmt: skip
def test_a_config_file_that_cannot_be_read_as_settings_is_one_line(
    tmp_path, capsys, text, encoding, message
):
    # Regression: a list under train: was replaced by --set's mapping without a word
    f = tmp_path / "c.yaml"
    f.write_text(text, encoding=encoding)
    argv = ["train", "--config", str(f), "--set", "train.epochs=1", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(f) in err
    assert not (tmp_path / "r").exists()


def test_an_empty_out_is_refused(tmp_path, capsys):
    assert main(["train", "--set", "train.epochs=1", "--out", " "]) == 2
    assert "--out is empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["experiment", "main", "--workers", "0"], ["serve", "/no/run", "--threads", "-1"]],
)
def test_counts_below_their_least_value_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "is not an integer >=" in err


def test_a_path_the_system_refuses_is_named_with_what_to_check(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    argv = ["train", "--set", "train.epochs=1", "data.synthetic_users=100"]
    assert main([*argv, "--out", str(tmp_path / "afile" / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Errno" not in err
    assert f"{tmp_path / 'afile'}" in err and "check the path and its permissions" in err
