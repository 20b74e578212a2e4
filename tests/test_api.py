"""The Python API (``cranerec.fit`` / ``cranerec.load`` / ``TrainedModel``): what a user relies
on, on small built-in synthetic data trained for two epochs."""

from __future__ import annotations

import gc
import json

import numpy as np
import pytest
import yaml

import cranerec
from cranerec.cli import main as cli_main
from cranerec.config import ConfigError
from cranerec.data import DataConfig, load_dataset
from cranerec.serve import UnknownIdError

DATA = {"synthetic_users": 120, "synthetic_items": 80}
TRAIN = {"epochs": 2, "progress": False, "threads": 1}
SETTINGS = {f"data__{k}": v for k, v in DATA.items()} | {f"train__{k}": v for k, v in TRAIN.items()}
#: results.json fields that measure the machine (time, memory, commit), not the run
MACHINE_FIELDS = {
    "epoch_seconds_mean", "epoch_seconds_median", "eval_seconds_mean", "peak_rss_mb", "git_sha",
}  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(**DATA))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return cranerec.fit(
        "synthetic", "lightgcn", out=tmp_path_factory.mktemp("api") / "run", **SETTINGS
    )


def _seen(data, user: str) -> set[str]:
    """Every item the user has in train, valid or test, as raw id strings."""
    u = data.user_ids.astype(str).tolist().index(user)
    row = (data.train + data.valid + data.test)[u]
    return set(data.item_ids[row.indices].astype(str).tolist())


def test_fit_writes_what_cranerec_train_writes(trained, tmp_path):
    out = tmp_path / "cli"
    sets = [f"{key.replace('__', '.')}={str(v).lower()}" for key, v in SETTINGS.items()]
    argv = ["train", "--data", "synthetic", "--model", "lightgcn", "--out", str(out)]
    assert cli_main([*argv, *(x for s in sets for x in ("--set", s))]) == 0
    cli = json.loads((out / "results.json").read_text())
    fitted = json.loads((trained.run_dir / "results.json").read_text())
    assert {k: v for k, v in cli.items() if k not in MACHINE_FIELDS} == {
        k: v for k, v in fitted.items() if k not in MACHINE_FIELDS
    }
    assert trained.results == fitted and fitted["test"]["recall@20"] > 0
    assert yaml.safe_load((out / "config.yaml").read_text()) == yaml.safe_load(
        (trained.run_dir / "config.yaml").read_text()
    )
    # the same fit again reports the finished run instead of training it a second time
    epochs = (trained.run_dir / "metrics.jsonl").read_text()
    again = cranerec.fit("synthetic", "lightgcn", out=trained.run_dir, **SETTINGS)
    assert again.results == trained.results
    assert (trained.run_dir / "metrics.jsonl").read_text() == epochs


def test_recommend_gives_k_unseen_items_per_user(trained, data):
    users = data.user_ids.astype(str).tolist()
    ids, scores = trained.recommend(users, k=10)
    assert ids.shape == scores.shape == (len(users), 10)
    assert (ids != "").all() and np.isfinite(scores).all()
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    for user, row in zip(users, ids, strict=True):
        assert len(set(row)) == 10 and not set(row) & _seen(data, user)
    one_ids, one_scores = trained.recommend(users[0], k=10)  # one user id: 1-D arrays
    assert one_ids.tolist() == ids[0].tolist() and np.array_equal(one_scores, scores[0])
    # more than a user has left: rows padded at the end with "" and -inf, one width for all
    ids, scores = trained.recommend(users, k=data.n_items + 5)
    assert ids.shape == (len(users), data.n_items)
    for user, row, score in zip(users, ids, scores, strict=True):
        n = data.n_items - len(_seen(data, user))
        assert (row[:n] != "").all() and np.isfinite(score[:n]).all()
        assert (row[n:] == "").all() and np.isneginf(score[n:]).all()


def test_unfiltered_recommend_keeps_seen_items(trained, data):
    users = data.user_ids.astype(str).tolist()
    everything, _ = trained.recommend(users, k=data.n_items, filter_already_liked_items=False)
    top, _ = trained.recommend(users, k=10, filter_already_liked_items=False)
    filtered, _ = trained.recommend(users, k=10)
    assert any(set(row) & _seen(data, u) for u, row in zip(users, top, strict=True))
    for user, full, row, kept in zip(users, everything, top, filtered, strict=True):
        assert row.tolist() == full[:10].tolist()
        seen = _seen(data, user)  # filtering is the same ranking with the user's items taken out
        assert kept.tolist() == [i for i in full if i not in seen][:10]


def test_user_items_are_left_out_too(trained):
    ranked, _ = trained.recommend("0", k=13)
    held = ranked[:3].tolist()
    ids, _ = trained.recommend("0", k=10, user_items=held)
    assert ids.tolist() == ranked[3:].tolist()
    batch, _ = trained.recommend(["0", "1"], k=10, user_items=[held, []])
    assert batch[0].tolist() == ranked[3:].tolist()
    assert batch[1].tolist() == trained.recommend("1", k=10)[0].tolist()


def test_save_and_load_give_the_same_recommendations(trained, data, tmp_path):
    saved = trained.save(tmp_path / "kept")
    assert {"config.yaml", "embeddings.npz", "seen.npz", "results.json"} <= {
        p.name for p in saved.iterdir()
    } and not (saved / ".lock").exists()
    loaded = cranerec.load(saved)
    users = data.user_ids.astype(str).tolist()
    for before, after in zip(trained.recommend(users), loaded.recommend(users), strict=True):
        assert np.array_equal(before, after)
    items = data.item_ids[:5].astype(str).tolist()
    assert np.array_equal(trained.similar_items(items)[0], loaded.similar_items(items)[0])
    assert loaded.results == trained.results
    with pytest.raises(FileExistsError, match="not an empty directory"):
        trained.save(saved)


def test_unknown_ids_are_named(trained):
    with pytest.raises(UnknownIdError, match="unknown user ids: 'nobody', 'ghost'"):
        trained.recommend(["0", "nobody", "ghost"])
    with pytest.raises(ValueError, match="unknown item id: 'no-such-item'"):
        trained.recommend("0", user_items=["no-such-item"])


def test_bad_settings_and_models_are_config_errors(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(
        ConfigError, match=r"unknown config key\(s\) train\.epoch; valid keys .*epochs"
    ):
        cranerec.fit("synthetic", out=out, **(SETTINGS | {"train__epoch": 2}))
    with pytest.raises(ConfigError, match="did you mean train__epochs"):
        cranerec.fit("synthetic", out=out, epochs=2)
    with pytest.raises(ConfigError, match="registered models: .*lightgcn"):
        cranerec.fit("synthetic", "lightgnc", out=out, **SETTINGS)
    assert not out.exists()  # a refused configuration claims no run directory


def test_fit_takes_a_loaded_dataset(data):
    trained = cranerec.fit(data, "bpr", **{f"train__{k}": v for k, v in TRAIN.items()})
    assert trained.results["data_fingerprint"] == data.fingerprint
    assert trained.results["model"] == "bpr"
    user = str(data.user_ids[0])
    ids, _ = trained.recommend(user, k=5)
    assert len(ids) == 5 and not set(ids.tolist()) & _seen(data, user)
    with pytest.raises(ConfigError, match="Dataset object already loaded"):
        cranerec.fit(data, "bpr", data__synthetic_users=50)
    run_dir = trained.run_dir  # fit(out=None): a temporary directory the object owns
    assert (run_dir / "results.json").exists()
    del trained
    gc.collect()
    assert not run_dir.exists()
