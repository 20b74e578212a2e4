"""A broken file in a run directory is a one-line error naming the file and what to do, never a
traceback, a crash or a wrong number (the hardening issue's probe found each case below)."""

import json
import shutil

import numpy as np
import pytest
import torch

from cranerec.cli import main
from cranerec.train import build_config, train_run
from cranerec.train.rundir import (
    RunFileError,
    clean_temp_files,
    load_checkpoint,
    read_embeddings,
    read_metrics,
    read_results,
)

FAST = ["train.epochs=2", "train.batch_size=256", "train.progress=false", "eval.ks=[10, 20]"]


SMALL = ["data.synthetic_users=120", "data.synthetic_items=80"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run on data its config can load again (evaluate, resume)."""
    out = tmp_path_factory.mktemp("rundir") / "run"
    train_run(build_config(model="lightgcn", overrides=FAST + SMALL, seed=1), out)
    return out


def copy_run(finished, tmp_path, unfinished=False):
    d = tmp_path / "run"
    shutil.copytree(finished, d)
    if unfinished:
        (d / "results.json").unlink()
    return d


# ------------------------------------------------------------------ results.json


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[1, 2]", "not a cranerec results file"),  # bug: TypeError in evaluate
        ('"x"', "not a cranerec results file"),  # bug: AttributeError in train
        ('{"test": 5, "valid": 3}', "no data_fingerprint"),  # bug: KeyError
        ('{"data_fingerprint": "f", "test": {"recall@20": NaN}}', "test.recall@20 is nan"),
        ('{"data_fingerprint": 7}', "data_fingerprint is 7"),
        ('{"model": "light', "unreadable results file"),
    ],
)
def test_results_file_of_the_wrong_shape_is_named(tmp_path, text, fragment):
    path = tmp_path / "results.json"
    path.write_text(text)
    with pytest.raises(RunFileError, match=fragment) as e:
        read_results(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("cmd", ["evaluate", "train"])
def test_commands_on_a_hand_edited_results_file_exit_2_with_one_line(
    finished, tmp_path, capsys, cmd
):
    d = copy_run(finished, tmp_path)
    (d / "results.json").write_text("[1, 2]")
    argv = ["evaluate", str(d)] if cmd == "evaluate" else ["train", "--resume", str(d)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "results.json" in err and "Traceback" not in err


# ------------------------------------------------------------------ checkpoint.pt


@pytest.mark.parametrize(
    "payload", [b"", b"this is not a checkpoint\n", "truncated", "foreign", "list"]
)
def test_a_broken_checkpoint_says_which_file_and_that_deleting_it_restarts(
    finished, tmp_path, capsys, payload
):
    d = copy_run(finished, tmp_path, unfinished=True)
    ckpt = d / "checkpoint.pt"
    if payload == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:5000])
    elif payload == "foreign":
        torch.save({"hello": 1}, ckpt)
    elif payload == "list":
        torch.save([1, 2, 3], ckpt)
    else:
        ckpt.write_bytes(payload)
    # bug: EOFError / UnpicklingError / KeyError / TypeError tracebacks
    assert main(["train", "--resume", str(d)]) == 2
    err = capsys.readouterr().err
    assert str(ckpt) in err and "to restart the run from epoch 0" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (d / "results.json").exists()  # nothing trained on top of a bad file


def test_a_checkpoint_of_another_model_does_not_fit(finished, tmp_path):
    # bug: BPR's tables have LightGCN's shapes, so its checkpoint resumed a LightGCN run silently
    other = tmp_path / "bpr"
    train_run(build_config(model="bpr", overrides=FAST + SMALL, seed=1), other)
    d = copy_run(finished, tmp_path, unfinished=True)
    shutil.copy(other / "checkpoint.pt", d / "checkpoint.pt")
    with pytest.raises(RunFileError, match="a checkpoint of a bpr run.*delete it"):
        train_run(build_config(model="lightgcn", overrides=FAST + SMALL, seed=1), d)


def test_load_checkpoint_reads_what_the_trainer_wrote(finished):
    ckpt = load_checkpoint(finished / "checkpoint.pt")
    assert ckpt["state"]["epoch"] == 2 and isinstance(ckpt["data_fingerprint"], str)


# ------------------------------------------------------------------ metrics.jsonl


def test_metrics_log_drops_a_line_cut_by_a_kill_but_refuses_a_foreign_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "lo')
    assert [r["epoch"] for r in read_metrics(path)] == [1]
    path.write_text('[1, 2]\n{"epoch": 1, "loss": 0.5}\n')
    with pytest.raises(RunFileError, match="line 1 is not an epoch record"):
        read_metrics(path)
    path.write_text('{"epoch": "a"}\n{"epoch": 1}\n')
    with pytest.raises(RunFileError, match="line 1"):
        read_metrics(path)


# ------------------------------------------------------------------ embeddings.npz


def _save_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p.write_bytes(b""), "unreadable"),  # bug: EOFError
        (lambda p: p.write_bytes(p.read_bytes()[:200]), "unreadable"),  # bug: BadZipFile
        (lambda p: _save_npz(p, user_emb=np.zeros((3, 4))), "missing item_emb"),  # bug: KeyError
        (lambda p: np.save(open(p, "wb"), np.zeros(3)), "a single array"),  # noqa: SIM115
        (
            lambda p: _save_npz(p, user_emb=np.zeros((3, 4)), item_emb=np.zeros((3, 5))),
            "not two tables of one width",
        ),
        (
            lambda p: _save_npz(p, user_emb=np.full((3, 4), 1e30), item_emb=np.full((3, 4), 1e30)),
            "scores overflow",  # bug: evaluate printed metrics of inf scores
        ),
        (
            lambda p: _save_npz(p, user_emb=np.full((3, 4), np.nan), item_emb=np.zeros((3, 4))),
            "NaN",
        ),
    ],
)
def test_broken_embeddings_are_named_not_evaluated(tmp_path, make, fragment):
    path = tmp_path / "embeddings.npz"
    _save_npz(path, user_emb=np.zeros((3, 4), np.float32), item_emb=np.zeros((3, 4), np.float32))
    make(path)
    with pytest.raises(RunFileError, match=fragment):
        read_embeddings(path)


def test_embeddings_of_other_data_are_refused(tmp_path):
    path = tmp_path / "embeddings.npz"
    _save_npz(path, user_emb=np.zeros((3, 4), np.float32), item_emb=np.zeros((5, 4), np.float32))
    with pytest.raises(RunFileError, match="3 users x 5 items; the data has 3 x 6"):
        read_embeddings(path, 3, 6)


def test_evaluate_on_truncated_embeddings_exits_2(finished, tmp_path, capsys):
    d = copy_run(finished, tmp_path)
    (d / "embeddings.npz").write_bytes((d / "embeddings.npz").read_bytes()[:2000])
    assert main(["evaluate", str(d)]) == 2
    err = capsys.readouterr().err
    assert "embeddings.npz" in err and "Traceback" not in err


# ------------------------------------------------------------------ the directory itself


def test_an_empty_config_is_not_read_as_the_default_run(finished, tmp_path, capsys):
    # bug: an empty config.yaml resolved to the default config, so a CRANE run would be served
    # and evaluated as LightGCN
    d = copy_run(finished, tmp_path)
    (d / "config.yaml").write_text("")
    assert main(["evaluate", str(d)]) == 2
    assert "does not name the run's model" in capsys.readouterr().err


def test_temp_files_left_by_a_killed_write_are_removed_on_start(tmp_path, tiny_data):
    d = tmp_path / "run"
    d.mkdir()
    left = d / ".checkpoint.pt.abc123.tmp"
    left.write_bytes(b"half a checkpoint")
    assert clean_temp_files(d) == [left] and not left.exists()
    (d / ".results.json.x.tmp").write_text("{")
    train_run(build_config(model="bpr", overrides=FAST, seed=1), d, tiny_data)
    assert not list(d.glob(".*.tmp"))


def test_the_curve_is_drawn_before_the_run_is_marked_finished(tmp_path, tiny_data, monkeypatch):
    # bug: a kill between results.json and the plot left a finished run without its curve
    import cranerec.train.run as run_module

    seen = []
    real = run_module.plot_training_curve

    def spy(metrics, out, *a, **k):
        seen.append((out.parent / "results.json").exists())
        return real(metrics, out, *a, **k)

    monkeypatch.setattr(run_module, "plot_training_curve", spy)
    train_run(build_config(model="bpr", overrides=FAST, seed=1), tmp_path / "r", tiny_data)
    assert seen == [False]
    assert json.loads((tmp_path / "r" / "results.json").read_text())["model"] == "bpr"


def test_a_run_stored_before_a_setting_existed_reads_as_it_ran_not_as_todays_default(tmp_path):
    # rca_keys came after early CRANE runs (they ran exact RCA, 0), and its default is now 2048:
    # an old config.yaml without the key must read as exact RCA, or serving the run would change
    import yaml

    from cranerec.train.run import read_run_config

    raw = build_config(model="crane").to_dict()
    for section, key in (("model", "rca_keys"), ("model", "cl_loss"), ("train", "min_epochs")):
        del raw[section][key]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    config = read_run_config(tmp_path)
    assert (config.model.rca_keys, config.model.cl_loss, config.train.min_epochs) == (
        0,
        "infonce",
        0,
    )
    assert build_config(model="crane").model.rca_keys == 2048  # a new run: today's default
    raw["model"]["rca_keys"] = 512  # a key that is stored wins
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    assert read_run_config(tmp_path).model.rca_keys == 512
