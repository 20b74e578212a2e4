"""Typed configs: unknown keys and bad values fail with messages listing what is valid."""

import pytest

from cranerec.config import ConfigError, parse_overrides
from cranerec.train import build_config, resolve_config


def test_defaults_are_the_mmrec_reference_settings():
    cfg = build_config()
    assert cfg.model_name == "lightgcn"
    assert (cfg.seed, cfg.model.embedding_dim, cfg.model.n_layers, cfg.model.reg_weight) == (
        999,
        64,
        2,
        1e-4,
    )
    t = cfg.train
    assert (t.batch_size, t.lr, t.epochs, t.patience, t.stop_metric) == (
        2048,
        1e-3,
        1000,
        20,
        "recall@20",
    )


def test_set_overrides_are_typed():
    cfg = build_config(overrides=["train.lr=5e-4", "model.n_layers=3", "eval.ks=[5, 20]"])
    assert cfg.train.lr == 5e-4 and cfg.model.n_layers == 3 and cfg.eval.ks == [5, 20]


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"train\.learning_rate.*valid keys.*\blr\b"):
        build_config(overrides=["train.learning_rate=0.1"])


def test_unknown_model_key_lists_model_settings():
    with pytest.raises(ConfigError, match=r"model\.layers.*n_layers"):
        build_config(model="lightgcn", overrides=["model.layers=3"])


def test_bad_value_names_key():
    with pytest.raises(ConfigError, match=r"train\.batch_size.*integer"):
        build_config(overrides=["train.batch_size=big"])
    with pytest.raises(ConfigError, match="lr must be > 0"):
        build_config(overrides=["train.lr=-1"])


def test_unknown_model_and_preset():
    with pytest.raises(ConfigError, match="registered models: .*lightgcn"):
        build_config(model="nope")
    with pytest.raises(ConfigError, match="no preset 'nope'"):
        build_config(model="bpr", preset="nope")


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="valid top-level keys"):
        resolve_config({"trian": {}})


def test_yaml_file_and_flags_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: {name: bpr, embedding_dim: 32}\nseed: 5\ntrain: {lr: 0.01}\n")
    cfg = build_config(config_file=str(f), overrides=["train.lr=0.02"], seed=7)
    assert cfg.model_name == "bpr" and cfg.model.embedding_dim == 32
    assert cfg.train.lr == 0.02 and cfg.seed == 7


def test_config_round_trips_through_dict():
    cfg = build_config(model="bpr", overrides=["train.batch_size=512"])
    assert resolve_config(cfg.to_dict()).to_dict() == cfg.to_dict()


def test_parse_overrides_rejects_missing_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["train.lr"])


def test_stop_metric_must_be_computed():
    with pytest.raises(ConfigError, match="stop_metric 'recall@20' is not computed"):
        build_config(overrides=["eval.ks=[10]"])


def test_data_path_is_stored_absolute_and_compared_by_target(tmp_path, monkeypatch):
    from cranerec.train.config import config_differences

    (tmp_path / "d").mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = build_config(data="d")
    assert cfg.data.path == str((tmp_path / "d").resolve())
    rel = cfg.to_dict()
    rel["data"]["path"] = "d"
    assert config_differences(rel, cfg.to_dict()) == []
    assert config_differences(rel, build_config(overrides=["train.lr=0.1"]).to_dict())


def test_a_config_is_checked_when_built_and_cannot_change_in_place():
    # no invalid settings object exists: built from a dict or directly, it is checked at once
    import dataclasses

    from cranerec.models.camgr import CAmgrConfig
    from cranerec.models.crane import CRANEConfig
    from cranerec.train.config import TrainConfig

    with pytest.raises(ConfigError, match="profile 'maximum' is not one of"):
        CRANEConfig(profile="maximum")
    with pytest.raises(ConfigError, match="gat_activation 'gelu' is not one of"):
        CAmgrConfig(gat_activation="gelu")
    with pytest.raises(ConfigError, match="negative_pool 'some' is not one of"):
        TrainConfig(negative_pool="some")
    with pytest.raises(ConfigError, match="reg_weight must be >= 0"):
        CRANEConfig(reg_weight=-1.0)
    config = build_config(model="crane")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.model.knn_k = 3
    changed = dataclasses.replace(config.model, knn_k=3)
    assert (changed.knn_k, config.model.knn_k) == (3, 10)
    with pytest.raises(ConfigError, match="knn_k must be >= 0"):
        dataclasses.replace(config.model, knn_k=-3)


def test_speed_only_settings_may_change_on_resume():
    from cranerec.train.config import config_differences

    a = build_config(model="crane").to_dict()
    b = build_config(model="crane", overrides=["model.rca_block_size=512"]).to_dict()
    c = build_config(model="crane", overrides=["model.rca_rounds=2"]).to_dict()
    assert a["model"]["rca_block_size"] != b["model"]["rca_block_size"]
    assert config_differences(a, b) == []
    assert config_differences(a, c) == ["model.rca_rounds"]


@pytest.mark.parametrize(
    "override", ["train.min_epochs=-1", "model.cl_warmup_epochs=-2", "model.cl_ramp_epochs=-1"]
)
def test_a_negative_epoch_count_is_refused_by_name(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[1] + " must be >= 0"):
        build_config(model="crane", overrides=[override])
