"""The trainer's per-epoch callbacks (what a search reports and prunes on)."""

import pytest

from cranerec.train import build_config, train_run

FAST = [
    "train.epochs=4",
    "train.patience=4",
    "train.batch_size=256",
    "train.progress=false",
    "eval.ks=[10, 20]",
]


class StopError(Exception):
    pass


def test_callbacks_see_every_epoch_and_can_stop_after_its_checkpoint(tiny_data, tmp_path):
    seen = []
    full = train_run(
        build_config(model="bpr", overrides=FAST, seed=1),
        tmp_path / "a",
        tiny_data,
        callbacks=[seen.append],
    )
    assert [r["epoch"] for r in seen] == [1, 2, 3, 4]
    assert all("recall@20" in r["valid"] and "loss" in r for r in seen)

    def stop_at_two(record):
        if record["epoch"] == 2:
            raise StopError

    config = build_config(model="bpr", overrides=FAST, seed=1)
    with pytest.raises(StopError):
        train_run(config, tmp_path / "b", tiny_data, callbacks=[stop_at_two])
    assert (tmp_path / "b" / "checkpoint.pt").exists() and not (
        tmp_path / "b" / "results.json"
    ).exists()
    resumed = []  # a resumed run calls back for the epochs it trains, and ends as if never stopped
    res = train_run(config, tmp_path / "b", tiny_data, callbacks=[resumed.append])
    assert [r["epoch"] for r in resumed] == [3, 4]
    assert res["test"] == full["test"]
