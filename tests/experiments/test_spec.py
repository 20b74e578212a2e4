"""Specs: validated on load with errors that name the bad key; runs resolved in a fixed order;
run ids that change exactly when the results could; the built-in suites load and state caps."""

import dataclasses

import pytest

from cranerec.config import ConfigError
from cranerec.experiments.spec import (
    builtin_suites,
    expand_env,
    load_spec,
    parse_spec,
    run_id,
    runs_of,
)
from cranerec.models import MODELS

from .specs import tiny_spec


def test_runs_are_datasets_x_models_x_settings_x_seeds_in_order():
    spec = parse_spec(
        tiny_spec(settings=[{"name": "a"}, {"name": "b", "overrides": {"train": {"lr": 0.01}}}])
    )
    runs = runs_of(spec)
    assert [(r.model, r.setting, r.seed) for r in runs] == [
        (m, s, seed) for m in ("bpr", "lightgcn") for s in ("a", "b") for seed in (1, 2)
    ]
    assert [r.position for r in runs] == list(range(8))
    b = next(r for r in runs if r.setting == "b")
    assert b.config.train.lr == 0.01 and b.config.train.epochs == 2 and b.config.seed == b.seed


def test_precedence_preset_base_model_setting():
    spec = parse_spec(tiny_spec(
        models=[{"name": "crane", "preset": {"synthetic": "baby"}, "overrides": {"model": {"knn_k": 7}}}],
        settings=[{"name": "s", "overrides": {"model": {"rca_rounds": 1}}}],
        base={"train": {"epochs": 2, "threads": 1}, "model": {"knn_k": 5}}, reference={},
    ))  # fmt: skip
    config = runs_of(spec)[0].config
    assert config.model.cl_weight == 0.8  # from the baby preset (Table 3)
    assert config.train.epochs == 2  # base over the preset's 250
    assert config.model.knn_k == 7  # the model's overrides over base
    assert config.model.rca_rounds == 1  # the setting's over everything


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"modles": ["bpr"]}, "modles"),
        ({"models": [{"name": "bpr", "lr": 0.1}]}, "models[0].lr"),
        ({"models": ["lightgcm"]}, "lightgcm"),
        (
            {"datasets": {"synthetic": {"path": "synthetic", "synthetic_user": 5}}},
            "datasets.synthetic.synthetic_user",
        ),
        ({"settings": [{"name": "bad", "overrides": {"train": {"lrr": 1}}}]}, "train.lrr"),
        ({"settings": [{"name": "a"}, {"name": "a"}]}, "settings"),
        ({"reference": {"model": "mf"}}, "reference.model"),
        ({"report": [{"kind": "pie"}]}, "kind"),
        ({"report": [{"kind": "table", "metrics": ["foo@20"]}]}, "report[0].metrics: 'foo@20'"),
        ({"report": [{"kind": "table", "metrics": ["recall@7"]}]}, "does not compute recall@7"),
        ({"settings": [{"label": "base"}]}, "settings[0]: missing key"),
        ({"datasets": {"tiktok": {"format": "mmrec"}}}, "datasets.tiktok: no path"),
        (
            {"search": {"model": "bpr", "dataset": "synthetic", "space": {"train.lr": {"low": 1}}}},
            "search.space.train.lr",
        ),
    ],
)
def test_errors_name_the_bad_key(change, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(tiny_spec(**change))


def test_a_list_where_a_setting_takes_one_value_is_refused():
    """Sweeps are named settings, never list-valued config keys."""
    with pytest.raises(ConfigError, match="train.lr"):
        parse_spec(tiny_spec(base={"train": {"lr": [1e-3, 1e-4]}}))


def test_the_bad_run_is_named():
    with pytest.raises(ConfigError, match=r"run bpr / bad on synthetic, seed 1: .*train\.lrr"):
        parse_spec(tiny_spec(settings=[{"name": "bad", "overrides": {"train": {"lrr": 1}}}]))


def test_run_id_changes_exactly_when_results_could():
    config = runs_of(parse_spec(tiny_spec()))[0].config
    rid = run_id(config, "fp", "1.0")
    same = runs_of(
        parse_spec(
            tiny_spec(
                base={
                    "train": {
                        "epochs": 2,
                        "patience": 2,
                        "batch_size": 256,
                        "threads": 2,
                        "progress": True,
                    }
                }
            )
        )
    )[0].config
    assert run_id(same, "fp", "1.0") == rid  # threads, progress bars do not change results
    moved = runs_of(parse_spec(tiny_spec()))[0].config
    # the data's content is in the fingerprint, not its path
    moved = dataclasses.replace(moved, data=dataclasses.replace(moved.data, path="/elsewhere"))
    assert run_id(moved, "fp", "1.0") == rid
    lr = runs_of(parse_spec(tiny_spec(base={"train": {"epochs": 2, "lr": 0.01}})))[0].config
    assert run_id(lr, "fp", "1.0") != rid
    assert run_id(config, "other data", "1.0") != rid
    assert run_id(config, "fp", "1.1") != rid


def test_smoke_replaces_keys_and_merges_base():
    raw = tiny_spec(smoke={"seeds": [7], "base": {"train": {"epochs": 1}}})
    spec = parse_spec(raw, smoke=True)
    assert spec.name == "tiny-smoke" and spec.seeds == [7] and spec.smoke
    assert spec.base["train"] == {**raw["base"]["train"], "epochs": 1}
    with pytest.raises(ConfigError, match="no smoke section"):
        parse_spec(tiny_spec(), smoke=True)


def test_env_expansion_in_data_paths(monkeypatch):
    monkeypatch.delenv("CRANEREC_X", raising=False)
    assert expand_env("${CRANEREC_X:-../d}/tiktok") == "../d/tiktok"
    monkeypatch.setenv("CRANEREC_X", "/data")
    assert expand_env("${CRANEREC_X:-../d}/tiktok") == "/data/tiktok"


@pytest.mark.parametrize("name", builtin_suites())
def test_builtin_suites_load_and_state_their_epoch_caps(name):
    spec = load_spec(name)
    assert "Epoch caps" in spec.description
    assert spec.base["train"]["epochs"] >= 1 and spec.base["train"]["patience"] >= 1
    smoke = load_spec(name, smoke=True)
    assert smoke.base["train"]["threads"] == 1 and smoke.base["train"]["epochs"] <= 8
    assert all(d["path"] == "synthetic" for d in smoke.datasets.values())


def test_builtin_suite_list():
    assert set(builtin_suites()) >= {
        "main", "ablation", "fusion", "sensitivity", "aggregation", "convergence", "embedding_map",
        "efficiency", "search",
    }  # fmt: skip


def test_main_compares_every_registered_model():
    main = load_spec("main")
    assert {m.name for m in main.models} == set(MODELS)
    assert {m.name for m in load_spec("main", smoke=True).models} == set(MODELS)


def test_a_block_size_is_not_part_of_a_run_id_and_older_ids_stay_valid():
    from cranerec.train import build_config

    crane = build_config(model="crane")
    rid = run_id(crane, "fp", "1.0")
    bigger = dataclasses.replace(crane, model=dataclasses.replace(crane.model, rca_block_size=512))
    assert run_id(bigger, "fp", "1.0") == rid
    rounds = dataclasses.replace(crane, model=dataclasses.replace(crane.model, rca_rounds=1))
    assert run_id(rounds, "fp", "1.0") != rid
    # ids as the code computed them before block sizes and the settings in ADDED left the id
    # (commit 7a92b63): runs stored then keep their ids (CRANE's changed on purpose since:
    # init=xavier, Sec. 4.3.2, is a new model)
    ids = {m: run_id(build_config(model=m), "fp", "1.0") for m in ("lightgcn", "camgr")}
    assert ids == {"lightgcn": "e5664509f986daa3", "camgr": "73b8c559083d2a88"}
    # CRANE's presets' ids as at 249831f: neither settings added since (rca_cache_mb, a RUNTIME
    # one) nor new defaults (rca_keys 2048: ADDED keeps the value runs had before it) may move
    # them, or every stored CRANE run would train again (tiktok's moved on purpose on
    # 2026-12-07: init=orthogonal, chosen on validation, is a new model)
    presets = {
        p: run_id(build_config(model="crane", preset=p), "fp", "1.0")
        for p in ("tiktok", "sports_text", "sports")
    }
    assert presets == {
        "tiktok": "a3e538ac1d0bd132",
        "sports_text": "e2d3ed046c3b287d",
        "sports": "2d0efd94153ec84d",
    }
    longer = build_config(model="lightgcn", overrides=["train.min_epochs=5"])
    assert run_id(longer, "fp", "1.0") != ids["lightgcn"]  # a setting added later, changed


def test_report_kinds_that_read_no_metric_are_not_held_to_the_metric_check():
    # Review: efficiency / embedding_map sections were checked against the default metrics
    base = {"eval": {"ks": [10]}, "train": {"stop_metric": "recall@10"}}
    for kind in ("efficiency", "embedding_map"):
        parse_spec(tiny_spec(base=base, report=[{"kind": kind}]))
    with pytest.raises(ConfigError, match="does not compute recall@20"):
        parse_spec(tiny_spec(base=base, report=[{"kind": "table"}]))


def test_a_spec_stored_before_a_check_existed_still_reads_for_its_report():
    raw = tiny_spec(datasets={"synthetic": {"synthetic_users": 100}})
    with pytest.raises(ConfigError, match="no path"):
        parse_spec(raw)
    assert parse_spec(raw, strict=False).datasets["synthetic"]
