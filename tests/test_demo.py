"""`make demo` (`cranerec demo`): CRANE trained on the synthetic data, served, asked once."""

import numpy as np

import cranerec.demo as demo
from cranerec.cli import SYNTHETIC_BANNER, main
from cranerec.data import load_dataset


def test_demo_trains_crane_serves_it_and_shows_one_users_top_10(tmp_path, capsys, monkeypatch):
    small = ["train.epochs=2", "train.threads=1", "train.progress=false"]
    small += ["data.synthetic_users=120", "data.synthetic_items=80"]
    monkeypatch.setattr(demo, "DEMO_SETTINGS", small)
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert SYNTHETIC_BANNER in out and "training CRANE" in out
    assert "POST /v1/recommend" in out and "training_curve.png" in out
    assert (tmp_path / "crane" / "training_curve.png").stat().st_size > 1000
    # the answer came over HTTP from the trained run: 10 items the user does not have yet
    items = [int(line.split()[1]) for line in out.splitlines() if line.strip().startswith("item ")]
    assert len(items) == 10 and len(set(items)) == 10
    data = load_dataset(path="synthetic", synthetic_users=120, synthetic_items=80)
    had = (data.train + data.valid + data.test).tocsr()[0].indices
    assert not np.isin(items, had).any()
