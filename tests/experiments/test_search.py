"""Search with Optuna: the paper's grid as a preset; trials that report their validation curve
and are pruned on it; selection on validation; two worker processes sharing one study (SQLite,
and PostgreSQL where a server is reachable) finish a grid with every point trained once."""

import os
import uuid

import optuna
import pytest

from cranerec.config import ConfigError
from cranerec.experiments.search import (
    Objective,
    _search_worker_main,
    best_trial,
    budget,
    load_trials,
    storage_url,
)
from cranerec.experiments.space import PAPER_GRID, search_space
from cranerec.experiments.spec import SearchSpec, parse_spec
from cranerec.experiments.store import Store
from cranerec.experiments.workers import start_workers, wait_for

from .specs import tiny_spec

POSTGRES_ENV = "CRANEREC_TEST_POSTGRES_URL"
POSTGRES_DEFAULT = "postgresql://cranerec@127.0.0.1:5432/cranerec_test"
GRID = {"train.lr": {"values": [0.001, 0.01]}, "model.reg_weight": {"values": [0.0001, 0.001]}}


def _spec(**search):
    section = {"model": "bpr", "dataset": "synthetic", "space": GRID, "pruner": "none", **search}
    return parse_spec(tiny_spec(models=[], reference={}, search=section))


def test_paper_grid_is_section_4_3_2():
    space = search_space(SearchSpec(model="crane", dataset="d"))
    assert {k: d.values for k, d in space.items()} == PAPER_GRID
    assert PAPER_GRID["model.temperature"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert PAPER_GRID["model.cl_weight"][-1] == 0.9 and len(PAPER_GRID["model.cl_weight"]) == 9
    assert budget(SearchSpec(model="crane", dataset="d"), space) == 4 * 3 * 10 * 9
    assert budget(SearchSpec(model="crane", dataset="d", trials=40), space) == 40


def test_ranges_need_tpe_and_a_budget():
    spec = SearchSpec(
        model="bpr", dataset="d", space={"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}}
    )
    with pytest.raises(ConfigError, match="trial budget"):
        budget(spec, search_space(spec))
    with pytest.raises(ConfigError, match="search.space.model.nope"):
        parse_spec(
            tiny_spec(
                models=[],
                reference={},
                search={"model": "bpr", "dataset": "synthetic", "space": {"model.nope": [1, 2]}},
            )
        )


def test_trials_report_the_validation_curve_and_hopeless_ones_are_pruned(tmp_path):
    spec = _spec(space={"train.lr": {"values": [0.01]}})
    spec.base["train"].update(epochs=4, patience=4)
    store = Store(tmp_path)
    objective = Objective(spec, store, threads=1)
    # a pruner no recall can pass: the trial stops after its first epoch
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0)
    )
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]
    run_dir = tmp_path / trial.user_attrs["run"]["dir"]
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "results.json").exists()
    # without pruning every epoch is reported and the value is the best validation value
    objective = Objective(spec, Store(tmp_path / "fresh"), threads=1)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert list(trial.intermediate_values) == [1, 2, 3, 4]
    assert trial.value == pytest.approx(max(trial.intermediate_values.values()))
    results = trial.user_attrs["results"]
    assert results["valid"]["recall@20"] == trial.value and "recall@20" in results["test"]


def test_selection_reads_validation_only():
    study = optuna.create_study(direction="maximize")
    for valid, test in ((0.30, 0.90), (0.40, 0.10)):
        study.add_trial(
            optuna.create_trial(value=valid, user_attrs={"results": {"test": {"recall@20": test}}})
        )
    assert best_trial(study.trials).value == 0.40  # not the one with the better test value


def _shared_grid(url, store, study):
    spec = _spec(storage=url, study=study)
    procs = start_workers(_search_worker_main, lambda i: (spec, str(store.root), url, 1, i), 2, 1)
    wait_for(procs)
    assert all(p.exitcode == 0 for p in procs)
    trials = load_trials(spec, store)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    points = sorted((t.params["train.lr"], t.params["model.reg_weight"]) for t in done)
    grid = sorted(
        (a, b) for a in GRID["train.lr"]["values"] for b in GRID["model.reg_weight"]["values"]
    )
    assert points == grid  # every point, each exactly once
    trained = [t for t in trials if "run" in t.user_attrs]
    assert len(trained) == len(grid)  # no point trained twice (a surplus trial trains nothing)
    assert len({t.user_attrs["run"]["host"] for t in done}) == 1 and len(
        {t.number for t in done}
    ) == len(grid)
    return done


def test_two_workers_share_one_sqlite_study(tmp_path):
    store = Store(tmp_path)
    spec = _spec()
    url = storage_url(spec, store)
    assert url.startswith("sqlite:///") and url.endswith("optuna.sqlite3")
    _shared_grid(url, store, "shared")


def _postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT)
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed (it comes with the dev extra)")
    try:
        psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3
        ).close()
    except Exception as e:
        pytest.skip(
            f"no PostgreSQL server reachable at {url} (set {POSTGRES_ENV}; .ci/run starts one): {str(e).strip().splitlines()[0]}"
        )
    return url  # postgresql:// is read with psycopg 3 (search.sqlalchemy_url)


def test_two_workers_share_one_postgresql_study(tmp_path):
    url = _postgres_url()
    _shared_grid(url, Store(tmp_path), f"test-{uuid.uuid4().hex[:12]}")


def test_in_a_log_file_each_trial_says_its_settings_epochs_and_end(tmp_path, capsys):
    spec = _spec(space={"train.lr": {"values": [0.01]}})
    spec.base["train"].update(epochs=2, patience=2)
    objective = Objective(spec, Store(tmp_path), threads=1, lines=True)
    optuna.create_study(direction="maximize").optimize(objective, n_trials=1)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "tiny: trial 0: started: train.lr=0.01"
    assert [x.split("  ")[0] for x in err[1:3]] == [
        "tiny: trial 0: epoch 1",
        "tiny: trial 0: epoch 2",
    ]
    assert err[3].startswith("tiny: trial 0: done: best epoch ") and "valid recall@20 0." in err[3]
    # pruned: said, with the epoch and the score it was pruned on
    objective = Objective(spec, Store(tmp_path / "pruned"), threads=1, lines=True)
    pruner = optuna.pruners.ThresholdPruner(lower=2.0)
    optuna.create_study(direction="maximize", pruner=pruner).optimize(objective, n_trials=1)
    assert "tiny: trial 0: pruned after epoch 1: valid recall@20 0." in capsys.readouterr().err
