"""Training on a `full` build (`cranerec data build --split full`: no valid or test split): every
epoch runs and the last weights are kept, there being nothing to validate on."""

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from cranerec.cli import main

EPOCHS = 3


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A full build of a small log trained for EPOCHS epochs with patience 1; (run dir, stdout)."""
    tmp = tmp_path_factory.mktemp("full")
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}") for u in range(40) for i in rng.choice(30, 8, replace=False)]
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(tmp / "log.csv", index=False)
    with contextlib.redirect_stdout(io.StringIO()):
        args = [
            "data",
            "build",
            str(tmp / "log.csv"),
            "--out",
            str(tmp / "shop"),
            "--split",
            "full",
        ]
        assert main([*args, "--quiet"]) == 0
    stdout = io.StringIO()
    with pytest.warns(UserWarning), contextlib.redirect_stdout(stdout):  # the empty splits
        code = main(["train", "--data", str(tmp / "shop"), "--out", str(tmp / "run"), "--set",
                     f"train.epochs={EPOCHS}", "train.patience=1", "train.progress=false"])  # fmt: skip
    assert code == 0
    return tmp / "run", stdout.getvalue()


def test_every_epoch_runs_and_the_last_is_the_best(full_run):
    run_dir, _ = full_run
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["epochs_run"], results["best_epoch"]) == (EPOCHS, EPOCHS)
    assert results["n_eval_users"] == {"valid": 0, "test": 0}
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["valid"] for x in lines] == [{}] * EPOCHS


def test_the_output_says_there_are_no_valid_users(full_run):
    _, stdout = full_run
    assert f"best epoch {EPOCHS} of {EPOCHS}" in stdout
    assert "valid: no valid users" in stdout


def test_the_saved_model_has_the_last_epochs_weights(full_run):
    run_dir, _ = full_run
    saved = torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]
    last = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]  # after the last epoch
    assert saved.keys() == last.keys()
    for name, value in saved.items():
        torch.testing.assert_close(value, last[name], rtol=0, atol=0)


def test_the_training_curve_is_drawn(full_run):
    run_dir, _ = full_run
    assert (run_dir / "training_curve.png").stat().st_size > 0
