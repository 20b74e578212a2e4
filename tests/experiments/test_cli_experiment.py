"""`cranerec experiment` and `cranerec report` from the command line."""

import json
import re

import pytest
import yaml

from cranerec.cli import main

from .specs import tiny_spec


def test_experiment_status_then_run_then_report(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(models=["bpr"], seeds=[1], reference={})))
    store = tmp_path / "store"
    assert main(["experiment", str(spec), "--store", str(store), "--status"]) == 0
    out = capsys.readouterr().out
    assert "tiny: 1 runs" in out and "0/1 done" in out and "pending" in out
    assert not store.exists()  # --status writes nothing, not even an empty store
    assert main(["experiment", str(spec), "--store", str(store)]) == 0
    assert "done 1" in capsys.readouterr().out
    assert main(["experiment", str(spec), "--store", str(store), "--status"]) == 0
    assert "1/1 done" in capsys.readouterr().out
    assert main(["report", str(store)]) == 0
    assert (store / "report.md").exists() and "## tiny" in (store / "report.md").read_text()


def test_report_of_some_specs_of_a_shared_store(tmp_path, capsys):
    """One store holds several specs; `--specs` writes the report of the named ones only, and a
    name the store lacks is one error listing the specs it has (nothing written)."""
    store = tmp_path / "store"
    for name in ("first", "second"):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(
            yaml.safe_dump(tiny_spec(name=name, models=["pop"], seeds=[1], reference={}))
        )
        assert main(["experiment", str(spec), "--store", str(store)]) == 0
    capsys.readouterr()  # the runs' progress lines
    out = tmp_path / "docs" / "second.md"
    assert main(["report", str(store), "--specs", "second", "--out", str(out)]) == 0
    text = out.read_text()
    assert "## second" in text and "## first" not in text
    assert main(["report", str(store), "--specs", "thrid", "--out", str(tmp_path / "x.md")]) == 2
    err = capsys.readouterr().err
    assert "thrid" in err and "first, second" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.md").exists()


def test_a_bad_spec_is_an_error_naming_the_key(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(seedz=[1])))
    assert main(["experiment", str(spec), "--store", str(tmp_path / "s")]) == 2
    assert "seedz" in capsys.readouterr().err


def test_unknown_builtin_suite_lists_the_suites(tmp_path, capsys):
    assert main(["experiment", "mian", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "mian" in err and "main" in err and "ablation" in err


def test_adopt_takes_a_cranerec_train_run_into_the_store(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    raw = tiny_spec(models=["bpr"], seeds=[1], reference={})
    spec.write_text(yaml.safe_dump(raw))
    data = raw["datasets"]["synthetic"]
    sets = [f"data.{k}={v}" for k, v in data.items() if k != "path"]
    sets += [f"train.{k}={v}" for k, v in raw["base"]["train"].items()]
    run = tmp_path / "outside"
    assert main(["train", "--data", "synthetic", "--model", "bpr", "--out", str(run),
                 "--seeds", "1", "--set", *sets]) == 0  # fmt: skip
    capsys.readouterr()
    store = tmp_path / "store"
    args = ["experiment", str(spec), "--store", str(store), "--adopt", str(run / "seed-1")]
    assert main([*args, "--status"]) == 0
    out = capsys.readouterr().out
    assert "adopted as run" in out and "1/1 done" in out


def test_device_moves_every_run_without_changing_its_id(tmp_path, capsys):
    """A spec written for a GPU (train.device: cuda) runs here with --device cpu, under the ids
    the same spec written for the CPU gets: a store moves between machines."""
    gpu, cpu = tmp_path / "gpu.yaml", tmp_path / "cpu.yaml"
    raw = tiny_spec(models=["bpr"], seeds=[1], reference={})
    cpu.write_text(yaml.safe_dump(raw))
    raw["base"]["train"]["device"] = "cuda"
    gpu.write_text(yaml.safe_dump(raw))
    store = tmp_path / "store"
    assert main(["experiment", str(gpu), "--store", str(store), "--device", "cpu"]) == 0
    assert "done 1" in capsys.readouterr().out
    assert main(["experiment", str(cpu), "--store", str(store), "--status"]) == 0
    assert "1/1 done" in capsys.readouterr().out
    (run,) = (store / "runs").iterdir()
    assert json.loads((run / "results.json").read_text())["device"] == "cpu"


def test_an_absent_device_is_one_clear_error_before_any_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(models=["bpr"], seeds=[1], reference={})))
    store = tmp_path / "store"
    assert main(["experiment", str(spec), "--store", str(store), "--device", "cuda"]) == 2
    assert "'cuda' requested" in capsys.readouterr().err
    assert not (store / "runs").exists() or not any((store / "runs").iterdir())


def test_an_unknown_device_name_is_refused_by_name(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(models=["bpr"], seeds=[1], reference={})))
    assert main(["experiment", str(spec), "--store", str(tmp_path / "s"), "--device", "gpu"]) == 2
    assert "device must be cpu or cuda[:N], got 'gpu'" in capsys.readouterr().err


def test_models_and_seeds_pick_runs_of_a_spec(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec()))
    store = tmp_path / "store"
    argv = ["experiment", str(spec), "--store", str(store)]
    assert main([*argv, "--models", "lightgcn", "--seeds", "1"]) == 0
    assert "runs (selected) done 1," in capsys.readouterr().out
    assert main([*argv, "--status"]) == 0
    assert "1/4 done" in capsys.readouterr().out
    assert main([*argv, "--models", "bpx"]) == 2
    assert "--models bpx" in capsys.readouterr().err


@pytest.fixture
def two_cores(monkeypatch):
    """`--workers 2` starts two processes whatever cores the machine has (the runner gives at
    most one worker a core)."""
    monkeypatch.setattr("cranerec.experiments.workers.available_cores", lambda: 2)


def test_worker_processes_print_warnings_as_one_line_each(tmp_path, capfd, two_cores):
    """Two worker processes train the runs; a warning one of them raises (train.epochs=0) reads
    `warning: ...` on one line, as in the CLI's own process, not Python's form with the source
    file and line under it."""
    spec = tiny_spec(models=["bpr"], seeds=[1, 2], reference={})
    spec["base"]["train"]["epochs"] = 0
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    store = tmp_path / "store"
    assert main(["experiment", str(path), "--store", str(store), "--workers", "2"]) == 0
    err = capfd.readouterr().err
    lines = [x for x in err.splitlines() if "train.epochs=0" in x]
    assert lines and all(x.startswith("warning: train.epochs=0") for x in lines)
    assert ".py:" not in err and "UserWarning" not in err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_in_a_log_file_each_run_says_its_start_epochs_and_end(tmp_path, capfd, workers, two_cores):
    """Without a terminal (a log file) there is no bar: each run says when it starts, each
    epoch's validation score and how it ended, led by the spec's label for it, from this
    process or from the worker processes alike."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(models=["bpr"], seeds=[1, 2], reference={})))
    store = tmp_path / "store"
    assert main(["experiment", str(spec), "--store", str(store), "--workers", workers]) == 0
    err = capfd.readouterr().err
    for seed in (1, 2):
        lead = rf"^tiny: bpr( / \S+)? on synthetic, seed {seed}: "
        assert re.search(lead + r"started \(run [0-9a-f]{16}\)$", err, re.M), err
        epochs = re.findall(lead + r"epoch (\d) +valid recall@20 0\.\d{4}", err, re.M)
        assert [e[-1] for e in epochs] == ["1", "2"], err
        assert re.search(
            lead + r"done: best epoch \d of 2, valid recall@20 0\.\d{4}, test", err, re.M
        )
