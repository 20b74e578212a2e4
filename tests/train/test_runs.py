"""Training runs: seeded, early-stopped with the best weights restored, resumable after a kill,
and writing the run directory every later tool reads."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from cranerec.config import ConfigError
from cranerec.eval import Evaluator
from cranerec.train import build_config, evaluate_run, train_run, train_seeds

FAST = ["train.epochs=6", "train.batch_size=256", "train.progress=false", "eval.ks=[10, 20]"]


def _config(*extra, model="lightgcn", seed=1):
    return build_config(model=model, overrides=FAST + list(extra), seed=seed)


def test_same_seed_same_metrics_different_seed_different(tiny_data, tmp_path):
    a = train_run(_config(), tmp_path / "a", tiny_data)
    b = train_run(_config(), tmp_path / "b", tiny_data)
    c = train_run(_config(seed=2), tmp_path / "c", tiny_data)
    assert a["test"] == b["test"] and a["valid"] == b["valid"]
    assert a["test"] != c["test"]


def test_run_directory_contents(tiny_data, tmp_path):
    res = train_run(_config(model="bpr"), tmp_path / "r", tiny_data)
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {
        "config.yaml",
        "metrics.jsonl",
        "checkpoint.pt",
        "embeddings.npz",
        "results.json",
        "per_user.npz",
    } <= files
    keys = {
        "model",
        "dataset",
        "data_fingerprint",
        "seed",
        "best_epoch",
        "epochs_run",
        "valid",
        "test",
        "epoch_seconds_mean",
        "epoch_seconds_median",
        "eval_seconds_mean",
        "peak_rss_mb",
        "torch_threads",
        "git_sha",
        "cranerec_version",
    }
    assert keys <= set(res)
    assert res["data_fingerprint"] == tiny_data.fingerprint and res["synthetic_data"] is True
    assert {"recall@10", "recall@20", "ndcg@10", "ndcg@20"} <= set(res["test"])
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == list(range(1, res["epochs_run"] + 1))
    assert all("loss" in x and "epoch_seconds" in x and "valid" in x for x in lines)


def test_model_file_rebuilds_the_model_without_unpickling_code(tiny_data, tmp_path):
    from cranerec.models import get_model_class
    from cranerec.train import resolve_config

    train_run(_config(), tmp_path / "r", tiny_data)
    saved = torch.load(tmp_path / "r" / "model.pt", weights_only=True)
    cfg = resolve_config(saved["config"])
    model = get_model_class(saved["model_name"])(tiny_data, cfg.model)
    model.load_state_dict(saved["state_dict"])
    z = np.load(tmp_path / "r" / "embeddings.npz")
    user_emb, item_emb = model.export_embeddings()
    np.testing.assert_array_equal(user_emb.numpy(), z["user_emb"])
    np.testing.assert_array_equal(item_emb.numpy(), z["item_emb"])


def test_embeddings_reproduce_the_reported_metrics(tiny_data, tmp_path):
    res = train_run(_config(), tmp_path / "r", tiny_data)
    z = np.load(tmp_path / "r" / "embeddings.npz")
    assert z["user_emb"].dtype == np.float32 and z["user_emb"].shape[0] == tiny_data.n_users
    assert z["item_emb"].shape[0] == tiny_data.n_items and len(z["item_ids"]) == tiny_data.n_items
    ev = Evaluator(tiny_data, _config().eval)
    got = ev.evaluate(
        torch.from_numpy(z["user_emb"]), torch.from_numpy(z["item_emb"]), "test"
    ).metrics
    assert got == pytest.approx(res["test"], abs=1e-7)


def test_best_epoch_weights_are_restored(tiny_data, tmp_path):
    res = train_run(
        _config("train.epochs=30", "train.patience=3", "train.lr=0.05"), tmp_path / "r", tiny_data
    )
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    best = max(lines, key=lambda x: x["valid"]["recall@20"])
    assert res["best_epoch"] == best["epoch"]
    assert res["valid"]["recall@20"] == pytest.approx(best["valid"]["recall@20"], abs=1e-9)
    if res["stop_reason"] == "early stopping":
        assert res["epochs_run"] == res["best_epoch"] + 3


def test_min_epochs_keeps_early_snapshots_out_of_the_choice(tiny_data, tmp_path):
    # a high learning rate peaks early; with min_epochs=5 no epoch up to 5 may be the best, and
    # early stopping cannot stop the run before 5 + patience epochs
    res = train_run(
        _config("train.epochs=30", "train.patience=2", "train.lr=0.05", "train.min_epochs=5"),
        tmp_path / "r", tiny_data,
    )  # fmt: skip
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    after = [x for x in lines if x["epoch"] > 5]
    best = max(after, key=lambda x: x["valid"]["recall@20"])
    assert res["best_epoch"] == best["epoch"] > 5
    assert res["valid"]["recall@20"] == pytest.approx(best["valid"]["recall@20"], abs=1e-9)
    assert res["epochs_run"] >= 5 + 2
    if res["stop_reason"] == "early stopping":
        assert res["epochs_run"] == res["best_epoch"] + 2


def test_time_budget_stops_training(tiny_data, tmp_path):
    res = train_run(
        _config("train.epochs=1000", "train.time_budget_s=0.0001"), tmp_path / "r", tiny_data
    )
    assert res["stop_reason"] == "time budget" and res["epochs_run"] == 1


def test_finished_run_is_reported_not_retrained(tiny_data, tmp_path):
    first = train_run(_config(), tmp_path / "r", tiny_data)
    mtime = (tmp_path / "r" / "results.json").stat().st_mtime_ns
    assert train_run(_config(), tmp_path / "r", tiny_data) == first
    assert (tmp_path / "r" / "results.json").stat().st_mtime_ns == mtime


def test_finished_run_on_changed_data_is_refused_not_reported(tiny_data, tmp_path):
    """Regression: rerunning `cranerec train --out DIR` after the data changed printed the old
    metrics with no warning."""
    from cranerec.data import Dataset

    train_run(_config(), tmp_path / "r", tiny_data)
    changed = tiny_data.train.tolil()
    changed[0, :] = 0
    other = Dataset(
        tiny_data.name, changed.tocsr(), tiny_data.valid, tiny_data.test, tiny_data.user_ids,
        tiny_data.item_ids, tiny_data.features,
    )  # fmt: skip
    with pytest.raises(ConfigError, match=rf"{tiny_data.fingerprint}.*{other.fingerprint}"):
        train_run(_config(), tmp_path / "r", other)


def test_different_config_in_same_directory_is_refused(tiny_data, tmp_path):
    train_run(_config(), tmp_path / "r", tiny_data)
    with pytest.raises(ConfigError, match=r"train\.lr"):
        train_run(_config("train.lr=0.01"), tmp_path / "r", tiny_data)


def test_multi_seed_summary(tiny_data, tmp_path):
    summary = train_seeds(_config("train.epochs=2"), [1, 2], tmp_path / "s", tiny_data)
    assert (tmp_path / "s" / "seed-1" / "results.json").exists()
    assert (tmp_path / "s" / "seed-2" / "results.json").exists()
    r1 = json.loads((tmp_path / "s" / "seed-1" / "results.json").read_text())
    r2 = json.loads((tmp_path / "s" / "seed-2" / "results.json").read_text())
    stat = summary["test"]["recall@20"]
    assert stat["mean"] == pytest.approx((r1["test"]["recall@20"] + r2["test"]["recall@20"]) / 2)
    assert stat["std"] == pytest.approx(
        np.std([r1["test"]["recall@20"], r2["test"]["recall@20"]], ddof=1)
    )
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["seeds"] == [1, 2]


def test_pop_is_not_trained(tiny_data, tmp_path):
    res = train_run(_config(model="pop"), tmp_path / "p", tiny_data)
    assert res["epochs_run"] == 0 and res["test"]["recall@20"] > 0


def test_rerunning_an_interrupted_run_resumes_it(tiny_data, tmp_path, monkeypatch):
    """An exception mid-training (Ctrl-C, OOM) leaves a checkpoint; the same call resumes."""
    from cranerec.train.trainer import Trainer

    cfg = _config("train.epochs=8", "train.patience=100")
    straight = train_run(cfg, tmp_path / "straight", tiny_data)
    original = Trainer.save_checkpoint

    def interrupt_after_epoch_3(self):
        original(self)
        if self.state.epoch == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_checkpoint", interrupt_after_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, tmp_path / "r", tiny_data)
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    assert not (tmp_path / "r" / "results.json").exists()
    resumed = train_run(cfg, tmp_path / "r", tiny_data)
    assert resumed["test"] == straight["test"] and resumed["epochs_run"] == 8


def test_evaluate_run_matches_results(tmp_path):
    out = tmp_path / "r"
    cfg = build_config(overrides=FAST + ["train.epochs=2"])
    res = train_run(cfg, out)
    assert evaluate_run(out, "test") == pytest.approx(res["test"], abs=1e-7)


CMD = [
    sys.executable,
    "-m",
    "cranerec.cli",
    "train",
    "--model",
    "lightgcn",
    "--seed",
    "4",
    "--set",
    "train.epochs=25",
    "train.patience=100",
    "train.batch_size=512",
    "train.threads=1",
]


def _run(out):
    return subprocess.run(CMD + ["--out", str(out)], capture_output=True, text=True, timeout=300)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    """Kill a training subprocess mid-run (SIGKILL), rerun the same command: the resumed run
    ends with exactly the metrics of an uninterrupted run."""
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        CMD + ["--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    metrics = killed / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        if proc.poll() is not None:
            pytest.fail("training finished before it could be killed")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists(), "killed too late"
    done_before = len(metrics.read_text().splitlines())
    assert done_before < 25

    resumed = subprocess.run(
        [sys.executable, "-m", "cranerec.cli", "train", "--resume", str(killed)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    straight = _run(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    a = json.loads((killed / "results.json").read_text())
    b = json.loads((tmp_path / "straight" / "results.json").read_text())
    assert a["epochs_run"] == b["epochs_run"] == 25
    assert a["valid"] == b["valid"] and a["test"] == b["test"]
    epochs = [json.loads(x)["epoch"] for x in metrics.read_text().splitlines()]
    assert epochs == list(range(1, 26))


def test_learning_rate_decays_per_epoch_as_configured(tiny_data, tmp_path, monkeypatch):
    from cranerec.train.trainer import Trainer

    seen = []
    original = Trainer._train_epoch

    def record(self, epoch):
        out = original(self, epoch)
        seen.append(self.optimizer.param_groups[0]["lr"])
        return out

    monkeypatch.setattr(Trainer, "_train_epoch", record)
    train_run(
        _config("train.epochs=3", "train.lr_decay=0.5", "train.lr_decay_every=2"),
        tmp_path / "r",
        tiny_data,
    )
    assert seen == pytest.approx([1e-3, 1e-3 * 0.5**0.5, 1e-3 * 0.5])


def test_kill_before_the_first_checkpoint_leaves_no_duplicate_epoch_line(
    tiny_data, tmp_path, monkeypatch
):
    from cranerec.train.trainer import Trainer

    original = Trainer.save_checkpoint

    def die(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_checkpoint", die)
    with pytest.raises(KeyboardInterrupt):
        train_run(_config("train.epochs=3"), tmp_path / "r", tiny_data)
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    train_run(_config("train.epochs=3"), tmp_path / "r", tiny_data)
    epochs = [
        json.loads(x)["epoch"] for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    ]
    assert epochs == [1, 2, 3]


def test_failed_start_does_not_claim_the_directory(tmp_path):
    bad = build_config(overrides=FAST + ["data.modalities=[nope]"])
    with pytest.raises(Exception, match="nope"):
        train_run(bad, tmp_path / "r")
    assert not (tmp_path / "r" / "config.yaml").exists()
    train_run(_config(), tmp_path / "r")  # a corrected command is accepted


def test_second_process_on_a_run_directory_is_refused_with_the_holders_pid(tmp_path):
    """Regression: two `cranerec train` with the same --out both trained and wrote every epoch
    twice into metrics.jsonl. The run directory is locked for the life of a run."""
    from cranerec.train.rundir import LOCK_FILE
    from cranerec.utils.io import exclusive_lock

    out = tmp_path / "r"
    out.mkdir()
    with exclusive_lock(out / LOCK_FILE, "test"):  # this process plays the first trainer
        proc = _run(out)
    assert proc.returncode == 2
    assert f"pid {os.getpid()}" in proc.stderr and str(out) in proc.stderr
    assert not (out / "metrics.jsonl").exists()
    assert not (out / "config.yaml").exists()


def test_seeds_are_not_written_into_a_run_directory(tiny_data, tmp_path):
    train_run(_config("train.epochs=1"), tmp_path / "r", tiny_data)
    before = sorted(p.name for p in (tmp_path / "r").iterdir())
    with pytest.raises(ConfigError, match="holds a training run"):
        train_seeds(_config("train.epochs=1"), [1, 2], tmp_path / "r", tiny_data)
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == before
